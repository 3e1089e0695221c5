"""Sample-based SCMs with continuous noise: Monte Carlo truths against closed forms, within the stated error."""

import numpy as np
import pytest
from scipy import integrate, special, stats

from cfedit.core.domains import Continuous, Domains
from cfedit.core.graph import CausalGraph
from cfedit.core.query import parse_counterfactual, parse_query
from cfedit.errors import DomainError, GraphError, QueryError
from cfedit.scm import SCM, Invertible, Noise, SampledSCM

GAMMA = stats.gamma(10, scale=1 / 5)  # concentration 10, rate 5 (deepscm)


def intensity(t, u):
    """deepscm: I = 64 + 191 sigmoid(2 (T - 2.5) + 0.5 U_I), U_I ~ N(0, 1)."""
    return 64 + 191 * special.expit(2 * (t - 2.5) + 0.5 * u)


def intensity_noise(i, t):
    return (special.logit((i - 64) / 191) - 2 * (t - 2.5)) / 0.5


def intensity_log_density(i, t):
    """log p(i | t): the N(0, 1) density of the abducted noise over |di/du|."""
    s = (i - 64) / 191
    return stats.norm.logpdf(intensity_noise(i, t)) - np.log(191 * s * (1 - s) * 0.5)


@pytest.fixture(scope="module")
def markovian():
    """T -> I, deepscm's equations, T = 0.5 + Gamma(10, 5) untruncated (the range is wide enough)."""
    dom = Domains({"T": Continuous(0.5, 20.0), "I": Continuous(64, 255)})
    noises = [Noise("U_T", lambda n, rng: rng.random(n), ("T",)), Noise("U_I", lambda n, rng: rng.standard_normal(n), ("I",))]
    mech = {"T": lambda pa, u: 0.5 + GAMMA.ppf(u["U_T"]), "I": lambda pa, u: intensity(pa["T"], u["U_I"])}
    inv = {
        "T": Invertible("U_T", lambda t, pa, u: GAMMA.cdf(t - 0.5), lambda t, pa, u: GAMMA.logpdf(t - 0.5)),
        "I": Invertible("U_I", lambda i, pa, u: intensity_noise(i, pa["T"]), lambda i, pa, u: intensity_log_density(i, pa["T"])),
    }
    return SampledSCM(CausalGraph.parse("T -> I"), dom, noises, mech, inv)


def within(est, truth, z=4.0):
    """|estimate - truth| <= z standard errors (z = 4: a false failure has probability 6e-5)."""
    return abs(est.value - truth) <= z * est.stderr


def test_interventional_tail_matches_closed_form(markovian):
    """P(I[T=3] > 200 | T=1.5): I's noise is untouched by T's evidence, so the truth is
    P(0.5 U > logit(136/191) - 1) = 1 - Phi(2 (logit(136/191) - 1))."""
    q = parse_query("P(I[T=3] > 200 | T=1.5)", markovian.domains)
    truth = 1 - stats.norm.cdf(2 * (special.logit(136 / 191) - 1))
    est = markovian.probability(q, n=40_000, seed=1)
    assert est.stderr > 0 and est.stderr < 0.005 and within(est, truth)


def test_fully_abducted_counterfactual_is_exact(markovian):
    """E[I[T=3] | T=1.5, I=120]: both noises are abducted, so every unit gives the same value: exact."""
    e = parse_counterfactual("E[I[T=3] | T=1.5, I=120]", markovian.domains)
    u = intensity_noise(120.0, 1.5)
    est = markovian.expectation(e, n=2_000)
    assert est.exact and est.value == pytest.approx(intensity(3.0, u), abs=1e-9)
    assert est.value > 120  # a thicker stroke is brighter under deepscm's mechanism


def test_posterior_of_a_parent_given_a_child_value_matches_quadrature(markovian):
    """P(T > 3 | I=200): importance weights p(I=200 | t) against the 1-D integral of p(t) p(200 | t)."""
    def joint(t):
        return GAMMA.pdf(t - 0.5) * np.exp(intensity_log_density(200.0, t))
    num = integrate.quad(joint, 3, 12)[0]
    den = integrate.quad(joint, 0.5, 3)[0] + num
    est = markovian.probability(parse_query("P(T > 3 | I=200)", markovian.domains), n=60_000, seed=2)
    assert 0 < est.ess < 60_000 and within(est, num / den)


def test_interventional_mean_matches_quadrature(markovian):
    """E[I[T=2]] = E[64 + 191 sigmoid(-1 + 0.5 U)], U ~ N(0, 1)."""
    truth = integrate.quad(lambda u: stats.norm.pdf(u) * intensity(2.0, u), -12, 12)[0]
    est = markovian.expectation(parse_counterfactual("E[I[T=2]]", markovian.domains), n=40_000, seed=3)
    assert within(est, truth) and est.stderr < 0.5


@pytest.fixture(scope="module")
def confounded():
    """D <-> T through a hidden style S ~ Bernoulli(0.5): P(D = 1 | S) = 0.2 + 0.6 S, T = 0.5 + 0.8 S + G."""
    dom = Domains({"D": ["0", "1"], "T": Continuous(0.5, 20.0)})
    noises = [Noise("S", lambda n, rng: rng.integers(0, 2, n), ("D", "T")), Noise("U_D", lambda n, rng: rng.random(n), ("D",)),
              Noise("U_T", lambda n, rng: rng.random(n), ("T",))]
    mech = {"D": lambda pa, u: (u["U_D"] < 0.2 + 0.6 * u["S"]).astype(int),
            "T": lambda pa, u: 0.5 + 0.8 * u["S"] + GAMMA.ppf(u["U_T"])}
    inv = {"T": Invertible("U_T", lambda t, pa, u: GAMMA.cdf(t - 0.5 - 0.8 * u["S"]),
                           lambda t, pa, u: GAMMA.logpdf(t - 0.5 - 0.8 * u["S"]))}
    return SampledSCM(CausalGraph.parse("D <-> T"), dom, noises, mech, inv)


def test_point_evidence_through_a_shared_noise_weighs_by_bayes(confounded):
    """P(D=1 | T=3): the style is weighed by p(T=3 | S): sum_s P(s) P(D=1|s) p(3|s) / sum_s P(s) p(3|s)."""
    p = [GAMMA.pdf(3 - 0.5 - 0.8 * s) for s in (0, 1)]
    truth = (0.2 * p[0] + 0.8 * p[1]) / (p[0] + p[1])
    est = confounded.probability(parse_query("P(D=1 | T=3)", confounded.domains), n=40_000, seed=4)
    assert est.stderr > 0 and within(est, truth)


def test_evidence_errors_are_clear(markovian, confounded):
    assert confounded.probability(parse_query("P(T > 2 | D=1)", confounded.domains), n=100).value > 0  # categorical: selection
    with pytest.raises(QueryError, match="factual world only"):
        markovian.probability(parse_query("P(T > 2 | I[T=2]=100)", markovian.domains), n=10)
    with pytest.raises(QueryError, match="no sampled unit"):
        markovian.probability(parse_query("P(I > 100 | T > 19.9)", markovian.domains), n=100)
    no_abduction = SampledSCM(markovian.graph, markovian.domains, markovian.noises, markovian.mechanisms)
    with pytest.raises(QueryError, match="no abduction for T"):
        no_abduction.probability(parse_query("P(I > 100 | T=2)", markovian.domains), n=10)


def test_construction_checks(markovian):
    with pytest.raises(DomainError, match="use SampledSCM"):
        SCM(markovian.graph, markovian.domains, [], markovian.mechanisms)
    with pytest.raises(GraphError, match="no T <-> I edge"):
        SampledSCM(markovian.graph, markovian.domains, [Noise("U", lambda n, rng: rng.random(n), ("T", "I"))], markovian.mechanisms)
    with pytest.raises(GraphError, match="does not read the noise"):
        SampledSCM(markovian.graph, markovian.domains, markovian.noises, markovian.mechanisms,
                   {"T": Invertible("U_I", lambda *a: 0, lambda *a: 0)})
