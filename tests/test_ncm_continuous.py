"""The NCM's continuous factors: location-scale mechanisms in an output transform, exact abduction of their
noise, their density, and a fitted counterfactual against deepscm's closed form (Morpho-MNIST T -> I)."""

import math

import numpy as np
import pytest
import torch
from scipy import special

from cfedit.core.domains import Continuous, Domains
from cfedit.core.graph import CausalGraph
from cfedit.core.query import parse_counterfactual
from cfedit.errors import DomainError, QueryError
from cfedit.ncm import NCM, NCMConfig
from cfedit.worlds import morpho as mw

MIXED = Domains({"D": [str(d) for d in range(10)], "T": Continuous(1.5, 6.5), "I": Continuous(64, 255), "B": ["0", "1"]})
GRAPH = CausalGraph.parse("D <-> T; T -> I; I -> B")  # shared input, continuous chain, categorical child of a continuous parent


@pytest.fixture(scope="module", params=["logit", "affine"])
def untrained(request):
    return NCM(GRAPH, MIXED, NCMConfig(latent_size=4, continuous_transform=request.param, seed=3))


def test_abduct_then_predict_reproduces_mixed_evidence(untrained):
    """The null counterfactual: posterior draws of U given v, pushed through the mechanisms, give v back
    (continuous values up to float32, as N = (g(v) - mu) / sigma inverts them exactly)."""
    v = {"D": np.array([7, 2]), "T": np.array([1.8, 4.0]), "I": np.array([120.0, 250.0]), "B": np.array([1, 0])}
    out = untrained.counterfactual(v, {}, 20, seed=1)
    for k in ("D", "B"):
        assert (out[k] == v[k][:, None]).all()
    for k in ("T", "I"):
        assert np.allclose(out[k], v[k][:, None], rtol=2e-5)


def test_intervened_continuous_value_holds_and_non_descendants_stay(untrained):
    v = {"D": np.array([7]), "T": np.array([1.8]), "I": np.array([120.0]), "B": np.array([1])}
    out = untrained.counterfactual(v, {"I": 200.0}, 10, seed=2)
    assert np.all(out["I"] == 200.0) and np.allclose(out["T"], 1.8, rtol=2e-5) and np.all(out["D"] == 7)


def test_samples_stay_in_their_intervals_under_the_logit_transform():
    ncm = NCM(GRAPH, MIXED, NCMConfig(latent_size=4, seed=0))
    s = ncm.sample(2000, seed=0)
    assert s["T"].dtype == np.float32 and (s["T"] >= 1.5).all() and (s["T"] <= 6.5).all()
    assert (s["I"] >= 64).all() and (s["I"] <= 255).all() and s["D"].dtype == np.int64


@pytest.mark.parametrize("transform", ["logit", "affine"])
def test_continuous_mechanism_is_a_density_in_v(transform):
    """exp(log p(t)) of a root continuous factor integrates to its mass inside the interval: 1 for the logit
    transform (whose support is the interval), at most 1 for the affine one (a Gaussian in t): the Jacobian
    of g is counted."""
    dom = Domains({"T": Continuous(1.5, 6.5)})
    ncm = NCM(CausalGraph.parse("T"), dom, NCMConfig(continuous_transform=transform, seed=1))
    t = np.linspace(1.5, 6.5, 200_001)
    with torch.no_grad():
        p = ncm.log_prob({"T": t}).exp().double().numpy()
    mass = np.trapezoid(p, t)
    if transform == "logit":
        assert mass == pytest.approx(1.0, abs=2e-3)
    else:
        assert 0.0 < mass <= 1.0 + 1e-3


def test_gradients_reach_every_parameter():
    ncm = NCM(GRAPH, MIXED, NCMConfig(latent_size=4, seed=0))
    v = ncm.sample(64, seed=1)
    (-ncm.log_prob(v).mean()).backward()
    for name, p in ncm.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


def test_evidence_outside_the_interval_and_partial_evidence_are_refused():
    ncm = NCM(GRAPH, MIXED, NCMConfig(latent_size=4, seed=0))
    with pytest.raises(DomainError, match=r"outside its range \[64, 255\]"):
        ncm.posterior({"D": np.array([1]), "T": np.array([2.0]), "I": np.array([300.0]), "B": np.array([0])}, 1)
    with pytest.raises(QueryError, match="every factor"):
        ncm.expectation(parse_counterfactual("E[I[T=3] | T=1.8, I=120]", MIXED))


def test_categorical_table_refuses_continuous_factors():
    ncm = NCM(GRAPH, MIXED, NCMConfig(latent_size=4, seed=0))
    with pytest.raises(DomainError, match="continuous"):
        ncm.table()
    assert math.isnan(ncm.tv(ncm.sample(10)))


N_FIT = 4000


@pytest.fixture(scope="module")
def morpho_fit():
    """An NCM over deepscm's Markovian T -> I, fitted to N_FIT units of the world's exact equations."""
    scm = mw.morpho_scm()
    v = scm.sample(N_FIT, seed=0)
    dom = Domains({"T": mw.DOMAINS.continuous("T"), "I": mw.DOMAINS.continuous("I")})
    ncm = NCM(CausalGraph.parse("T -> I"), dom, NCMConfig(steps=600, lr=0.01, seed=0))
    ncm.fit({"T": v["T"], "I": v["I"]})
    return scm, ncm, dom, v


@pytest.mark.slow
@pytest.mark.parametrize("t, i, t_new", [(1.8, 120.0, 3.0), (2.5, 200.0, 4.0), (3.5, 230.0, 2.0)])
def test_fitted_counterfactual_matches_the_closed_form(morpho_fit, t, i, t_new):
    """E[I[T=t'] | T=t, I=i] of the fitted NCM is a point (Markovian, monotone mechanism) and equals the
    SampledSCM truth, 64 + 191 sigmoid(logit((i - 64)/191) + 2 (t' - t)), within 4 standard errors of the
    correctly specified fit of the same sample size (the NCM's family contains it). In logit space y, the
    maximum-likelihood fit of y = a + b t + exp(c0 + c t) e predicts y' = y + b^ (t' - t) + c^ (t' - t) sigma e
    (to first order; the truth has c = 0), with var(b^) = sigma^2 / (n var T) and var(c^) = 1 / (2 n var T):
    se(y') = |t' - t| sqrt(sigma^2 + sigma^2 e^2 / 2) / sqrt(n var T), carried to grey levels by dI/dy."""
    scm, ncm, dom, v = morpho_fit
    q = parse_counterfactual(f"E[I[T={t_new}] | T={t}, I={i}]", dom)
    est = ncm.expectation(q, n_samples=16)
    truth = scm.expectation(parse_counterfactual(f"E[I[T={t_new}] | T={t}, I={i}]", mw.DOMAINS), n=100)
    assert est.exact and truth.exact  # both are points: the noise of I is recovered exactly
    sigma, e = 0.5, float(mw.intensity_noise(i, t))  # deepscm's scale in logit space and the unit's standardised noise
    var_t = float(np.var(v["T"]))
    se_y = abs(t_new - t) * math.sqrt(sigma**2 + (e * sigma) ** 2 / 2) / math.sqrt(N_FIT * var_t)
    s = special.expit(special.logit((truth.value - 64) / 191))
    tol = 4 * se_y * 191 * s * (1 - s)
    assert abs(est.value - truth.value) <= tol, (est.value, truth.value, tol)
