"""The reduced canonical model of each C-component: response types, constraints from P(V), reduction.

See :mod:`cfedit.bounds` for the constraints and the reduction rules. A :class:`Component` keeps the
slots r_j(pa) the query reads or P(V) constrains, enumerates their joint values (response types) and
holds the linear constraints A q = b on their law q_C, with one feasible law ``q0``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from functools import cached_property

import networkx as nx
import numpy as np
import scipy.sparse as sp

from cfedit.bounds.context import Context
from cfedit.bounds.lp import solve_lp
from cfedit.errors import DataError, QueryError

__all__ = ["Component", "Reads", "connected", "lifted_blocks", "linked_first_slots", "vertex", "virtual_components"]

_MAX_TYPES = 100_000  # response types of one C-component after the reduction
_MAX_SUBSETS = 64  # subsets of a component's members tried for the main block of a lifted law

_Law = np.ndarray | None | list[tuple[tuple[tuple[str, int, int], ...], np.ndarray]]
"""The law of a dropped slot: P(v | pa), None (unconstrained), or per event of the earlier members'
slots ((member, parent configuration, value), ...) the law P(v | K = k) that applies there."""

Reads = list[tuple[str, np.ndarray, np.ndarray]]
"""The slots an event's branches read: (factor, parent configuration, value), one entry per branch."""

_Row = tuple[tuple[tuple[int, int], ...], int, np.ndarray]
"""A constraint, symbolically: the slot conditions (slot, value) of E_{t-1}(k), the member's slot, and
P(v | k); it stands for the rows q(E_{t-1}(k), slot = v) - P(v | k) q(E_{t-1}(k)) = 0."""

_Plan = tuple[tuple[str, ...], int, bool, dict[str, list[int]], float]
"""A reduction: (member order, index of the last active member, whether its unread slots are dropped,
kept slots per member, cost)."""


def _keys(pk: np.ndarray) -> list[tuple[int, ...]]:
    """The values k of a key with P(k) > 0."""
    return [tuple(int(x) for x in k) for k in np.argwhere(pk > 0)] if pk.ndim else [()]


def connected(items: Iterable[Hashable], links: Iterable[tuple[Hashable, Hashable]]) -> list[list]:
    """The connected components of the graph on ``items`` with edges ``links``: each in the order of
    ``items``, ordered by their first item."""
    items = list(items)
    graph = nx.Graph()
    graph.add_nodes_from(items)
    graph.add_edges_from(links)
    pos = {a: i for i, a in enumerate(items)}
    groups = [sorted(g, key=pos.__getitem__) for g in nx.connected_components(graph)]
    return sorted(groups, key=lambda g: pos[g[0]])


# ---------------------------------------------------------------------------------- reduction
def _orders(ctx: Context, members: tuple[str, ...]) -> list[tuple[str, ...]]:
    """Orders of a C-component's members compatible with G (the topological one first)."""
    if len(members) > 5:
        return [members]
    out = []
    for perm in itertools.permutations(members):
        if all(perm.index(a) < perm.index(b) for a in members for b in members
               if a != b and a in ctx.ancestors(b)):
            out.append(perm)
    return sorted(out, key=lambda o: o != members)


def _reduction(ctx: Context, order: tuple[str, ...], touched: Mapping[str, set[int]]) -> _Plan:
    """(order, index of the last active member, whether its unread slots are dropped, kept slots, cost).

    Walking back from the last member: a member whose key K equals its parents and that the query
    does not read is dropped whole; otherwise the unread slots of the last member are dropped when the
    events of the earlier members that condition them are pairwise disjoint (always so when K = Pa).
    """
    t = len(order) - 1
    partial = False
    while t >= 0:
        j = order[t]
        if set(ctx.key_vars(order[: t + 1])) == set(ctx.parents[j]):
            if not touched.get(j):
                t -= 1
                continue
            partial = True
        else:
            partial = _disjoint(ctx, order[: t + 1], touched.get(j, set()))
        break
    kept: dict[str, list[int]] = {}
    for i, j in enumerate(order[: t + 1]):
        cfgs = set(touched.get(j, ()))
        if not (partial and i == t):
            cfgs |= set(np.flatnonzero(ctx.marginal(ctx.parents[j]).reshape(-1) > 0).tolist())
        kept[j] = sorted(cfgs)
    if t > 0:  # the first member's slots that only their own marginal constrains and the query does not read
        linked = linked_first_slots(ctx, order[: t + 1], partial, kept[order[t]])
        first = order[0]
        kept[first] = [c for c in kept[first] if c in linked or c in touched.get(first, ())]
    cost = sum(len(c) * np.log(ctx.size[j]) for j, c in kept.items())
    return order, t, partial, kept, float(cost)


def linked_first_slots(ctx: Context, active: tuple[str, ...], partial: bool, last_kept: list[int]) -> set[int]:
    """Parent configurations of the first member whose slot a later member's constraint (or the law of a
    dropped slot conditioned on it) involves. Any other slot of the first member is constrained by its
    marginal P(v | pa) alone: when the query does not read it, it is independent of everything it reads
    and is dropped (drawn from P(v | pa)), like the slots of a Markovian factor."""
    first, out = active[0], set()
    for s in range(1, len(active)):
        j = active[s]
        K = ctx.key_vars(active[: s + 1])
        # a partial last member whose key is its parents draws its unread slots from P(v | pa): no link
        only_kept = partial and s == len(active) - 1 and set(K) == set(ctx.parents[j])
        keep = set(last_kept)
        for k in _keys(ctx.marginal(K)):
            key = dict(zip(K, k))
            if only_kept and ctx.flat(j, key) not in keep:
                continue
            out.add(int(ctx.flat(first, key)))
    return out


def _best_plan(ctx: Context, members: tuple[str, ...], touched: Mapping[str, set[int]]) -> _Plan:
    """The reduction of the member order that keeps the fewest slots (the topological one on ties);
    remembered in ``ctx.memo`` when it is a dict."""
    key = ("plan", members, tuple(tuple(sorted(touched.get(j, ()))) for j in members))
    if ctx.memo is not None and key in ctx.memo:
        return ctx.memo[key]
    plan = min((_reduction(ctx, order, touched) for order in _orders(ctx, members)), key=lambda plan: plan[4])
    if ctx.memo is not None:
        ctx.memo[key] = plan
    return plan


def _disjoint(ctx: Context, prefix: tuple[str, ...], read: set[int]) -> bool:
    """Whether, for every unread slot of the last member, the events E_{t-1}(k) of the keys k that
    evaluate it are pairwise disjoint (some earlier member's same slot takes different values)."""
    j = prefix[-1]
    K = ctx.key_vars(prefix)
    groups: dict[int, list[dict[str, int]]] = {}
    for k in _keys(ctx.marginal(K)):
        key = dict(zip(K, k))
        c = ctx.flat(j, key)
        if c not in read:
            groups.setdefault(c, []).append(key)
    for keys in groups.values():
        for a, b in itertools.combinations(keys, 2):
            if not any(ctx.flat(s, a) == ctx.flat(s, b) and a[s] != b[s] for s in prefix[:-1]):
                return False
    return True


# ---------------------------------------------------------------------------------- components
class Component:
    """The reduced canonical model of one C-component: the coordinates of its law, constraints, a feasible law.

    The law is a vector y over *blocks*, each a law over the joint values (types) of some kept slots.
    Usually one block holds every slot: y = q_C over the response types. When the query reads a few
    slots and the others attach to them through constraints only (each slot r_X(d) of a 10-valued parent
    D constrained jointly with the same few slots of a child Z), the law is *lifted*: a main block over
    the slots the query reads, and one block per group of unread slots joined with the main slots that
    their constraints share (the separator), whose marginal on the separator equals the main block's.
    Every constraint lies in one block and the query reads the main block only; gluing the blocks,
    q_C = q_main prod_i q_i(group_i | separator_i), turns any such y into a feasible q_C with these
    marginals, so the feasible main-block laws are exactly the marginals of the feasible q_C and a
    linear-fractional programme in y has the optimum of the one in q_C (10 x 2^5 coordinates instead of
    2^14 for binary X and Z with parents X, Y). ``norm`` is the sure event (ones on the main block);
    :meth:`joint` glues a law for witnesses.
    """

    def __init__(self, ctx: Context, members: tuple[str, ...], touched: Mapping[str, set[int]], *,
                 lift: bool = True, build: bool = True):
        """Lay the component out (kept slots, constraints, blocks: cheap, and refused beyond
        :data:`_MAX_TYPES` coordinates), then, with ``build``, :meth:`build` it."""
        self.members = members
        self.built = False
        self.memo: dict = {}  # what the programmes derive from this component, by their inputs (e.g. lumped laws)
        self.clique = all(frozenset((a, b)) in {frozenset(e) for e in ctx.graph.bidirected}
                          for a, b in itertools.combinations(members, 2))
        # -- reduction (package docstring): choose the member order that keeps the fewest slots
        order, t, partial, kept, _ = _best_plan(ctx, members, touched)
        self.order, self.active = order, order[: t + 1]
        self.dropped: dict[str, dict[int, _Law]] = {}
        for j in members:
            pa = ctx.parents[j]
            pa_prob = ctx.marginal(pa).reshape(-1)
            joint = ctx.marginal((*pa, j)).reshape(-1, ctx.size[j])
            own = set(kept.get(j, ()))
            self.dropped[j] = {
                c: (joint[c] / pa_prob[c] if pa_prob[c] > 0 else None)
                for c in range(ctx.n_configs(j)) if c not in own
            }
        if partial and set(ctx.key_vars(self.active)) != set(ctx.parents[self.active[-1]]):
            self._conditional_laws(ctx)
        # -- slots, constraints and blocks
        self.slots = [(j, c) for j in self.active for c in kept[j]]
        self.col_of: dict[str, np.ndarray] = {}
        for j in members:
            col = np.full(ctx.n_configs(j), -1, dtype=np.int64)
            for k, (jj, c) in enumerate(self.slots):
                if jj == j:
                    col[c] = k
            self.col_of[j] = col
        self.sizes = [ctx.size[j] for j, _ in self.slots]
        self._rows = self._constraint_rows(ctx, partial)
        self._layout = [tuple(range(len(self.slots)))]
        if lift:
            read = {k for k, (j, c) in enumerate(self.slots) if c in touched.get(j, ())}
            scopes = [frozenset(k for k, _ in conds) | {cj} for conds, cj, _ in self._rows]
            self._layout = lifted_blocks(self.sizes, read, scopes, [j for j, _ in self.slots])
        self.coordinates = sum(math.prod(self.sizes[k] for k in b) for b in self._layout)
        if self.coordinates > _MAX_TYPES:
            lifted = f" ({self.coordinates:.3g} when lifted)" if self.lifted else ""
            raise QueryError(
                f"C-component {{{', '.join(members)}}} needs {self.n_types:.3g} response types after the reduction"
                f"{lifted} (limit {_MAX_TYPES}); the exact programme is too large, use cfedit.bounds.neural instead"
            )
        if build:
            self.build()

    def build(self) -> None:
        """Enumerate the types of each block, build the constraints, remove the types they force to
        zero and find a feasible law (the costly part: O(coordinates x constraints))."""
        dtype = np.int16 if max(self.sizes, default=1) < 30000 else np.int64
        self.blocks = [(b, _grid([self.sizes[k] for k in b], dtype)) for b in self._layout]
        A, b = self._constraints(self._rows)
        self._prune(A, b)
        self.q0 = self._feasible()
        self.built = True

    def _conditional_laws(self, ctx: Context) -> None:
        """Laws of the last member's dropped slots given the earlier members' slots (disjoint events)."""
        j = self.active[-1]
        K = ctx.key_vars(self.active)
        joint = ctx.marginal((*K, j))
        pk = joint.sum(axis=-1)
        laws: dict[int, list[tuple[tuple[tuple[str, int, int], ...], np.ndarray]]] = {}
        for k in _keys(pk):
            key = dict(zip(K, k))
            c = ctx.flat(j, key)
            if c in self.dropped[j]:
                event = tuple((s, ctx.flat(s, key), key[s]) for s in self.active[:-1])
                laws.setdefault(c, []).append((event, joint[k] / pk[k]))
        self.dropped[j].update(laws)

    def _constraint_rows(self, ctx: Context, partial: bool) -> list[_Row]:
        """The constraints q(E_t(k, v)) = P(v | k) q(E_{t-1}(k)), symbolically (package docstring)."""
        out: list[_Row] = []
        for t, j in enumerate(self.active):
            K = ctx.key_vars(self.active[: t + 1])
            joint = ctx.marginal((*K, j))
            pk = joint.sum(axis=-1)
            last_partial = partial and t == len(self.active) - 1
            for k in _keys(pk):
                key = dict(zip(K, k))
                cj = int(self.col_of[j][ctx.flat(j, key)])
                if cj < 0:
                    if last_partial or t == 0:  # drawn from P(v | k) (package docstring: Reduction)
                        continue
                    raise AssertionError("a positive-probability slot was dropped")
                conds = []
                for s in self.active[:t]:
                    cs = int(self.col_of[s][ctx.flat(s, key)])
                    if cs < 0:
                        raise AssertionError("a slot that a kept constraint reads was dropped")
                    conds.append((cs, int(key[s])))
                out.append((tuple(conds), cj, joint[k] / pk[k]))
        return out

    # rows (q(E_t(k, v)) - P(v | k) q(E_{t-1}(k))) y = 0 in their block, equal separator marginals, sum q_main = 1
    def _constraints(self, rows: Sequence[_Row]) -> tuple[sp.csr_matrix, np.ndarray]:
        offsets = np.cumsum([0] + [len(T) for _, T in self.blocks])
        pos = [{k: i for i, k in enumerate(b)} for b, _ in self.blocks]
        cols: list[np.ndarray] = []
        vals: list[np.ndarray] = []
        rhs: list[float] = []
        for conds, cj, cond in rows:
            scope = {cs for cs, _ in conds} | {cj}
            bi = next(i for i, p in enumerate(pos) if scope <= p.keys())
            T, p = self.blocks[bi][1], pos[bi]
            prev = np.ones(len(T), dtype=bool)
            for cs, val in conds:
                prev &= T[:, p[cs]] == val
            for v in range(len(cond)):
                row = (prev & (T[:, p[cj]] == v)).astype(float) - cond[v] * prev
                nz = np.flatnonzero(row)
                cols.append(offsets[bi] + nz)
                vals.append(row[nz])
                rhs.append(0.0)
        T0 = self.blocks[0][1]
        for bi in range(1, len(self.blocks)):
            b, T = self.blocks[bi]
            shared = [k for k in b if k in pos[0]]
            s_aux = _flat_values(T[:, [pos[bi][k] for k in shared]], [self.sizes[k] for k in shared])
            s_main = _flat_values(T0[:, [pos[0][k] for k in shared]], [self.sizes[k] for k in shared])
            for s in range(math.prod(self.sizes[k] for k in shared)):
                a, m = np.flatnonzero(s_aux == s), np.flatnonzero(s_main == s)
                cols.append(np.concatenate([offsets[bi] + a, m]))
                vals.append(np.concatenate([np.ones(len(a)), -np.ones(len(m))]))
                rhs.append(0.0)
        cols.append(np.arange(len(T0)))
        vals.append(np.ones(len(T0)))
        rhs.append(1.0)
        indptr = np.concatenate([[0], np.cumsum([len(r) for r in cols])])
        A = sp.csr_matrix((np.concatenate(vals), np.concatenate(cols), indptr), shape=(len(cols), offsets[-1]))
        return A, np.asarray(rhs)

    def _prune(self, A: sp.csr_matrix, b: np.ndarray) -> None:
        """Remove types forced to probability zero (a homogeneous row of one sign)."""
        live = np.ones(A.shape[1], dtype=bool)
        changed = True
        while changed:
            changed = False
            for i in np.flatnonzero(b == 0):
                idx = A.indices[A.indptr[i]: A.indptr[i + 1]]
                v = A.data[A.indptr[i]: A.indptr[i + 1]]
                m = live[idx] & (np.abs(v) > 1e-15)
                if m.any() and ((v[m] > 0).all() or (v[m] < 0).all()):
                    live[idx[m]] = False
                    changed = True
        parts = np.split(live, np.cumsum([len(T) for _, T in self.blocks])[:-1])
        self.blocks = [(blk, T[keep]) for (blk, T), keep in zip(self.blocks, parts)]
        self.offsets = np.cumsum([0] + [len(T) for _, T in self.blocks])
        self.norm = np.zeros(self.offsets[-1])
        self.norm[: self.offsets[1]] = 1.0
        self._main_pos = {k: i for i, k in enumerate(self.blocks[0][0])}
        A = A[:, live].tocsr()
        keep = (A.getnnz(axis=1) > 0) | (b != 0)
        self.A, self.b = A[keep], b[keep]
        # homogeneous form (A - b 1^T) y = 0 for the Charnes-Cooper and RLT programmes: every row but
        # the normalisation (which becomes 0 = 0) already has b = 0
        self.H = self.A[self.b == 0]

    def _feasible(self) -> np.ndarray:
        n = self.n
        if self.offsets[1] == 0:
            raise self._incompatible()
        res = solve_lp(np.zeros(n), self.A, self.b)
        if res.status != 0:
            raise self._incompatible()
        q = np.clip(res.x, 0, None)
        return q / (self.norm @ q)

    def _incompatible(self) -> DataError:
        return DataError(
            f"P(V) is not compatible with the graph: no model over G reproduces it "
            f"(the constraints of C-component {{{', '.join(self.members)}}} are infeasible, e.g. an instrumental "
            f"inequality fails). Check the graph; an empirical table may need more data."
        )

    @property
    def n(self) -> int:
        """The number of coordinates of the law (response types, or the blocks' types when lifted)."""
        return int(self.offsets[-1])

    @property
    def lifted(self) -> bool:
        return len(self._layout) > 1

    @property
    def n_types(self) -> int:
        """The number of response types over the kept slots (before removing those of probability zero)."""
        return math.prod(self.sizes)

    def event(self, conds: Iterable[tuple[int, int]]) -> np.ndarray:
        """The indicator of {r : r[slot] = value for each (slot, value)} on the law's coordinates (the
        query reads the main block only; 0 on the others)."""
        T = self.blocks[0][1]
        mask = np.ones(len(T), dtype=bool)
        for cc, val in conds:
            mask &= T[:, self._main_pos[cc]] == val
        out = np.zeros(self.n)
        out[: len(T)] = mask
        return out

    def joint(self, q: np.ndarray, tol: float = 1e-13) -> tuple[np.ndarray, np.ndarray]:
        """The response types (columns as ``slots``) that the law q gives mass, and their probabilities;
        a lifted law is glued: q_main times each block's law given its separator."""
        parts = np.split(np.clip(q, 0, None), self.offsets[1:-1])
        main, T0 = self.blocks[0]
        keep = parts[0] > tol
        types = np.zeros((int(keep.sum()), len(self.slots)), dtype=np.int64)
        types[:, list(main)] = T0[keep]
        probs = parts[0][keep]
        for (blk, T), y in zip(self.blocks[1:], parts[1:]):
            shared = [i for i, k in enumerate(blk) if k in self._main_pos]
            own = [i for i, k in enumerate(blk) if k not in self._main_pos]
            groups: dict[tuple[int, ...], list[int]] = {}
            for i, s in enumerate(map(tuple, T[:, shared].tolist())):
                groups.setdefault(s, []).append(i)
            new_types, new_probs = [], []
            for row, p in zip(types, probs):
                idx = np.asarray(groups.get(tuple(row[[blk[i] for i in shared]].tolist()), []), dtype=np.int64)
                w = y[idx]
                if not len(idx) or w.sum() <= 0:
                    continue
                w = w / w.sum()
                for i in np.flatnonzero(w * p > tol):
                    r = row.copy()
                    r[[blk[o] for o in own]] = T[idx[i], own]
                    new_types.append(r)
                    new_probs.append(p * w[i])
            types = np.asarray(new_types, dtype=np.int64).reshape(-1, len(self.slots))
            probs = np.asarray(new_probs)
        return types, probs / probs.sum()

    @cached_property
    def q1(self) -> np.ndarray:
        """A second feasible law (a vertex for a random objective)."""
        return vertex(self, np.random.default_rng(1))

    @cached_property
    def _normal(self) -> tuple[sp.csr_matrix, sp.spmatrix, np.ndarray]:
        At = self.A.T
        M = (self.A @ At).toarray()
        return self.A, At, np.linalg.pinv(M, rcond=1e-12, hermitian=True)

    def residual(self, f: np.ndarray) -> float:
        """max |f - A^T lambda| for the least-squares lambda; 0 proves f . q the same for every feasible q."""
        A, At, Minv = self._normal
        lam = Minv @ (A @ f)
        return float(np.abs(f - At @ lam).max())

    def range_of(self, f: np.ndarray) -> tuple[float, float]:
        """min and max of f . q over the feasible q_C."""
        out = []
        for sign in (1.0, -1.0):
            res = solve_lp(sign * f, self.A, self.b)
            if res.status != 0:
                raise self._incompatible()
            out.append(sign * res.fun)
        return out[0], out[1]


def _grid(sizes: Sequence[int], dtype: type) -> np.ndarray:
    """All joint values of slots of the given sizes, one row each (one empty row for no slot)."""
    if not sizes:
        return np.zeros((1, 0), dtype=dtype)
    return np.indices(sizes, dtype=dtype).reshape(len(sizes), -1).T


def _flat_values(values: np.ndarray, sizes: Sequence[int]) -> np.ndarray:
    """Row-major index of each row of joint values."""
    out = np.zeros(len(values), dtype=np.int64)
    for i, s in enumerate(sizes):
        out = out * s + values[:, i]
    return out


def lifted_blocks(sizes: Sequence[int], read: set[int], scopes: Sequence[frozenset[int]], member: Sequence[str]
            ) -> list[tuple[int, ...]]:
    """The blocks of a lifted law (the main block first), or one block of all slots when that is smaller.

    The main block holds the read slots and, for a subset of the members, all their slots (the subsets
    are tried smallest first, at most :data:`_MAX_SUBSETS`); the other slots form groups linked by shared
    constraints, each joined with the main slots its constraints read. Chosen to minimise the number of
    coordinates."""
    n = len(sizes)
    best = (math.prod(sizes), 1)
    out = [tuple(range(n))]
    names = sorted(set(member))
    subsets = itertools.chain.from_iterable(itertools.combinations(names, r) for r in range(len(names) + 1))
    for extra in itertools.islice(subsets, _MAX_SUBSETS):
        main = sorted(read | {k for k in range(n) if member[k] in extra})
        rest = [k for k in range(n) if k not in set(main)]
        links = [(a, b) for s in scopes for a, b in itertools.pairwise(sorted(s - set(main)))]
        blocks = [tuple(main)]
        for group in connected(rest, links):
            g = set(group)
            sep = set().union(*(s for s in scopes if s & g)) - g
            blocks.append(tuple(sorted(g | sep)))
        cost = (sum(math.prod(sizes[k] for k in b) for b in blocks), len(blocks))
        if cost < best:
            best, out = cost, blocks
    return out


def vertex(c: Component, rng: np.random.Generator) -> np.ndarray:
    """A feasible law of ``c`` at a vertex of its polytope (a random objective)."""
    res = solve_lp(rng.standard_normal(c.n), c.A, c.b)
    q = np.clip(res.x, 0, None) if res.status == 0 else c.q0
    return q / (c.norm @ q)


def virtual_components(ctx: Context, touched: dict[str, set[int]], reads: Sequence[Reads], *,
                        lift: bool = True, announce: Callable[[list[Component]], None] | None = None
                        ) -> list[Component]:
    """The reduced components the query reads (``reads``: the slots of each event's branches). A component
    whose only kept member is constrained slot by slot (P(r_j(pa) = v) = P(v | pa)) is split into groups of
    slots that some branch reads together: no branch reads two groups, so their coupling never matters
    and independent laws are exact. ``lift``: whether laws may be lifted (:class:`Component`);
    ``announce`` hears the laid-out components before any is built."""
    out: list[Component] = []
    for members in ctx.graph.c_components():
        if not any(touched.get(j) for j in members):
            continue
        order, t, _, kept, _ = _best_plan(ctx, members, touched)
        if t == 0 and len(kept[order[0]]) > 1:
            j = order[0]
            groups = _coread_groups(j, reads)
            plans = [_best_plan(ctx, members, {**touched, j: g}) for g in groups]
            if len(groups) > 1 and all(pl[1] == 0 and pl[0][0] == j for pl in plans):
                out += [_laid_out(ctx, members, {**touched, j: g}, lift) for g in groups]
                continue
        out.append(_laid_out(ctx, members, touched, lift))
    if announce is not None:
        announce(out)
    for c in out:
        if not c.built:
            c.build()
    return out


def _laid_out(ctx: Context, members: tuple[str, ...], touched: Mapping[str, set[int]], lift: bool) -> Component:
    """A component laid out (not built); the same object for the same slots read when ``ctx.memo`` is a
    dict (queries on one table share it: it depends on P(V), the members and their slots read only)."""
    if ctx.memo is None:
        return Component(ctx, members, touched, lift=lift, build=False)
    key = (members, lift, tuple(tuple(sorted(touched.get(j, ()))) for j in members))
    if key not in ctx.memo:
        ctx.memo[key] = Component(ctx, members, touched, lift=lift, build=False)
    return ctx.memo[key]


def _coread_groups(j: str, reads: Sequence[Reads]) -> list[set[int]]:
    """Parent configurations of V_j joined when one branch reads both."""
    seen: dict[int, None] = {}
    links: list[tuple[int, int]] = []
    for br in reads:
        flats = [flat for jj, flat, _ in br if jj == j]
        for f in flats:
            seen.update(dict.fromkeys(np.unique(f).tolist()))
        for f1, f2 in itertools.pairwise(flats):
            links += [(a, b) for a, b in np.unique(np.stack([f1, f2], axis=1), axis=0).tolist()]
    return [set(g) for g in connected(seen, links)]
