import numpy as np
import pytest

from cfedit.core.domains import Domains
from cfedit.core.graph import CausalGraph
from cfedit.core.query import Query, parse_query
from cfedit.errors import GraphError, QueryError
from cfedit.scm import SCM, Exogenous

BIN = Domains({"X": ["0", "1"], "Y": ["0", "1"]})


def response_scm() -> SCM:
    """X := U_X ~ Bern(0.3); Y := response type R in {never, always, follows X, opposes X}."""
    types = np.array([[0, 0], [1, 1], [0, 1], [1, 0]])  # Y as a function of x, per type
    return SCM(
        CausalGraph.parse("X -> Y"),
        BIN,
        [Exogenous.bernoulli("U_X", 0.3, ("X",)), Exogenous("R", (0.1, 0.2, 0.4, 0.3), ("Y",))],
        {"X": lambda pa, u: u["U_X"], "Y": lambda pa, u: types[u["R"], pa["X"]]},
    )


def confounded_scm() -> SCM:
    """U ~ Bern(0.5) shared; X := U xor N_X (N_X ~ Bern 0.2); Y := U if X = 1 else N_Y (N_Y ~ Bern 0.6)."""
    return SCM(
        CausalGraph.parse("X -> Y; X <-> Y"),
        BIN,
        [Exogenous.bernoulli("U", 0.5, ("X", "Y")), Exogenous.bernoulli("N_X", 0.2, ("X",)),
         Exogenous.bernoulli("N_Y", 0.6, ("Y",))],
        {"X": lambda pa, u: u["U"] ^ u["N_X"], "Y": lambda pa, u: np.where(pa["X"] == 1, u["U"], u["N_Y"])},
    )


def test_counterfactual_against_hand_closed_form():
    m = response_scm()
    # X=0, Y=0 leaves types {never, follows}; Y_{X=1} = 1 only for "follows": 0.4 / (0.1 + 0.4)
    assert m.probability(parse_query("P(Y[X=1]=1 | X=0, Y=0)", BIN)) == pytest.approx(0.8, abs=1e-12)
    # joint P(Y = 0, Y_{X=1} = 1) = P(X=0) P(follows) + P(X=1) * 0
    assert m.probability(parse_query("P(Y=0, Y[X=1]=1)", BIN)) == pytest.approx(0.7 * 0.4, abs=1e-12)
    # probability of necessity and sufficiency P(Y_1 = 1, Y_0 = 0) = P(follows)
    assert m.probability(parse_query("P(Y[X=1]=1, Y[X=0]=0)", BIN)) == pytest.approx(0.4, abs=1e-12)


def test_confounded_counterfactual_closed_form():
    m = confounded_scm()
    # Y_{X=1} = U, and P(U = 1 | X = 0) = P(U=1, N_X=1) / P(X=0) = 0.5 * 0.2 / 0.5
    assert m.probability(parse_query("P(Y[X=1]=1 | X=0)", BIN)) == pytest.approx(0.2, abs=1e-12)
    # interventional P(Y_{X=0} = 1) = P(N_Y = 1), observational P(Y=1 | X=0) = P(N_Y=1) as well
    assert m.interventional({"X": 0})[:, 1].sum() == pytest.approx(0.6)
    p = m.observational()
    assert p.sum() == pytest.approx(1.0)
    assert p[1, 1] / p[1].sum() == pytest.approx(0.8)  # P(Y=1 | X=1) = P(U=1 | X=1)


def test_sample_frequencies_converge_to_exact_table():
    m = confounded_scm()
    n = 200_000
    v = m.sample(n, seed=1)
    freq = np.zeros((2, 2))
    np.add.at(freq, (v["X"], v["Y"]), 1 / n)
    p = m.observational()
    tol = 5 * np.sqrt(p * (1 - p) / n) + 1e-12  # 5 standard errors per cell
    assert (np.abs(freq - p) <= tol).all()


def test_do_sets_value_and_keeps_non_descendants_same_u():
    m = confounded_scm()
    rng = np.random.default_rng(0)
    u = m.sample_u(1000, rng)
    v = m.evaluate(u)
    v1 = m.counterfactual(u, {"Y": 0})
    assert (v1["Y"] == 0).all() and (v1["X"] == v["X"]).all()
    v0 = m.counterfactual(u, {})
    assert all((v0[k] == v[k]).all() for k in v)
    # composition: intervening on X at its own value changes nothing
    x1 = v["X"] == 1
    assert (m.counterfactual(u, {"X": 1})["Y"][x1] == v["Y"][x1]).all()


def test_do_returns_new_scm_with_mutilated_graph():
    m = confounded_scm()
    md = m.do({"X": 1})
    assert md.graph.bidirected == () and md.graph.directed == (("X", "Y"),)
    assert md.observational()[0].sum() == 0
    assert m.graph.bidirected == (("X", "Y"),)


def test_errors():
    m = confounded_scm()
    with pytest.raises(QueryError, match="probability zero"):
        m.do({"X": 1}).probability(Query.edit({}, {"Y": 1}, {"X": 0}))
    with pytest.raises(GraphError, match="read by X and Y but the graph has no X <-> Y"):
        SCM(CausalGraph.parse("X -> Y"), BIN, [Exogenous.bernoulli("U", 0.5, ("X", "Y"))],
            {"X": lambda pa, u: u["U"], "Y": lambda pa, u: u["U"]})
    with pytest.raises(GraphError, match="no mechanism for Y"):
        SCM(CausalGraph.parse("X -> Y"), BIN, [], {"X": lambda pa, u: 0})
