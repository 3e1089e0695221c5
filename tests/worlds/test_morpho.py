"""The Morpho-MNIST worlds: deepscm's mechanisms, sample-based truths, the exact binned law, binned bounds,
and true (counterfactual) images measured by the oracle."""

import numpy as np
import pytest
from scipy import stats

from cfedit.bounds import optimal_bounds
from cfedit.core.query import parse_counterfactual, parse_query
from cfedit.worlds import continuous_world_names, get_world, world_names
from cfedit.worlds import morpho as mw


@pytest.fixture(scope="module", params=("morpho", "morpho-confounded"))
def world(request):
    return get_world(request.param)


def within(est, truth, z=4.0):
    return abs(est.value - truth) <= z * est.stderr


def test_registry_keeps_continuous_worlds_out_of_the_exact_list():
    assert continuous_world_names() == ("morpho", "morpho-confounded")
    assert not set(continuous_world_names()) & set(world_names())
    assert get_world("morpho").domains.continuous_names == ("T", "I")


def test_thickness_law_is_deepscms_truncated(world):
    """T's marginal is 0.5 + Gamma(10, rate 5) truncated to [1.5, 6.5] in both worlds (the style only
    re-weighs the bands, and averages out): Kolmogorov-Smirnov against the truncated CDF."""
    t = world.scm.sample(20_000, seed=1)["T"]
    g = stats.gamma(10, scale=0.2)
    lo, hi = g.cdf(1.0), g.cdf(6.0)
    assert stats.kstest(t, lambda x: (g.cdf(x - 0.5) - lo) / (hi - lo)).pvalue > 1e-3


def test_style_confounds_digit_and_thickness_only_in_the_confounded_world(world):
    v = world.scm.sample(40_000, seed=2)
    gap = (v["T"][v["D"] < 5] > 2.5).mean() - (v["T"][v["D"] >= 5] > 2.5).mean()
    se = 4 * np.sqrt(0.25 / 20_000 * 2)
    assert (gap > 0.2) if world.name == "morpho-confounded" else (abs(gap) < se)


def test_documented_queries_have_estimates(world):
    for text in world.queries:
        q = parse_counterfactual(text, world.domains)
        est = world.scm.expectation(q, n=4_000) if text.startswith("E") else world.scm.probability(q, n=4_000)
        assert np.isfinite(est.value) and est.stderr >= 0


def test_fully_abducted_intensity_counterfactual_is_exact(world):
    est = world.scm.expectation(parse_counterfactual("E[I[T=3] | T=1.8, I=120]", world.domains), n=1_000)
    assert est.exact and est.value == pytest.approx(mw.intensity(3.0, mw.intensity_noise(120.0, 1.8)))
    assert world.scm.probability(parse_query("P(T[I=200] > 2.5 | T=1.8)", world.domains), n=1_000).value == 0.0


def test_confounded_thickness_given_digit_matches_bayes():
    """P(T > 2.5 | D=2) = sum_s P(s | D=2) p_thick(s), P(S=1 | D=2) = 0.16 / 0.2."""
    w = get_world("morpho-confounded")
    truth = 0.8 * mw.thick_band_probability(1) + 0.2 * mw.thick_band_probability(0)
    est = w.scm.probability(parse_query("P(T > 2.5 | D=2)", w.domains), n=40_000, seed=3)
    assert within(est, truth)


def test_binned_table_is_the_sampled_law(world):
    """The quadrature table P(D, T bin, I bin) against frequencies of 60,000 units, cell by cell (4 se)."""
    table = mw.binned_table(world.name == "morpho-confounded")
    v = world.scm.sample(60_000, seed=4)
    dom = world.domains
    counts = np.zeros_like(table)
    np.add.at(counts, (v["D"], dom.bin("T", v["T"]), dom.bin("I", v["I"])), 1)
    freq = counts / counts.sum()
    se = np.sqrt(table * (1 - table) / 60_000)
    assert table.sum() == pytest.approx(1.0) and np.all(np.abs(freq - table) <= 4 * se + 1e-4)


QUERY = "P(I[T=2-2.5]=150-200 | D=7, T=2.5-3, I=150-200)"


def test_binned_bounds_contain_the_binned_truth_and_do_not_widen_when_bins_refine():
    """Confounded world: optimal bounds from the exact binned law contain the truth of the binned query
    (the action keeps each unit's within-bin position); splitting bins that the query does not name
    leaves the truth alone and the bounds tighten or stay."""
    w = get_world("morpho-confounded")
    coarse = mw.Binning(t_bins=(2.0, 2.5, 3.0), i_bins=(150.0, 200.0))
    fine = mw.Binning(t_bins=(2.0, 2.5, 3.0, 4.0), i_bins=(100.0, 150.0, 200.0))  # the query's bins exist in both
    results = []
    for binning in (coarse, fine):
        q = parse_query(QUERY, binning.domains)
        b = optimal_bounds(q, w.graph, binning.domains, mw.binned_table(True, binning))
        truth = mw.binned_truth(w.scm, q, binning, n=200_000, seed=5)
        assert b.lower - 4 * truth.stderr <= truth.value <= b.upper + 4 * truth.stderr
        results.append((b.lower, b.upper, truth.value))
    (lo_c, hi_c, t_c), (lo_f, hi_f, t_f) = results
    assert t_c == t_f
    assert lo_f >= lo_c - 1e-9 and hi_f <= hi_c + 1e-9
    assert hi_c - lo_c < 0.6 and lo_c < t_c < hi_c  # informative, and the truth is not at an end


def test_binnings_must_refine_the_style_bands():
    with pytest.raises(Exception, match="band edge 2.5"):
        mw.Binning(t_bins=(2.0, 3.0))


class _NoDigits:
    def predict(self, gray):
        return np.zeros(len(gray), dtype=np.int64)


def test_true_and_counterfactual_images_measure_as_their_factors():
    """Factual images and the true counterfactual under do(T=4) of the same units: the oracle's measured
    thickness and intensity are the units' factors (the digit reader is stubbed: no training here)."""
    pytest.importorskip("skimage")
    w = get_world("morpho-confounded")
    images = mw.MorphoImages(*mw.load_pools().split("eval"))
    from cfedit.scm import ASCM

    ascm = ASCM(w.scm, images, mw.MorphoOracle(_NoDigits()))
    units = ascm.units(6, seed=6)
    x = ascm.factual(units)
    assert x.shape == (6, 1, 28, 28)
    read = ascm.oracle(x)
    assert np.abs(read["T"] - units.v["T"]).max() < 0.15 and np.abs(read["I"] - units.v["I"]).max() < 2
    v_cf, x_cf = ascm.counterfactual(units, {"T": 4.0})
    read_cf = ascm.oracle(x_cf)
    assert np.allclose(v_cf["T"], 4.0) and np.array_equal(v_cf["D"], units.v["D"])
    assert np.abs(read_cf["T"] - 4.0).max() < 0.15 and np.abs(read_cf["I"] - v_cf["I"]).max() < 2
    assert np.all(v_cf["I"] > units.v["I"]) == bool(np.all(units.v["T"] < 4.0))  # I rises with T, same U_I
