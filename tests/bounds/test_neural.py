"""Neural bounds (Xia, Pan & Bareinboim 2023) against the exact programme on small binary graphs."""

from __future__ import annotations

import numpy as np
import pytest

from cfedit.bounds import optimal_bounds
from cfedit.bounds.neural import NeuralBoundsConfig, neural_bounds
from cfedit.core.domains import Domains
from cfedit.core.graph import CausalGraph
from cfedit.core.query import parse_query
from cfedit.errors import QueryError
from cfedit.scm import SCM

BIN = ("0", "1")


@pytest.mark.slow
@pytest.mark.parametrize(
    "graph,text",
    [
        ("X -> Y; X <-> Y", "P(Y[X=1]=1, Y[X=0]=0)"),  # PNS with confounding: [0, P(x,y) + P(x',y')]
        ("frontdoor", "P(C[D=1]=1 | D=0, C=0)"),  # needs U_C's states to anti-couple for the maximum
    ],
)
def test_neural_bounds_within_0_05_of_the_exact_bounds(graph: str, text: str, frontdoor: SCM):
    if graph == "frontdoor":
        scm = frontdoor
        g, dom, p = scm.graph, scm.domains, scm.observational()
    else:
        g, dom = CausalGraph.parse(graph), Domains({"X": BIN, "Y": BIN})
        p = np.array([[0.3, 0.2], [0.1, 0.4]])
    q = parse_query(text, dom)
    exact = optimal_bounds(q, g, dom, p)
    nb = neural_bounds(q, g, dom, p)
    assert not exact.identified
    assert abs(nb.lower - exact.lower) < 0.05 and abs(nb.upper - exact.upper) < 0.05, (nb, exact)
    assert max(nb.fit_tv) < 0.01  # both models reproduce P(V)


def test_neural_bounds_collapse_on_an_identified_query():
    g, dom = CausalGraph.parse("X -> Y"), Domains({"X": BIN, "Y": BIN})
    p = np.array([[0.3, 0.2], [0.1, 0.4]])
    nb = neural_bounds("P(Y[X=1]=1)", g, dom, p, NeuralBoundsConfig(steps=400))
    assert abs(nb.lower - 0.8) < 0.05 and abs(nb.upper - 0.8) < 0.05


def test_neural_bounds_refuse_bad_input():
    g, dom = CausalGraph.parse("X -> Y"), Domains({"X": BIN, "Y": BIN})
    p = np.array([[0.5, 0.0], [0.0, 0.5]])
    with pytest.raises(QueryError, match="probability zero"):
        neural_bounds("P(Y[X=1]=1 | X=0, Y=1)", g, dom, p)
    with pytest.raises(QueryError, match="unknown factor"):
        neural_bounds("P(Z=1)", g, dom, p)
