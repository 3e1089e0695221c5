"""Queries as events: contrasts, bad queries, evidence of probability zero."""

from __future__ import annotations

import numpy as np
import pytest

from cfedit.bounds import Contrast, optimal_bounds
from cfedit.core.domains import Domains
from cfedit.core.graph import CausalGraph
from cfedit.core.query import Atom, Query, parse_query
from cfedit.errors import QueryError

BIN = ("0", "1")


def test_contrast_format_and_values():
    dom = Domains({"X": BIN, "Y": BIN})
    ace = Contrast(((1.0, parse_query("P(Y[X=1]=1)", dom)), (-1.0, parse_query("P(Y[X=0]=1)", dom))))
    assert ace.format(dom) == "1 P(Y[X=1]=1) - 1 P(Y[X=0]=1)"
    p = np.array([[0.5 * 0.6, 0.5 * 0.4], [0.5 * 0.2, 0.5 * 0.8]])  # P(X, Y): P(y | x') = 0.4, P(y | x) = 0.8
    b = optimal_bounds(ace, CausalGraph.parse("X -> Y"), dom, p)  # no confounding: ACE identified
    assert b.identified and abs(b.value - 0.4) < 1e-9


def test_bad_queries_raise_query_errors(backdoorish):
    g, dom, p = backdoorish
    with pytest.raises(QueryError, match="unknown factor 'Z'"):
        optimal_bounds(Query((Atom("Z", 0),)), g, dom, p)
    with pytest.raises(QueryError, match="not a value of B"):
        optimal_bounds(Query((Atom("B", 5, (("C", 0),)),)), g, dom, p)
    with pytest.raises(QueryError, match="not a value of C"):
        optimal_bounds("P(B[C=blue]=1 | D=1)", g, dom, p)
    with pytest.raises(QueryError, match="set to code 0 in its own world"):
        Query((Atom("C", 1, (("C", 0),)),))  # intervenes on C and asks it to differ
    with pytest.raises(QueryError, match="same evidence"):
        Contrast(((1.0, parse_query("P(B=1 | D=1)", dom)), (1.0, parse_query("P(B=1)", dom))))
    with pytest.raises(QueryError):
        optimal_bounds(3.0, g, dom, p)  # type: ignore[arg-type]


def test_evidence_of_probability_zero(backdoorish):
    g, dom, p = backdoorish
    p = p.copy()
    p[1, 0, :] = 0
    p /= p.sum()
    with pytest.raises(QueryError, match="D=1, C=green has probability zero under P"):
        optimal_bounds("P(B[C=red]=1 | D=1, C=green)", g, dom, p)
    # counterfactual evidence that no compatible model can produce: B_{C=green} given a slot never seen
    g2 = CausalGraph.parse("X -> Y")
    dom2 = Domains({"X": BIN, "Y": BIN})
    p2 = np.array([[0.5, 0.0], [0.0, 0.5]])  # Y = X surely, so Y_{X=1} = 1 in every model
    with pytest.raises(QueryError, match="probability zero in every model"):
        optimal_bounds("P(Y[X=0]=1 | Y[X=1]=0)", g2, dom2, p2)


