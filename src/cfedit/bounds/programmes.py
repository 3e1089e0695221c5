"""The programmes: which components matter, and the LPs that bound the query.

A component is *fixed* for a form when every fibre along it has one expectation over its feasible laws
(:func:`is_fixed`); the free ones that share a term form clusters (:func:`clusters_of`). The query is then
linear-fractional in the concatenated cluster laws: one Charnes-Cooper LP (:func:`block_lfp`), exact
for clusters of one component and the level-1 RLT relaxation otherwise, whose joint law over the
product of the components' types first sums, in each component, the types that no event tells apart
(:func:`lumped`, exact). Block-coordinate optimisation (:func:`alternate`, one exact :func:`lfp` per
block) gives values attained by explicit models.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from cfedit.bounds.canonical import Component, connected
from cfedit.bounds.forms import Poly
from cfedit.bounds.lp import solve_lp
from cfedit.errors import QueryError

__all__ = ["Lumped", "alternate", "block_lfp", "clusters_of", "is_fixed", "lfp", "lp_size", "lumped", "needs_rlt", "product_of_events",
           "start_laws"]

_MAX_RLT = 200_000  # joint response types in the relaxation of a multilinear query
_FIXED_TOL = 1e-9  # a fibre whose range over the feasible set is below this (relative) is constant


def is_fixed(c: Component, P: Poly, v: int, rng: np.random.Generator) -> bool:
    """Whether every fibre of P along v has one expectation over all feasible q_v.

    A random combination f of the fibres is tested (if any fibre varies, so does f, with probability
    one): two feasible points that disagree prove it free; f in the row space of the constraints (an
    explicit residual below 1e-10) proves it fixed; otherwise two LPs decide.
    """
    f = P.fibres(v, rng.standard_normal(P.n_groups(v)))
    if np.ptp(f) == 0:
        return True
    scale = 1 + np.abs(f).max()
    if abs(f @ c.q0 - f @ c.q1) > 1e-7 * scale:
        return False
    if c.residual(f) <= 1e-10 * scale:
        return True
    lo, hi = c.range_of(f)
    return hi - lo <= _FIXED_TOL * scale


def lfp(c: Component, f: np.ndarray | float, g: np.ndarray | float, sense: float) -> tuple[float, np.ndarray | None]:
    """Optimise (f . q) / (g . q) over the feasible laws q of one component, exactly, by the
    Charnes-Cooper LP in (y, t) = (t q, 1 / (g . q)):

        min sense f . y   s.t.   H y = 0,  1 . y = t,  g . y = 1,  y, t >= 0

    (a scalar g is the constant denominator: g t = 1). ``sense`` is +1 for the minimum and -1 for the
    maximum. Sparse throughout: memory O(nnz(H) + n) for n response types. Returns the value and q
    (None when the optimum is a limit that no law attains)."""
    n = c.n
    f = np.broadcast_to(np.asarray(f, dtype=float), (n,))
    m = c.H.shape[0]
    A = _Rows(n + 1)
    if "H triplets" not in c.memo:
        c.memo["H triplets"] = _triplets(c.H)
    A.add(*c.memo["H triplets"], m)
    A.dense(np.append(c.norm, -1.0))
    A.dense(np.append(np.zeros(n), float(g)) if np.ndim(g) == 0 else np.append(np.asarray(g, dtype=float), 0.0))
    b = np.zeros(A.m)
    b[-1] = 1.0
    res = solve_lp(sense * np.append(f, 0.0), A.matrix(), b)
    if res.status != 0:
        raise RuntimeError(f"the linear-fractional programme failed: {res.message}")
    t = res.x[-1]
    if t <= 1e-12:
        return sense * res.fun, None
    return sense * res.fun, np.clip(res.x[:n], 0, None) / t


class _Rows:
    """A sparse matrix of ``n`` columns assembled row block by row block from (row, column, value)
    triplets: one conversion at the end instead of a sparse stack per block."""

    def __init__(self, n: int):
        self.n, self.m = n, 0
        self.parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def add(self, rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, m: int, offset: int = 0) -> None:
        """A block of ``m`` rows whose column 0 is column ``offset`` here."""
        self.parts.append((rows + self.m, cols + offset, vals))
        self.m += m

    def dense(self, row: np.ndarray, offset: int = 0) -> None:
        nz = np.flatnonzero(row)
        self.add(np.zeros(len(nz), dtype=np.int64), nz, row[nz], 1, offset)

    def matrix(self) -> sp.csc_matrix:
        if not self.parts:
            return sp.csc_matrix((self.m, self.n))
        rows, cols, vals = (np.concatenate(x) for x in zip(*self.parts))
        return sp.csc_matrix((vals, (rows, cols)), shape=(self.m, self.n))


def _triplets(M: sp.spmatrix) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row, column, value) of the entries of a sparse matrix."""
    M = sp.csr_matrix(M)
    return np.repeat(np.arange(M.shape[0]), np.diff(M.indptr)), M.indices.astype(np.int64), M.data


def _rlt_rows(comps: Sequence[Component | Lumped]) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], int]:
    """Rows H y = 0 on the joint types of ``comps``: every conditional law of one component given the
    others meets that component's constraints (exact for one component, the RLT relaxation otherwise).
    Returned as triplets (the rows of I (x) H_i (x) I, component by component) and the number of rows."""
    sizes = [c.n for c in comps]
    out, m = [], 0
    for i, c in enumerate(comps):
        before, after = int(np.prod(sizes[:i])), int(np.prod(sizes[i + 1:]))
        mh, nh = c.H.shape
        if not mh:
            continue
        r, col, v = _triplets(c.H)
        a = np.arange(before)[:, None, None]
        z = np.arange(after)[None, None, :]
        rows = ((a * mh + r[None, :, None]) * after + z).reshape(-1)
        cols = ((a * nh + col[None, :, None]) * after + z).reshape(-1)
        out.append((rows + m, cols, np.broadcast_to(v[None, :, None], (before, len(v), after)).reshape(-1)))
        m += mh * before * after
    if not out:
        return (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0)), 0
    return tuple(np.concatenate(x) for x in zip(*out)), m


def lp_size(comps: Sequence[Component], clusters: Sequence[Sequence[int]], relaxed: Sequence[bool]
             ) -> tuple[int, int, int]:
    """Columns, rows and non-zeros of the programme of :func:`block_lfp` over ``clusters``."""
    cols, rows, nnz = 1, 1, 0
    for K, rlt in zip(clusters, relaxed):
        if len(K) > 1 and not rlt:  # one product of events: a scalar and two slacks
            cols, rows, nnz = cols + 3, rows + 2, nnz + 6
            continue
        n = [comps[v].n for v in K]
        size = math.prod(n)
        cols += size
        rows += 1
        nnz += size + 1
        for i, v in enumerate(K):
            rest = size // n[i]
            rows += comps[v].H.shape[0] * rest
            nnz += comps[v].H.nnz * rest
    return cols, rows, nnz + cols


def clusters_of(free: Sequence[int], polys: Sequence[Poly]) -> list[list[int]]:
    """Free components joined when some term of a form involves both (their product matters)."""
    links = []
    for P in polys:
        for t in range(len(P.coef)):
            inv = P.involved(t, free)
            links += itertools.pairwise(inv)
    return connected(free, links)


def product_of_events(K: Sequence[int], num: Poly, den: Poly, free: Sequence[int]) -> tuple[list[np.ndarray], float, float] | None:
    """(events, a, b) when a cluster of several components enters num as a prod_v P_v(event_v) and den as
    b prod_v P_v(event_v): one product of events (a frontdoor query pinning every colour of the digits
    reads q_C(one colour vector) q_DB(one bar event)). The components' laws are independent, so the
    product ranges over exactly [prod_v min_v, prod_v max_v] (the events have non-negative
    probabilities) and the cluster enters the programme as one scalar in that interval: exact, and
    without the RLT relaxation. None when the cluster is not such a product."""
    if len(K) < 2:
        return None
    tn, td = num.cluster_terms(K, free), den.cluster_terms(K, free)
    keys = set(tn) | set(td)
    if len(keys) != 1:
        return None
    key = keys.pop()
    return [np.frombuffer(e, dtype=float).copy() for e in key], tn.get(key, 0.0), td.get(key, 0.0)


def needs_rlt(clusters: Sequence[Sequence[int]], num: Poly, den: Poly) -> list[bool]:
    """Per cluster, whether :func:`block_lfp` relaxes it (several components, not one product)."""
    free = [v for K in clusters for v in K]
    return [len(K) > 1 and product_of_events(K, num, den, free) is None for K in clusters]


_Extremes = tuple[float, np.ndarray, float, np.ndarray]
"""min, a law attaining it, max, a law attaining it."""


def _extremes(c: Component, event: np.ndarray) -> _Extremes:
    """The range of P(event) = event . q over the feasible laws q of ``c``, with laws attaining it."""
    if np.array_equal(event, c.norm):
        return 1.0, c.q0, 1.0, c.q0
    lo, q_lo = lfp(c, event, 1.0, 1.0)
    hi, q_hi = lfp(c, event, 1.0, -1.0)
    return lo, q_lo, hi, q_hi


def _on_path(K: Sequence[int], ext: Sequence[_Extremes], s: float) -> dict[int, np.ndarray]:
    """Laws of K's components whose product of event probabilities is s, a value of [prod min, prod max]:
    along the path that moves one component at a time from its minimising to its maximising law, the
    product is linear and non-decreasing on each leg."""
    lo = [e[0] for e in ext]
    hi = [e[2] for e in ext]
    for i in range(len(K)):
        before = math.prod(hi[:i]) * math.prod(lo[i:])
        after = math.prod(hi[: i + 1]) * math.prod(lo[i + 1:])
        if s <= after or i == len(K) - 1:
            lam = float(np.clip((s - before) / (after - before), 0.0, 1.0)) if after > before else 0.0
            out = {v: ext[u][3] for u, v in enumerate(K[:i])}
            out[K[i]] = (1 - lam) * ext[i][1] + lam * ext[i][3]
            out.update({v: ext[u][1] for u, v in enumerate(K) if u > i})
            return out
    raise AssertionError("unreachable")


_LUMP_CELLS = 5_000_000  # constraint rows x types up to which a component's types are checked for lumping (dense)


@dataclass(frozen=True)
class Lumped:
    """A component's law with the types of some groups summed into one coordinate each (:func:`lumped`):
    coordinates ``kept`` types as they are, then one per group. ``rep`` is a type standing for each
    coordinate; :meth:`expand` spreads a lumped law back over the types (each group by a fixed law)."""

    n: int
    H: sp.csr_matrix
    norm: np.ndarray
    rep: np.ndarray
    kept: np.ndarray
    groups: tuple[tuple[np.ndarray, np.ndarray], ...]  # (types, their law given the group)
    types: int

    @classmethod
    def whole(cls, c: Component) -> Lumped:
        """The law of ``c`` as it is: no group."""
        return cls(c.n, c.H, c.norm, np.arange(c.n), np.arange(c.n), (), c.n)

    def expand(self, y: np.ndarray) -> np.ndarray:
        out = np.zeros(self.types)
        out[self.kept] = y[: len(self.kept)]
        for i, (idx, w) in enumerate(self.groups):
            out[idx] = y[len(self.kept) + i] * w
        return out


def lumped(c: Component, masks: Sequence[np.ndarray | None]) -> Lumped:
    """The law of ``c`` for the RLT relaxation, with the types r_s = u summed for the values u of one slot s
    that no event distinguishes, when that is exact (remembered in ``c.memo``).

    A group G_u = {r : r_s = u} is summed into one coordinate when every event (``masks``, and the sure
    event) is constant on G_u, and every constraint row either is constant on G_u (the row keeps that
    constant as the group's coefficient) or has all its non-zeros inside G_u (the row only shapes the law
    given r_s = u, and is dropped), and the feasible law ``q0`` gives G_u mass. Exact: summing maps the
    feasible laws onto the feasible lumped laws, and spreading each group by the law q0 gives it inside the
    group (which meets the dropped rows) maps them back, for one component and, applied to each factor of
    the joint law, for the RLT relaxation (spreading is linear and keeps signs and sums); the events do
    not see the difference. The groups are then pooled into one when only the slot's own marginal rows
    tell them apart (:func:`_pooled`). With a 10-valued D confounded with Z and evidence D = 7, the nine
    values r_D != 7 become one coordinate instead of nine times the joint values of Z's slots. The slot
    that saves the most coordinates is lumped."""
    key = ("lumped", *(b"" if m is None else m.tobytes() for m in masks))
    if key not in c.memo:
        c.memo[key] = _lumping(c, masks)
    return c.memo[key]


def _lumping(c: Component, masks: Sequence[np.ndarray | None]) -> Lumped:
    n = c.n
    same = Lumped.whole(c)
    if c.lifted or n < 2 or c.H.shape[0] * n > _LUMP_CELLS:
        return same
    T = c.blocks[0][1]
    M = np.vstack([c.norm[None], *(m for m in masks if m is not None)])
    H = c.H.toarray()
    best, best_gain = None, 0
    for s in range(T.shape[1]):
        order = np.argsort(T[:, s], kind="stable")
        _, starts, counts = np.unique(T[order, s], return_index=True, return_counts=True)
        if len(starts) < 2:
            continue
        Mo, Ho = M[:, order], H[:, order]
        const_m = np.minimum.reduceat(Mo, starts, axis=1) == np.maximum.reduceat(Mo, starts, axis=1)
        low = np.minimum.reduceat(Ho, starts, axis=1) if len(H) else np.zeros((0, len(starts)))
        const_h = low == (np.maximum.reduceat(Ho, starts, axis=1) if len(H) else low)
        nz = np.add.reduceat(Ho != 0, starts, axis=1) if len(H) else np.zeros((0, len(starts)), dtype=np.int64)
        inside = (nz == nz.sum(axis=1, keepdims=True)) & (nz > 0)
        mass = np.add.reduceat(c.q0[order], starts)
        ok = const_m.all(axis=0) & (const_h | inside).all(axis=0) & (counts > 1) & (mass > 0)
        gain = int((counts[ok] - 1).sum())
        if gain > best_gain:
            best, best_gain = (order, starts, counts, ok, low, const_h, inside), gain
    if best is None:
        return same
    order, starts, counts, ok, low, const_h, inside = best
    chosen = np.flatnonzero(ok)
    idx = [order[starts[g]: starts[g] + counts[g]] for g in chosen]
    grouped = np.zeros(n, dtype=bool)
    for i in idx:
        grouped[i] = True
    kept = np.flatnonzero(~grouped)
    rows = ~(inside[:, chosen] & ~const_h[:, chosen]).any(axis=1)  # rows inside a lumped group are dropped
    Hl = np.hstack([H[rows][:, kept], low[rows][:, chosen]])
    Hl = Hl[np.abs(Hl).max(axis=1, initial=0) > 0]
    groups = [(i, c.q0[i] / c.q0[i].sum()) for i in idx]
    Hl, groups = _pooled(Hl, groups, M[:, [i[0] for i in idx]], len(kept))
    rep = np.concatenate([kept, [i[0] for i, _ in groups]]).astype(np.int64)
    return Lumped(len(rep), sp.csr_matrix(Hl), c.norm[rep], rep, kept, tuple(groups), n)


def _pooled(H: np.ndarray, groups: list[tuple[np.ndarray, np.ndarray]], events: np.ndarray, k: int
            ) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
    """The groups of a lumped law (columns k, k + 1, ... of H) pooled into one, when exact: the events
    (``events``, one column per group) take the same value on every group, every row is constant over
    the groups but for one row per group that reads a_u y_u + b_u (sum of y) = 0 (the slot's own marginal,
    P(r_s = u) = P(u | pa): a_u = 1, b_u = -P(u | pa)), with -b_u / a_u > 0. Those rows become their sum
    divided by a_u, and the pooled coordinate spreads over the groups in the proportions -b_u / a_u
    (which meet each of them); the other rows never tell the groups apart. Else H and groups unchanged."""
    m = len(groups)
    if m < 2 or (events != events[:, :1]).any():
        return H, groups
    G = H[:, k:]
    const = (G == G[:, :1]).all(axis=1)
    marginal = {}
    for r in np.flatnonzero(~const):
        base = np.delete(H[r], k + np.arange(m))
        if not len(base) or (base != base[0]).any():
            return H, groups
        odd = np.flatnonzero(G[r] != base[0])
        if len(odd) != 1 or (G[r][np.arange(m) != odd[0]] != base[0]).any() or odd[0] in marginal:
            return H, groups
        marginal[int(odd[0])] = (r, G[r, odd[0]] - base[0], base[0])  # row, a_u, b_u
    if len(marginal) != m:
        return H, groups
    share = np.array([-marginal[u][2] / marginal[u][1] for u in range(m)])
    if (share <= 0).any():
        return H, groups
    total = share.sum()
    pooled_row = np.append(np.full(k, -total), 1.0 - total)  # sum_u (row_u / a_u)
    rows = [H[r, : k + 1] for r in np.flatnonzero(const)]  # constant rows: one column for the pooled group
    H = np.vstack([*rows, pooled_row]) if rows else pooled_row[None]
    idx = np.concatenate([i for i, _ in groups])
    w = np.concatenate([share[u] / total * groups[u][1] for u in range(m)])
    return H, [(idx, w)]


def block_lfp(
    comps: Sequence[Component], clusters: Sequence[Sequence[int]], num: Poly, den: Poly, sense: float
) -> tuple[float, dict[int, np.ndarray] | None]:
    """Optimise num / den over one joint law Q_K per cluster K of free components; returns the value and
    a law per free component (None when the optimum is a limit no law attains).

    Every term of num and den involves one cluster at most, so the ratio is linear-fractional in the
    concatenated (Q_K): the Charnes-Cooper LP with one t shared by all clusters. Exact when every
    cluster is one component or one product of events (:func:`product_of_events`: a scalar in its exact range);
    the RLT relaxation of the multilinear problem otherwise. The laws are the marginals of Q_K (the
    RLT's are feasible but need not attain the value).
    """
    free = [v for K in clusters for v in K]
    products = {i: pr for i, K in enumerate(clusters) if (pr := product_of_events(K, num, den, free)) is not None}
    rlt = [K for i, K in enumerate(clusters) if i not in products]
    joint = sum(int(np.prod([comps[v].n for v in K])) for K in rlt)
    if joint > _MAX_RLT:
        raise QueryError(f"the query couples C-components with {joint:.3g} joint response types "
                         f"(limit {_MAX_RLT}); use cfedit.bounds.neural instead")
    # a cluster of several components (the RLT relaxation) sums the types that no event tells apart
    parts = [[lumped(comps[v], (num.masks[v], den.masks[v])) if len(K) > 1 else Lumped.whole(comps[v]) for v in K]
             for K in rlt]
    sizes = [int(np.prod([c.n for c in cs])) for cs in parts]
    skip = [clusters[i] for i in products]
    f0, fK = num.by_cluster(rlt, comps, skip)
    g0, gK = den.by_cluster(rlt, comps, skip)
    fK = [f[np.ix_(*(c.rep for c in cs))] for f, cs in zip(fK, parts)]  # the events are constant on each group
    gK = [g[np.ix_(*(c.rep for c in cs))] for g, cs in zip(gK, parts)]
    ext = {i: [_extremes(comps[v], e) for v, e in zip(clusters[i], products[i][0])] for i in products}
    N = sum(sizes) + 3 * len(products)  # per product: its scalar y = s t and two slacks
    A = _Rows(N + 1)
    offset = 0
    for cs, n in zip(parts, sizes):
        (r, col, v), m = _rlt_rows(cs)
        A.add(r, col, v, m, offset)
        norm = np.zeros(N + 1)
        norm[offset: offset + n], norm[-1] = functools.reduce(np.kron, [c.norm for c in cs]), -1.0
        A.dense(norm)
        offset += n
    f_prod, g_prod = np.zeros(3 * len(products)), np.zeros(3 * len(products))
    for k, i in enumerate(products):  # y + s_hi = max t, y - s_lo = min t
        lo, hi = math.prod(e[0] for e in ext[i]), math.prod(e[2] for e in ext[i])
        for slack, bound in ((1.0, hi), (-1.0, lo)):
            row = np.zeros(N + 1)
            row[offset + 3 * k], row[offset + 3 * k + (1 if slack > 0 else 2)], row[-1] = 1.0, slack, -bound
            A.dense(row)
        f_prod[3 * k], g_prod[3 * k] = products[i][1], products[i][2]
    A.dense(np.concatenate([*(g.reshape(-1) for g in gK), g_prod, [g0]]))
    b = np.zeros(A.m)
    b[-1] = 1.0
    c = sense * np.concatenate([*(f.reshape(-1) for f in fK), f_prod, [f0]])
    res = solve_lp(c, A.matrix(), b)
    if res.status != 0:
        raise RuntimeError(f"the linear-fractional programme failed: {res.message}")
    t = res.x[-1]
    if t <= 1e-12:
        return sense * res.fun, None
    laws: dict[int, np.ndarray] = {}
    offset = 0
    for K, cs, n in zip(rlt, parts, sizes):
        Q = np.clip(res.x[offset: offset + n], 0, None).reshape([c.n for c in cs]) / t
        for a, v in enumerate(K):
            m = cs[a].expand(Q.sum(axis=tuple(k for k in range(len(K)) if k != a)))
            total = comps[v].norm @ m
            laws[v] = m / total if total > 0 else comps[v].q0
        offset += n
    for k, i in enumerate(products):
        laws.update(_on_path(clusters[i], ext[i], res.x[offset + 3 * k] / t))
    return sense * res.fun, laws


def alternate(
    comps: Sequence[Component], free: Sequence[int], num: Poly, den: Poly, sense: float,
    starts: Iterable[dict[int, np.ndarray]], target: float, tol: float,
    done: Callable[[int, float], None] | None = None,
) -> tuple[float, dict[int, np.ndarray]]:
    """Block-coordinate optimisation of the multilinear ratio from several starts (taken lazily: the
    rest are not drawn once one reaches ``target``); each block is an exact linear-fractional
    programme, so every value returned is attained by an explicit model. A block whose fibres are
    unchanged since it was last solved is already at its optimum and is not solved again. ``done``
    hears (start number, best value so far) after each start."""
    starts = iter(starts)
    first = next(starts)
    best_val, best_q = np.inf, dict(first)
    for k, start in enumerate(itertools.chain([first], starts), start=1):
        qs = {v: q.copy() for v, q in start.items()}
        val = np.inf
        solved: dict[int, tuple[np.ndarray | float, np.ndarray | float]] = {}
        for _ in range(30):
            old = val
            for v in free:
                f, g = num.fibre(qs, v), den.fibre(qs, v)
                if np.ndim(g) and np.max(g) <= 1e-12:
                    continue
                if v in solved and all(np.array_equal(a, b) for a, b in zip(solved[v], (f, g))):
                    continue
                solved[v] = (f, g)
                value, q = lfp(comps[v], f, g, sense)
                if q is not None:
                    qs[v] = q.reshape(-1) / (comps[v].norm @ q)
                    val = sense * value
            if val >= old - 1e-12:
                break
        val = sense * num.value(qs) / den.value(qs) if den.value(qs) > 1e-12 else np.inf
        if val < best_val:
            best_val, best_q = val, qs
        if done is not None:
            done(k, sense * best_val)
        if abs(sense * best_val - target) < tol:
            break
    return sense * best_val, best_q


def start_laws(comps: Sequence[Component], free: Sequence[int], laws: dict[int, np.ndarray] | None
           ) -> dict[int, np.ndarray]:
    """Per free component, its law from :func:`block_lfp` (a feasible law), else q0."""
    return {v: (laws or {}).get(v, comps[v].q0) for v in free}
