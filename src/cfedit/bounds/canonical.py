"""The reduced canonical model of each C-component: response types, constraints from P(V), reduction.

See :mod:`cfedit.bounds` for the constraints and the reduction rules. A :class:`_Component` keeps the
slots r_j(pa) the query reads or P(V) constrains, enumerates their joint values (response types) and
holds the linear constraints A q = b on their law q_C, with one feasible law ``q0``.
"""

from __future__ import annotations

import itertools
from collections.abc import Hashable, Iterable, Mapping, Sequence
from functools import cached_property

import networkx as nx
import numpy as np
import scipy.sparse as sp
from scipy.optimize import linprog

from cfedit.bounds.context import Context
from cfedit.errors import DataError, QueryError

_MAX_TYPES = 100_000  # response types of one C-component after the reduction
_LP_OPTIONS = {"primal_feasibility_tolerance": 1e-10, "dual_feasibility_tolerance": 1e-10}

_Law = np.ndarray | None | list[tuple[tuple[tuple[str, int, int], ...], np.ndarray]]
"""The law of a dropped slot: P(v | pa), None (unconstrained), or per event of the earlier members'
slots ((member, parent configuration, value), ...) the law P(v | K = k) that applies there."""

_Reads = list[tuple[str, np.ndarray, np.ndarray]]
"""The slots an event's branches read: (factor, parent configuration, value), one entry per branch."""

_Plan = tuple[tuple[str, ...], int, bool, dict[str, list[int]], float]
"""A reduction: (member order, index of the last active member, whether its unread slots are dropped,
kept slots per member, cost)."""


def _keys(pk: np.ndarray) -> list[tuple[int, ...]]:
    """The values k of a key with P(k) > 0."""
    return [tuple(int(x) for x in k) for k in np.argwhere(pk > 0)] if pk.ndim else [()]


def _connected(items: Iterable[Hashable], links: Iterable[tuple[Hashable, Hashable]]) -> list[list]:
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
    cost = sum(len(c) * np.log(ctx.size[j]) for j, c in kept.items())
    return order, t, partial, kept, float(cost)


def _best_plan(ctx: Context, members: tuple[str, ...], touched: Mapping[str, set[int]]) -> _Plan:
    """The reduction of the member order that keeps the fewest slots (the topological one on ties)."""
    return min((_reduction(ctx, order, touched) for order in _orders(ctx, members)), key=lambda plan: plan[4])


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
class _Component:
    """The reduced canonical model of one C-component: response types, constraints, a feasible law."""

    def __init__(self, ctx: Context, members: tuple[str, ...], touched: Mapping[str, set[int]]):
        self.members = members
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
        # -- slots and response types
        self.slots = [(j, c) for j in self.active for c in kept[j]]
        self.col_of: dict[str, np.ndarray] = {}
        for j in members:
            col = np.full(ctx.n_configs(j), -1, dtype=np.int64)
            for k, (jj, c) in enumerate(self.slots):
                if jj == j:
                    col[c] = k
            self.col_of[j] = col
        sizes = [ctx.size[j] for j, _ in self.slots]
        n_types = int(np.prod(sizes, dtype=np.float64)) if sizes else 1
        if n_types > _MAX_TYPES:
            raise QueryError(
                f"C-component {{{', '.join(members)}}} needs {n_types:.3g} response types after the reduction "
                f"(limit {_MAX_TYPES}); the exact programme is too large, use cfedit.bounds.neural instead"
            )
        dtype = np.int16 if max(sizes, default=1) < 30000 else np.int64
        self.types = (np.indices(sizes, dtype=dtype).reshape(len(sizes), -1).T if sizes
                      else np.zeros((1, 0), dtype=dtype))
        A, b = self._constraints(ctx, partial)
        self._prune(A, b)
        self.q0 = self._feasible()

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

    # constraints q(E_t(k, v)) - P(v | k) q(E_{t-1}(k)) = 0, plus sum q = 1
    def _constraints(self, ctx: Context, partial: bool) -> tuple[sp.csr_matrix, np.ndarray]:
        n = len(self.types)
        rows: list[np.ndarray] = []
        vals: list[np.ndarray] = []
        rhs: list[float] = []
        for t, j in enumerate(self.active):
            K = ctx.key_vars(self.active[: t + 1])
            joint = ctx.marginal((*K, j))
            pk = joint.sum(axis=-1)
            last_partial = partial and t == len(self.active) - 1
            for k in _keys(pk):
                key = dict(zip(K, k))
                cj = self.col_of[j][ctx.flat(j, key)]
                if cj < 0:
                    if last_partial:
                        continue
                    raise AssertionError("a positive-probability slot was dropped")
                prev = np.ones(n, dtype=bool)
                for s in self.active[:t]:
                    prev &= self.types[:, self.col_of[s][ctx.flat(s, key)]] == key[s]
                cond = joint[k] / pk[k]
                for v in range(ctx.size[j]):
                    cur = prev & (self.types[:, cj] == v)
                    row = cur.astype(float) - cond[v] * prev
                    nz = np.flatnonzero(row)
                    rows.append(nz)
                    vals.append(row[nz])
                    rhs.append(0.0)
        rows.append(np.arange(n))
        vals.append(np.ones(n))
        rhs.append(1.0)
        indptr = np.concatenate([[0], np.cumsum([len(r) for r in rows])])
        A = sp.csr_matrix((np.concatenate(vals), np.concatenate(rows), indptr), shape=(len(rows), n))
        return A, np.asarray(rhs)

    def _prune(self, A: sp.csr_matrix, b: np.ndarray) -> None:
        """Remove response types forced to probability zero (a homogeneous row of one sign)."""
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
        self.live = live
        self.types = self.types[live]
        A = A[:, live].tocsr()
        keep = (A.getnnz(axis=1) > 0) | (b != 0)
        self.A, self.b = A[keep], b[keep]
        # homogeneous form (A - b 1^T) y = 0 for the Charnes-Cooper and RLT programmes: every row but
        # the normalisation (which becomes 0 = 0) already has b = 0
        self.H = self.A[self.b == 0]

    def _feasible(self) -> np.ndarray:
        n = len(self.types)
        if n == 0:
            raise self._incompatible()
        res = linprog(np.zeros(n), A_eq=self.A, b_eq=self.b, bounds=(0, None), method="highs", options=_LP_OPTIONS)
        if res.status != 0:
            raise self._incompatible()
        q = np.clip(res.x, 0, None)
        return q / q.sum()

    def _incompatible(self) -> DataError:
        return DataError(
            f"P(V) is not compatible with the graph: no model over G reproduces it "
            f"(the constraints of C-component {{{', '.join(self.members)}}} are infeasible, e.g. an instrumental "
            f"inequality fails). Check the graph; an empirical table may need more data."
        )

    @property
    def n(self) -> int:
        return len(self.types)

    @cached_property
    def q1(self) -> np.ndarray:
        """A second feasible law (a vertex for a random objective)."""
        return _vertex(self, np.random.default_rng(1))

    @cached_property
    def _normal(self) -> tuple[sp.csr_matrix, np.ndarray]:
        M = (self.A @ self.A.T).toarray()
        return self.A, np.linalg.pinv(M, rcond=1e-12, hermitian=True)

    def residual(self, f: np.ndarray) -> float:
        """max |f - A^T lambda| for the least-squares lambda; 0 proves f . q the same for every feasible q."""
        A, Minv = self._normal
        lam = Minv @ (A @ f)
        return float(np.abs(f - A.T @ lam).max())

    def range_of(self, f: np.ndarray) -> tuple[float, float]:
        """min and max of f . q over the feasible q_C."""
        out = []
        for sign in (1.0, -1.0):
            res = linprog(sign * f, A_eq=self.A, b_eq=self.b, bounds=(0, None), method="highs", options=_LP_OPTIONS)
            if res.status != 0:
                raise self._incompatible()
            out.append(sign * res.fun)
        return out[0], out[1]


def _vertex(c: _Component, rng: np.random.Generator) -> np.ndarray:
    """A feasible law of ``c`` at a vertex of its polytope (a random objective)."""
    res = linprog(rng.standard_normal(c.n), A_eq=c.A, b_eq=c.b, bounds=(0, None), method="highs", options=_LP_OPTIONS)
    q = np.clip(res.x, 0, None) if res.status == 0 else c.q0
    return q / q.sum()


def _virtual_components(ctx: Context, touched: dict[str, set[int]], reads: Sequence[_Reads]) -> list[_Component]:
    """The reduced components the query reads (``reads``: the slots of each event's branches). A component
    whose only kept member is constrained slot by slot (P(r_j(pa) = v) = P(v | pa)) is split into groups of
    slots that some branch reads together: no branch reads two groups, so their coupling never matters
    and independent laws are exact."""
    out: list[_Component] = []
    for members in ctx.graph.c_components():
        if not any(touched.get(j) for j in members):
            continue
        order, t, _, kept, _ = _best_plan(ctx, members, touched)
        if t == 0 and len(kept[order[0]]) > 1:
            j = order[0]
            groups = _coread_groups(j, reads)
            plans = [_best_plan(ctx, members, {**touched, j: g}) for g in groups]
            if len(groups) > 1 and all(pl[1] == 0 and pl[0][0] == j for pl in plans):
                out += [_Component(ctx, members, {**touched, j: g}) for g in groups]
                continue
        out.append(_Component(ctx, members, touched))
    return out


def _coread_groups(j: str, reads: Sequence[_Reads]) -> list[set[int]]:
    """Parent configurations of V_j joined when one branch reads both."""
    seen: dict[int, None] = {}
    links: list[tuple[int, int]] = []
    for br in reads:
        flats = [flat for jj, flat, _ in br if jj == j]
        for f in flats:
            seen.update(dict.fromkeys(np.unique(f).tolist()))
        for f1, f2 in itertools.pairwise(flats):
            links += [(a, b) for a, b in np.unique(np.stack([f1, f2], axis=1), axis=0).tolist()]
    return [set(g) for g in _connected(seen, links)]
