"""The NCM: fit, abduction against exact enumeration on a small SCM, interventions, impossible evidence."""

import numpy as np
import pytest
import torch

from cfedit.core.domains import Domains
from cfedit.core.graph import CausalGraph
from cfedit.core.query import parse_query
from cfedit.errors import DomainError, QueryError
from cfedit.ncm import NCM, NCMConfig
from cfedit.scm import SCM, Exogenous

DOM = Domains({"Z": ["0", "1"], "X": ["0", "1"], "Y": ["0", "1"]})


def small_scm() -> SCM:
    """Z <-> X (shared U_ZX), Z -> Y, X -> Y; binary."""
    g = CausalGraph.parse("Z <-> X; Z -> Y; X -> Y")
    exo = [Exogenous("U_ZX", (0.3, 0.2, 0.1, 0.4), ("Z", "X")), Exogenous.uniform("U_Y", 10, ("Y",))]
    mech = {
        "Z": lambda pa, u: u["U_ZX"] // 2,
        "X": lambda pa, u: u["U_ZX"] % 2,
        "Y": lambda pa, u: (u["U_Y"] < 2 + 3 * pa["X"] + 2 * pa["Z"]).astype(np.int64),
    }
    return SCM(g, DOM, exo, mech)


@pytest.fixture(scope="module")
def fitted() -> tuple[SCM, NCM]:
    torch.manual_seed(0)
    scm = small_scm()
    ncm = NCM(scm.graph, DOM, NCMConfig(steps=300, latent_size=8, seed=0))
    ncm.fit(scm.sample(20000, seed=0))
    return scm, ncm


def test_fit_reaches_the_data(fitted):
    scm, ncm = fitted
    assert ncm.report.tv < 0.02
    # the empirical law of 20,000 draws is within ~0.01 of the exact table, so the model is too
    assert 0.5 * np.abs(ncm.table() - scm.observational()).sum() < 0.03


def test_posterior_reproduces_the_evidence(fitted):
    _, ncm = fitted
    v = {"Z": np.array([0, 1, 1]), "X": np.array([1, 0, 1]), "Y": np.array([0, 1, 1])}
    exo = ncm.posterior(v, 50, torch.Generator().manual_seed(0))
    out = ncm.evaluate(exo)
    for k in v:
        assert (out[k].reshape(3, 50).numpy() == v[k][:, None]).all()


def test_posterior_of_shared_input_matches_enumeration(fitted):
    """P(Z_shared | v) sampled by `posterior` equals Bayes' rule computed by hand over the enumerated z."""
    _, ncm = fitted
    v = {"Z": np.array([1]), "X": np.array([0]), "Y": np.array([1])}
    n = 20000
    exo = ncm.posterior(v, n, torch.Generator().manual_seed(1))
    freq = np.bincount(exo.z[0].numpy(), minlength=8) / n
    with torch.no_grad():
        z = torch.arange(8)
        lp = sum(ncm.mechanism(k, {p: torch.full((8,), int(v[p][0])) for p in ncm.graph.parents(k)}, [z], 8)
                 .log_prob(torch.full((8,), int(v[k][0]))) for k in ncm.order)
        exact = torch.softmax(lp, 0).numpy()
    assert np.abs(freq - exact).max() < 4 * np.sqrt(0.25 / n)


@pytest.mark.parametrize("text", [
    "P(Y[X=1]=1 | Z=0, X=0)",  # identified: Y has no hidden parent, so = P(Y=1 | Z=0, X=1)
    "P(Y[X=0]=1 | Z=1, X=1)",
    "P(Z[X=1]=1 | Z=1, X=0)",  # a non-descendant keeps its value: 1
])
def test_identified_counterfactuals_match_the_scm(fitted, text):
    scm, ncm = fitted
    q = parse_query(text, DOM)
    ev = {a.var: np.array([a.value]) for a in q.given}
    ev.update({k: np.array([0]) for k in DOM.names if k not in ev})
    ev["Y"] = np.array([0])
    # the evidence of these queries leaves Y free: average over Y's factual value by sampling it
    p_y = scm.probability(parse_query(f"P(Y=1 | {', '.join(a.format(DOM) for a in q.given)})", DOM))
    n = 20000
    est = 0.0
    for y, w in ((0, 1 - p_y), (1, p_y)):
        ev["Y"] = np.array([y])
        out = ncm.counterfactual(ev, q.outcome[0].intervention, n, seed=y)
        est += w * (out[q.outcome[0].var] == q.outcome[0].value).mean()
    # tolerance: sampling (<= 0.01) plus the fit of a conditional from ~2,000 rows (~0.03)
    assert abs(est - scm.probability(q)) < 0.05


def test_intervention_sets_the_factor_and_keeps_non_descendants(fitted):
    _, ncm = fitted
    v = {"Z": np.array([0, 1]), "X": np.array([0, 1]), "Y": np.array([1, 0])}
    out = ncm.counterfactual(v, {"X": 1}, 100)
    assert (out["X"] == 1).all()
    assert (out["Z"] == v["Z"][:, None]).all()
    null = ncm.counterfactual(v, {}, 100)
    for k in v:
        assert (null[k] == v[k][:, None]).all()


def test_sample_under_do_matches_interventional_law(fitted):
    scm, ncm = fitted
    s = ncm.sample(20000, do={"X": 1}, seed=3)
    truth = scm.interventional({"X": 1}).sum(axis=(0, 1))[1]
    assert abs((s["Y"] == 1).mean() - truth) < 0.04


def test_impossible_evidence_is_refused():
    g = CausalGraph.parse("X -> Y")
    dom = Domains({"X": ["0", "1"], "Y": ["0", "1"]})
    rng = np.random.default_rng(0)
    x = rng.integers(0, 2, 4000)
    ncm = NCM(g, dom, NCMConfig(steps=300, impossible_below=1e-2))
    ncm.fit({"X": x, "Y": x.copy()})  # Y := X: the row X=0, Y=1 never happens
    with pytest.raises(QueryError, match="impossible"):
        ncm.posterior({"X": np.array([0]), "Y": np.array([1])}, 4)
    with pytest.raises(DomainError):
        ncm.posterior({"X": np.array([0]), "Y": np.array([5])}, 4)
    with pytest.raises(DomainError):
        ncm.counterfactual({"X": np.array([0]), "Y": np.array([0])}, {"W": 1}, 2)


def test_mc_method_fits_and_abducts():
    scm = small_scm()
    ncm = NCM(scm.graph, DOM, NCMConfig(method="mc", steps=150, mc_samples=64, seed=0))
    ncm.fit(scm.sample(5000, seed=0))
    assert ncm.report.tv < 0.1
    v = {"Z": np.array([1]), "X": np.array([1]), "Y": np.array([1])}
    out = ncm.counterfactual(v, {}, 20)
    assert (out["Y"] == 1).all()


def test_weighted_fit_to_a_table_reaches_the_table():
    """Weighted ML on the 8 cells of the exact P(V), weighted by their probability, fits P(V) itself."""
    scm = small_scm()
    p = scm.observational()
    cells = np.indices(p.shape).reshape(3, -1)
    ncm = NCM(scm.graph, DOM, NCMConfig(steps=300, latent_size=8, seed=0))
    rep = ncm.fit({k: cells[i] for i, k in enumerate(DOM.names)}, weights=p.reshape(-1))
    assert rep.tv < 0.01 and 0.5 * np.abs(ncm.table() - p).sum() < 0.01


def test_weights_count_like_repeated_rows():
    from cfedit.ncm import distinct_rows

    v = {"Z": np.array([0, 1, 0]), "X": np.array([1, 1, 1]), "Y": np.array([0, 0, 0])}
    rows_w, counts_w = distinct_rows(DOM, v, np.array([2.0, 1.0, 1.0]))
    rep = {k: np.array([0, 0, 0, 1]) if k == "Z" else np.array([1, 1, 1, 1]) if k == "X" else np.zeros(4, int) for k in DOM.names}
    rows_r, counts_r = distinct_rows(DOM, rep)
    assert all(np.array_equal(rows_w[k], rows_r[k]) for k in DOM.names)
    assert np.array_equal(counts_w, counts_r) and np.allclose(counts_r, [3.0, 1.0])
    rows_z, counts_z = distinct_rows(DOM, v, np.array([1.0, 0.0, 0.5]))  # a row of weight 0 is dropped
    assert {k: r.tolist() for k, r in rows_z.items()} == {"Z": [0], "X": [1], "Y": [0]} and np.allclose(counts_z, [1.5])
    for bad in (np.array([1.0, -1.0, 1.0]), np.zeros(3), np.array([1.0, 2.0]), np.ones((3, 1)), np.array([1.0, np.nan, 1.0])):
        with pytest.raises(DomainError):
            distinct_rows(DOM, v, bad)
