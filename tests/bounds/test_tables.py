"""Bounds of many queries on many tables (the bootstrap of ``cfedit evaluate``): the batch path, the lumped
RLT relaxation and the LP solver against the plain ones, on resampled tables of a user's diagram."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.optimize import linprog

from cfedit.bounds import bounds_on_tables, optimal_bounds
from cfedit.bounds import programmes as programmes_module
from cfedit.bounds.lp import solve_lp
from cfedit.bounds.programmes import Lumped
from cfedit.core.domains import Domains
from cfedit.core.graph import CausalGraph
from cfedit.core.query import parse_query
from cfedit.errors import DataError, QueryError
from cfedit.scm import SCM, Exogenous

GRAPH = "D -> X; X -> Y; D -> Y; Y -> Z; X <-> Y; D <-> Z"  # the slow case of the bootstrap: D <-> Z read with X <-> Y
QUERIES = ("P(Z[D=0]=1 | D=2, X=1, Y=0, Z=0)", "P(Z[D=3]=0 | D=1, X=0, Y=1, Z=1)", "P(X[D=0]=0 | D=2, X=1, Y=0, Z=0)",
           "P(Y[D=3]=1 | D=1, X=0, Y=1, Z=1)", "P(Z[X=0]=1 | D=2, X=1, Y=0, Z=0)", "P(Y[X=1]=0 | D=3, X=0, Y=1, Z=1)",
           "P(Z[Y=1]=1 | D=0, X=1, Y=0, Z=0)")


def _user_scm(seed: int = 0) -> SCM:
    """D with 4 values, X, Y, Z binary; a 6-state exogenous per bidirected edge and per factor, random tables."""
    g = CausalGraph.parse(GRAPH)
    rng = np.random.default_rng(seed)
    dom = Domains({"D": ["0", "1", "2", "3"], "X": ["0", "1"], "Y": ["0", "1"], "Z": ["0", "1"]})
    exo = [Exogenous(f"U{a}{b}", tuple(rng.dirichlet(np.ones(6))), (a, b)) for a, b in g.bidirected]
    exo += [Exogenous(f"N{v}", tuple(rng.dirichlet(np.ones(6))), (v,)) for v in g.nodes]
    mech = {}
    for v in g.nodes:
        reads = [e for e in exo if v in e.readers]
        pa = g.parents(v)
        table = rng.integers(0, dom.size(v), size=[dom.size(q) for q in pa] + [e.size for e in reads])
        mech[v] = lambda par, u, _pa=pa, _r=tuple(e.name for e in reads), _t=table: _t[
            tuple(np.asarray(par[q]) for q in _pa) + tuple(np.asarray(u[r]) for r in _r)]
    return SCM(g, dom, exo, mech)


def _tables(scm: SCM, n: int, count: int, seed: int) -> list[np.ndarray]:
    """Bootstrap-like tables: multinomial draws of n rows from the SCM's P(V) (small n leaves cells empty)."""
    p = scm.observational().reshape(-1)
    rng = np.random.default_rng(seed)
    return [(rng.multinomial(n, p / p.sum()) / n).reshape(scm.domains.shape) for _ in range(count)]


def _plain(query, scm: SCM, table: np.ndarray):
    """optimal_bounds, or None where it refuses the table."""
    try:
        return optimal_bounds(query, scm.graph, scm.domains, table)
    except (QueryError, DataError):
        return None


def test_the_batch_equals_optimal_bounds_and_the_lumped_relaxation_the_whole_one(monkeypatch):
    """On resampled tables (some lacking a query's evidence), bounds_on_tables gives each query the bounds,
    certificate and method that optimal_bounds gives it on that table, and refuses the same pairs; and
    those equal the bounds without the lumping of the RLT relaxation (every response type its own
    coordinate), which the multilinear queries here do use: of {D, Z}'s 16 types, the 12 with D other than
    the evidence's become one coordinate."""
    scm = _user_scm()
    qs = [parse_query(t, scm.domains) for t in QUERIES]
    tables = _tables(scm, 150, 4, seed=1) + _tables(scm, 5000, 2, seed=2)
    sizes: list[tuple[int, int]] = []
    real = programmes_module.lumped

    def spy(c, masks):
        out = real(c, masks)
        sizes.append((out.types, out.n))
        return out

    monkeypatch.setattr(programmes_module, "lumped", spy)
    fast = list(bounds_on_tables(qs, scm.graph, scm.domains, iter(tables)))
    assert (16, 5) in sizes  # {D, Z} lumped and pooled
    plain = [[_plain(q, scm, t) for q in qs] for t in tables]
    monkeypatch.setattr(programmes_module, "lumped", lambda c, masks: Lumped.whole(c))
    whole = [[_plain(q, scm, t) for q in qs] for t in tables]
    methods, refused = set(), 0
    for row_f, row_p, row_w in zip(fast, plain, whole):
        for f, p, w in zip(row_f, row_p, row_w):
            assert (f is None) == (p is None) == (w is None)
            if f is None:
                refused += 1
                continue
            methods.add(f.method)
            assert f == p  # the same computation, shared across queries and tables
            assert abs(f.lower - w.lower) < 1e-9 and abs(f.upper - w.upper) < 1e-9, (f, w)
            assert f.certified == w.certified
    assert refused and "multilinear" in methods and "lp" in methods


def test_bounds_on_tables_reads_tables_lazily_and_refuses_a_bad_query():
    scm = _user_scm()
    q = parse_query(QUERIES[0], scm.domains)
    drawn = []

    def tables():
        for t in _tables(scm, 5000, 3, seed=3):
            drawn.append(t)
            yield t

    it = bounds_on_tables([q], scm.graph, scm.domains, tables())
    first = next(it)
    assert len(drawn) == 1 and first[0] == optimal_bounds(q, scm.graph, scm.domains, drawn[0])
    assert len(list(it)) == 2
    with pytest.raises(QueryError):
        list(bounds_on_tables(["P(W[X=1]=1)"], scm.graph, scm.domains, _tables(scm, 100, 1, seed=0)))


@pytest.mark.parametrize("seed", range(6))
def test_solve_lp_agrees_with_linprog(seed):
    """Random feasible programmes min c y, A y = b, y >= 0 (b = A y0 for a random y0 >= 0): HiGHS directly
    and through linprog give the same optimum; an infeasible one (y >= 0 summing to -1) has a non-zero status."""
    rng = np.random.default_rng(seed)
    m, n = int(rng.integers(2, 30)), int(rng.integers(5, 80))
    A = sp.vstack([sp.random(m, n, density=0.3, random_state=seed), sp.csr_matrix(np.ones((1, n)))]).tocsr()
    b = A @ rng.dirichlet(np.ones(n))
    c = rng.standard_normal(n)
    res = solve_lp(c, A, b)
    ref = linprog(c, A_eq=A, b_eq=b, bounds=(0, None), method="highs")
    assert res.status == 0 and abs(res.fun - ref.fun) < 1e-9 * (1 + abs(ref.fun))
    assert np.abs(A @ res.x - b).max() < 1e-8 and res.x.min() > -1e-9
    bad = solve_lp(c, sp.csr_matrix(np.ones((1, n))), np.array([-1.0]))
    assert bad.status != 0 and bad.x is None
