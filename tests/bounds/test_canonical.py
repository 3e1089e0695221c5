"""The canonical reduction: only the slots a query reads (or P(V) constrains) enter the programme."""

from __future__ import annotations

import numpy as np

from cfedit.bounds import Bounds, optimal_bounds
from cfedit.bounds.canonical import _Component
from cfedit.bounds.context import Context
from cfedit.bounds.forms import _Branches
from cfedit.core.domains import Domains
from cfedit.core.graph import CausalGraph
from cfedit.core.query import parse_query

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
    _Branches(ctx, (*q.outcome, *q.given)).touched(touched)
    _Branches(ctx, q.given).touched(touched)
    comp = _Component(ctx, ("B",), touched)
    assert len(comp.slots) == 2 and comp.n == 4  # 2^20 response functions without the reduction
