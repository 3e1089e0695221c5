"""The canonical reduction: only the slots a query reads (or P(V) constrains) enter the programme, and a
law whose unread slots attach to a few read ones is lifted."""

from __future__ import annotations

import numpy as np
import pytest

from cfedit.bounds import Bounds, extremal_models, optimal_bounds
from cfedit.bounds.canonical import Component
from cfedit.bounds.context import Context
from cfedit.bounds.forms import Branches
from cfedit.core.domains import Domains
from cfedit.core.graph import CausalGraph
from cfedit.core.query import parse_query
from cfedit.scm import SCM, Exogenous

BIN = ("0", "1")


def _close(b: Bounds, lo: float, hi: float, tol: float = 1e-6) -> None:
    assert abs(b.lower - lo) < tol and abs(b.upper - hi) < tol, (b, lo, hi)


def test_pns_of_colour_on_bar_with_the_digit_free():
    """Backdoor world, P(B_{green} = 1, B_{red} = 0): each unit reads the pair (r_B(d, green), r_B(d, red))
    of its own digit, so the bounds are sum_d P(d) Frechet(P(b | d, green), P(b' | d, red)); with
    t(C, large) and P(large) = 0.5: 0.5 [0.3, 0.5] + 0.5 [0.4, 0.6] = [0.35, 0.55]. The programme splits
    B's 20 slots into 10 independent pairs (2^20 joint response functions otherwise)."""
    from cfedit.worlds import get_world

    w = get_world("backdoor")
    p = w.scm.observational()
    q = parse_query("P(B[C=green]=1, B[C=red]=0)", w.domains)
    b = optimal_bounds(q, w.graph, w.domains, p)
    _close(b, 0.35, 0.55)
    assert b.certified and b.contains(w.scm.probability(q))


def test_reduction_keeps_digit_parents_small():
    """A Markovian factor with a 10-valued parent: only the slots the query reads enter the programme."""
    g = CausalGraph.parse("D <-> C; D -> B; C -> B")
    dom = Domains({"D": [str(d) for d in range(10)], "C": ["green", "red"], "B": BIN})
    p = np.random.default_rng(0).dirichlet(np.ones(40)).reshape(10, 2, 2)
    ctx = Context(g, dom, p)
    q = parse_query("P(B[C=green]=1 | D=7, C=red, B=0)", dom)
    touched: dict = {}
    Branches(ctx, (*q.outcome, *q.given)).touched(touched)
    Branches(ctx, q.given).touched(touched)
    comp = Component(ctx, ("B",), touched)
    assert len(comp.slots) == 2 and comp.n == 4  # 2^20 response functions without the reduction


# ---------------------------------------------------------------------------------- a user's 4-factor diagram
USER_GRAPHS = {
    # X's slots r_X(d) are read at the evidence's digit only; the others meet only their marginal: dropped
    "dropped": "D -> X; X -> Y; D -> Y; Y -> Z; X <-> Y; D <-> Z",
    # Z's key holds D, so every r_X(d) is constrained jointly with Z's slots: a lifted law
    "lifted": "D -> X; D -> Y; X -> Z; Y -> Z; X <-> Z; D <-> Y",
}
USER_QUERIES = {  # edit queries with informative bounds (and two multilinear ones)
    "dropped": ["P(Z[X=1]=1 | D=3, X=0)", "P(Z[Y=1]=1 | D=3, Z=0)", "P(X[D=1]=1 | D=3, X=0, Z=0)",
                "P(Z[D=2]=1 | D=3, Z=0)", "P(Z[X=1]=1, Z[X=0]=0 | D=3)"],
    "lifted": ["P(Z[X=1]=1 | D=3, X=0)", "P(Z[Y=1]=1 | D=3, Z=0)", "P(X[D=1]=1 | D=3, X=0, Z=0)",
               "P(Z[X=1]=1, Z[X=0]=0 | D=3)"],
}


def _user_scm(graph: CausalGraph, seed: int) -> SCM:
    """D 4-valued, X, Y, Z binary; 5-state confounders and own noises, random mechanisms with a flip of
    probability 0.1-0.3 (so P(V) > 0 and the queries' evidence is possible)."""
    rng = np.random.default_rng(seed)
    dom = Domains({"D": [str(d) for d in range(4)], "X": BIN, "Y": BIN, "Z": BIN})
    exo = [Exogenous(f"U{a}{b}", tuple(rng.dirichlet(np.ones(5))), (a, b)) for a, b in graph.bidirected]
    exo += [Exogenous(f"N{v}", tuple(rng.dirichlet(np.ones(5))), (v,)) for v in graph.nodes]
    exo += [Exogenous(f"F{v}", tuple(rng.dirichlet(np.ones(dom.size(v)) * 8) * 0.3 + np.eye(dom.size(v))[0] * 0.7),
                      (v,)) for v in graph.nodes]
    mech = {}
    for v in graph.nodes:
        reads = [e for e in exo if v in e.readers and not e.name.startswith("F")]
        pa = graph.parents(v)
        table = rng.integers(0, dom.size(v), size=[dom.size(q) for q in pa] + [e.size for e in reads])

        def f(par, u, _pa=pa, _reads=tuple(e.name for e in reads), _t=table, _v=v, _k=dom.size(v)):
            idx = tuple(np.asarray(par[q]) for q in _pa) + tuple(np.asarray(u[r]) for r in _reads)
            return (_t[idx] + u[f"F{_v}"]) % _k

        mech[v] = f
    return SCM(graph, dom, exo, mech)


@pytest.mark.parametrize("kind", sorted(USER_GRAPHS))
def test_dropped_first_slots_and_lifted_laws_leave_the_bounds_unchanged(kind, monkeypatch):
    """On a 4-factor diagram with a many-valued parent, the bounds (and attained values) of edit queries
    equal those of the programme without the two reductions (every slot of the first member kept, one
    block of whole response types), to 1e-9; the witnesses glue lifted laws into SCMs that reproduce
    P(V) and attain the values."""
    from cfedit.bounds import canonical

    scm = _user_scm(CausalGraph.parse(USER_GRAPHS[kind]), seed=1)
    p = scm.observational()
    assert p.min() > 0
    used = {"dropped": 0, "lifted": 0}
    linked, blocks = canonical.linked_first_slots, canonical.lifted_blocks

    def spy_linked(ctx, active, partial, last_kept):
        out = linked(ctx, active, partial, last_kept)
        used["dropped"] += len(out) < ctx.n_configs(active[0])
        return out

    def spy_blocks(*args):
        out = blocks(*args)
        used["lifted"] += len(out) > 1
        return out

    monkeypatch.setattr(canonical, "linked_first_slots", spy_linked)
    monkeypatch.setattr(canonical, "lifted_blocks", spy_blocks)
    queries = USER_QUERIES[kind]
    fast = [optimal_bounds(q, scm.graph, scm.domains, p) for q in queries]
    witnesses = [extremal_models(q, scm.graph, scm.domains, p) for q in queries]
    assert used[kind] > 0  # the reduction under test took place
    monkeypatch.setattr(canonical, "linked_first_slots", lambda ctx, active, *_: set(range(ctx.n_configs(active[0]))))
    monkeypatch.setattr(canonical, "lifted_blocks", lambda sizes, *_: [tuple(range(len(sizes)))])
    for text, b, (m_lo, m_hi) in zip(queries, fast, witnesses):
        whole = optimal_bounds(text, scm.graph, scm.domains, p)
        assert abs(b.lower - whole.lower) < 1e-9 and abs(b.upper - whole.upper) < 1e-9, (text, b, whole)
        assert b.attained == pytest.approx(whole.attained, abs=1e-9) and b.method == whole.method
        assert b.contains(scm.probability(parse_query(text, scm.domains)))
        for m, v in ((m_lo, b.attained[0]), (m_hi, b.attained[1])):
            assert np.abs(m.observational() - p).max() < 1e-8
            assert abs(m.probability(parse_query(text, scm.domains)) - v) < 1e-6
