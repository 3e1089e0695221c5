"""Evaluation on user data: queries from the diagram, bounds from labels with their bootstrap range, the
compatibility test of the labels with the diagram, refusals of bad input."""

import math

import numpy as np
import pytest

from cfedit.bounds import empirical_table, optimal_bounds
from cfedit.core.domains import Domains
from cfedit.core.graph import CausalGraph
from cfedit.core.query import parse_query
from cfedit.errors import DataError, QueryError
from cfedit.evaluation.userdata import (
    automatic_queries,
    check_compatible,
    evidence_probability,
    is_kept,
    label_bounds,
    read_queries,
    rows_needed,
)
from cfedit.scm import SCM, Exogenous
from cfedit.worlds import get_world

BIN = ["0", "1"]


def _chain(direct: float) -> SCM:
    """X -> Y -> Z; with ``direct`` > 0, Z also copies X with that probability (an X -> Z edge the chain lacks)."""
    g = CausalGraph.parse("X -> Y; Y -> Z; X -> Z") if direct else CausalGraph.parse("X -> Y; Y -> Z")
    exo = [Exogenous.bernoulli("UX", 0.4, ("X",)), Exogenous.bernoulli("UY", 0.2, ("Y",)),
           Exogenous.bernoulli("UZ", 0.3, ("Z",)), Exogenous.bernoulli("UC", direct, ("Z",))]
    mech = {"X": lambda pa, u: u["UX"], "Y": lambda pa, u: pa["X"] ^ u["UY"],
            "Z": lambda pa, u: np.where(u["UC"] == 1, pa.get("X", 0), pa["Y"] ^ u["UZ"])}
    return SCM(g, Domains({"X": BIN, "Y": BIN, "Z": BIN}), exo, mech)


def test_labels_that_break_the_diagram_are_flagged_and_those_it_produces_are_not():
    chain = _chain(0.0)
    n = 3000
    ok = empirical_table(chain.sample(n, seed=1), chain.domains)
    bad = empirical_table(_chain(0.5).sample(n, seed=1), chain.domains)
    good = check_compatible(chain.graph, chain.domains, ok, n, resamples=200, seed=0)
    broken = check_compatible(chain.graph, chain.domains, bad, n, resamples=200, seed=0)
    assert not good["flagged"] and good["p_value"] > 0.05
    assert broken["flagged"] and broken["p_value"] < 0.01 and broken["tv"] > 0.05


def test_a_table_no_model_reproduces_is_refused():
    """Instrumental inequality: P(X=0, Y=0 | Z=0) = P(X=0, Y=1 | Z=1) = 1 has no model Z -> X -> Y, X <-> Y."""
    g = CausalGraph.parse("Z -> X; X -> Y; X <-> Y")
    dom = Domains({"Z": BIN, "X": BIN, "Y": BIN})
    p = np.zeros((2, 2, 2))
    p[0, 0, 0] = p[1, 0, 1] = 0.5
    q = parse_query("P(Y[X=1]=1 | Z=0, X=0, Y=0)", dom)
    with pytest.raises(DataError, match="no model over G reproduces it"):
        label_bounds([q], g, dom, p, 100, resamples=0)


def test_automatic_queries_cover_every_action_and_mark_non_descendants_kept():
    w = get_world("backdoor")
    p = w.scm.observational()
    qs = automatic_queries(w.graph, w.domains, p, top=1)
    assert len(qs) == sum(w.domains.size(x) for x in w.domains.names) * (len(w.domains.names) - 1)
    top = np.unravel_index(np.argmax(p), p.shape)
    for q in qs:
        (x, value), = q.outcome[0].do
        given = {a.var: a.value for a in q.given}
        assert given[x] != value and set(given) == set(w.domains.names)  # full factual configuration, not the action's
        assert q.outcome[0].value == given[q.outcome[0].var]  # does W keep its value?
        if top[w.domains.names.index(x)] != value:  # the most frequent configuration is used where it can be
            assert tuple(given[k] for k in w.domains.names) == tuple(int(i) for i in top)
        kept = is_kept(q, w.graph)
        assert kept == (q.outcome[0].var not in w.graph.descendants([x]))
        b = optimal_bounds(q, w.graph, w.domains, p)
        if kept:
            assert b.lower == b.upper == 1.0
    assert {is_kept(q, w.graph) for q in qs} == {True, False}


def test_rows_needed_gives_the_rarest_evidence_its_minimum_count():
    """The folder size at which the rarest automatic evidence is expected on MIN_EVIDENCE evaluated images, by hand:
    10 / (p_min x the evaluated share)."""
    w = get_world("backdoor")
    p = w.scm.observational()
    qs = automatic_queries(w.graph, w.domains, p, top=2)
    p_min = min(float(p[tuple(a.value for a in q.given)]) for q in qs)  # automatic evidence names every factor
    assert evidence_probability(qs[0], w.domains, p) == pytest.approx(float(p[tuple(a.value for a in qs[0].given)]))
    assert rows_needed(qs, w.domains, p, 0.5) == math.ceil(10 / (p_min * 0.5))
    assert rows_needed(qs, w.domains, p, 1.0, min_evidence=30) == math.ceil(30 / p_min)
    q = parse_query("P(B[C=green]=1 | D=7)", w.domains)  # evidence on one factor: its marginal
    assert evidence_probability(q, w.domains, p) == pytest.approx(float(p[7].sum()))
    assert rows_needed([], w.domains, p, 0.5) == 0


def test_bounds_from_labels_and_their_bootstrap_range():
    """P(B[C=green]=1 | D=7, C=red) is identified in the Backdoor world: it is P(B=1 | D=7, C=green) (B's noise is
    independent of D, C). From labels, its point bound is that empirical conditional, and its bootstrap range
    has the binomial spread of that conditional."""
    w = get_world("backdoor")
    n = 20_000
    labels = w.scm.sample(n, seed=3)
    p = empirical_table(labels, w.domains)
    q = parse_query("P(B[C=green]=1 | D=7, C=red)", w.domains)
    (row,), band = label_bounds([q], w.graph, w.domains, p, n, resamples=100, seed=0)
    cell = (labels["D"] == 7) & (labels["C"] == 0)
    emp = labels["B"][cell].mean()
    assert row["lower"] == pytest.approx(emp, abs=1e-9) and row["upper"] == pytest.approx(emp, abs=1e-9)
    se = math.sqrt(emp * (1 - emp) / cell.sum())
    width = row["upper range"][1] - row["lower range"][0]
    assert 0.7 * 2 * 1.96 * se < width < 1.3 * 2 * 1.96 * se, (width, se)
    exact = optimal_bounds(q, w.graph, w.domains, w.scm.observational())
    assert row["widened"][0] <= exact.lower and exact.upper <= row["widened"][1]
    assert row["resamples"] == 100 and row["skipped"] == 0
    # one query: the simultaneous band is the pointwise range (its 2.5% levels already hold >= 95% of replicates)
    assert row["band"][0] <= row["widened"][0] and row["band"][1] >= row["widened"][1] and band.covered >= 0.95


def test_user_queries_are_checked():
    w = get_world("backdoor")
    p = empirical_table(w.scm.sample(2000, seed=0), w.domains)
    with pytest.raises(QueryError, match="unknown factor 'Z'"):
        read_queries(["P(Z[C=green]=1 | D=7)"], None, w.domains)
    with pytest.raises(QueryError, match="edit form"):
        read_queries(["P(B=1 | D=7)"], None, w.domains)
    q = read_queries(["P(B[C=green]=1 | D=7, C=red)"], None, w.domains)
    assert q[0].format(w.domains) == "P(B[C=green]=1 | D=7, C=red)"
    p0 = p.copy()
    p0[7, 1, :] = 0
    with pytest.raises(QueryError, match="never occurs in the 2,000 label rows"):
        label_bounds(q, w.graph, w.domains, p0 / p0.sum(), 2000, resamples=0)
