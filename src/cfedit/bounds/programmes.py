"""The programmes: which components matter, and the LPs that bound the query.

A component is *fixed* for a form when every fibre along it has one expectation over its feasible laws
(:func:`_is_fixed`); the free ones that share a term form clusters (:func:`_clusters`). The query is then
linear-fractional in the concatenated cluster laws: one Charnes-Cooper LP (:func:`_block_lfp`), exact
for clusters of one component and the level-1 RLT relaxation otherwise. Block-coordinate optimisation
(:func:`_alternate`, one exact :func:`_lfp` per block) gives values attained by explicit models.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence

import numpy as np
import scipy.sparse as sp
from scipy.optimize import linprog

from cfedit.bounds.canonical import _LP_OPTIONS, _Component, _connected
from cfedit.bounds.forms import _Poly
from cfedit.errors import QueryError

_MAX_RLT = 200_000  # joint response types in the relaxation of a multilinear query
_FIXED_TOL = 1e-9  # a fibre whose range over the feasible set is below this (relative) is constant


def _is_fixed(c: _Component, P: _Poly, v: int, rng: np.random.Generator) -> bool:
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


def _lfp(c: _Component, f: np.ndarray | float, g: np.ndarray | float, sense: float) -> tuple[float, np.ndarray | None]:
    """Optimise (f . q) / (g . q) over the feasible laws q of one component, exactly, by the
    Charnes-Cooper LP in (y, t) = (t q, 1 / (g . q)):

        min sense f . y   s.t.   H y = 0,  1 . y = t,  g . y = 1,  y, t >= 0

    (a scalar g is the constant denominator: g t = 1). ``sense`` is +1 for the minimum and -1 for the
    maximum. Sparse throughout: memory O(nnz(H) + n) for n response types. Returns the value and q
    (None when the optimum is a limit that no law attains)."""
    n = c.n
    f = np.broadcast_to(np.asarray(f, dtype=float), (n,))
    t_col = sp.csr_matrix((c.H.shape[0], 1))
    norm = sp.csr_matrix(np.append(np.ones(n), -1.0)[None, :])
    den = (sp.csr_matrix(([float(g)], ([0], [n])), shape=(1, n + 1)) if np.ndim(g) == 0
           else sp.csr_matrix(np.append(np.asarray(g, dtype=float), 0.0)[None, :]))
    A = sp.vstack([sp.hstack([c.H, t_col]), norm, den], format="csr")
    b = np.zeros(A.shape[0])
    b[-1] = 1.0
    res = linprog(sense * np.append(f, 0.0), A_eq=A, b_eq=b, bounds=(0, None), method="highs", options=_LP_OPTIONS)
    if res.status != 0:
        raise RuntimeError(f"the linear-fractional programme failed: {res.message}")
    t = res.x[-1]
    if t <= 1e-12:
        return sense * res.fun, None
    return sense * res.fun, np.clip(res.x[:n], 0, None) / t


def _rlt_rows(comps: Sequence[_Component]) -> sp.csr_matrix:
    """Rows H y = 0 on the joint types of ``comps``: every conditional law of one component given the
    others meets that component's constraints (exact for one component, the RLT relaxation otherwise)."""
    sizes = [c.n for c in comps]
    blocks = []
    for i, c in enumerate(comps):
        before, after = int(np.prod(sizes[:i])), int(np.prod(sizes[i + 1:]))
        if c.H.shape[0]:
            blocks.append(sp.kron(sp.kron(sp.identity(before), c.H), sp.identity(after)))
    return sp.vstack(blocks).tocsr() if blocks else sp.csr_matrix((0, int(np.prod(sizes))))


def _clusters(free: Sequence[int], polys: Sequence[_Poly]) -> list[list[int]]:
    """Free components joined when some term of a form involves both (their product matters)."""
    links = []
    for P in polys:
        for t in range(len(P.coef)):
            inv = P.involved(t, free)
            links += itertools.pairwise(inv)
    return _connected(free, links)


def _block_lfp(
    comps: Sequence[_Component], clusters: Sequence[Sequence[int]], num: _Poly, den: _Poly, sense: float
) -> tuple[float, list[np.ndarray] | None]:
    """Optimise num / den over one joint law Q_K per cluster K of free components.

    Every term of num and den involves one cluster at most, so the ratio is linear-fractional in the
    concatenated (Q_K): the Charnes-Cooper LP with one t shared by all clusters. Exact when every
    cluster is one component; the RLT relaxation of the multilinear problem otherwise.
    """
    parts = [[comps[v] for v in K] for K in clusters]
    sizes = [int(np.prod([c.n for c in cs])) for cs in parts]
    if sum(sizes) > _MAX_RLT:
        raise QueryError(f"the query couples C-components with {sum(sizes):.3g} joint response types "
                         f"(limit {_MAX_RLT}); use cfedit.bounds.neural instead")
    f0, fK = num.by_cluster(clusters, comps)
    g0, gK = den.by_cluster(clusters, comps)
    N = sum(sizes)
    rows = []
    offset = 0
    for cs, n in zip(parts, sizes):
        H = _rlt_rows(cs)
        pad = (sp.csr_matrix((H.shape[0], offset)), H, sp.csr_matrix((H.shape[0], N - offset - n + 1)))
        rows.append(sp.hstack(pad))
        norm = np.zeros(N + 1)
        norm[offset: offset + n], norm[-1] = 1.0, -1.0
        rows.append(sp.csr_matrix(norm[None, :]))
        offset += n
    rows.append(sp.csr_matrix(np.concatenate([*(g.reshape(-1) for g in gK), [g0]])[None, :]))
    A = sp.vstack(rows).tocsr()
    b = np.zeros(A.shape[0])
    b[-1] = 1.0
    c = sense * np.concatenate([*(f.reshape(-1) for f in fK), [f0]])
    res = linprog(c, A_eq=A, b_eq=b, bounds=(0, None), method="highs", options=_LP_OPTIONS)
    if res.status != 0:
        raise RuntimeError(f"the linear-fractional programme failed: {res.message}")
    t = res.x[-1]
    if t <= 1e-12:
        return sense * res.fun, None
    Qs, offset = [], 0
    for cs, n in zip(parts, sizes):
        Qs.append(np.clip(res.x[offset: offset + n], 0, None).reshape([c.n for c in cs]) / t)
        offset += n
    return sense * res.fun, Qs


def _alternate(
    comps: Sequence[_Component], free: Sequence[int], num: _Poly, den: _Poly, sense: float,
    starts: Iterable[dict[int, np.ndarray]], target: float, tol: float,
) -> tuple[float, dict[int, np.ndarray]]:
    """Block-coordinate optimisation of the multilinear ratio from several starts (taken lazily: the
    rest are not drawn once one reaches ``target``); each block is an exact linear-fractional
    programme, so every value returned is attained by an explicit model. A block whose fibres are
    unchanged since it was last solved is already at its optimum and is not solved again."""
    starts = iter(starts)
    first = next(starts)
    best_val, best_q = np.inf, dict(first)
    for start in itertools.chain([first], starts):
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
                value, q = _lfp(comps[v], f, g, sense)
                if q is not None:
                    qs[v] = q.reshape(-1) / q.sum()
                    val = sense * value
            if val >= old - 1e-12:
                break
        val = sense * num.value(qs) / den.value(qs) if den.value(qs) > 1e-12 else np.inf
        if val < best_val:
            best_val, best_q = val, qs
        if abs(sense * best_val - target) < tol:
            break
    return sense * best_val, best_q


def _start(comps: Sequence[_Component], clusters: Sequence[Sequence[int]], Qs: list[np.ndarray] | None
           ) -> dict[int, np.ndarray]:
    """Per free component, the marginal of its cluster's optimal joint law (a feasible law)."""
    out = {}
    for i, K in enumerate(clusters):
        for a, v in enumerate(K):
            if Qs is None:
                out[v] = comps[v].q0
                continue
            m = Qs[i].sum(axis=tuple(k for k in range(len(K)) if k != a))
            out[v] = m / m.sum() if m.sum() > 0 else comps[v].q0
    return out
