"""Bootstrap ranges of bounds: pointwise and simultaneous, on replicates whose law is known."""

import math

import numpy as np
import pytest

from cfedit.errors import CfeditError
from cfedit.evaluation.bootstrap import POINTWISE_ALPHA, simultaneous_band


def _inside_all(lo, hi, ranges):
    return np.mean(np.all((lo >= ranges[:, 0] - 1e-12) & (hi <= ranges[:, 1] + 1e-12), axis=1))


def test_independent_queries_need_the_sidak_level_and_the_band_holds_95_percent_of_replicates_at_once():
    """Q queries whose 2Q bound replicates are independent normals: 95% of replicates lie in every range at
    once when each one-sided level is a = 1 - 0.95^(1/2Q) (Sidak); the calibrated level matches it within
    the sampling error of R replicates, and the band is never narrower than the pointwise ranges."""
    rng = np.random.default_rng(0)
    q, r = 12, 20_000
    lower, upper = np.full(q, 0.3), np.full(q, 0.7)
    lo = lower + 0.02 * rng.standard_normal((r, q))
    hi = upper + 0.02 * rng.standard_normal((r, q))
    band = simultaneous_band(lower, upper, lo, hi)
    sidak = 1 - 0.95 ** (1 / (2 * q))
    # the share inside is ~ Binomial(R, 0.95)/R: a level 4 s.e. off would move the share by more than that
    assert band.covered >= 0.95 and band.covered - 0.95 < 4 * math.sqrt(0.95 * 0.05 / r)
    assert _inside_all(lo, hi, band.simultaneous) == pytest.approx(band.covered)
    assert abs(band.alpha - sidak) < 0.25 * sidak
    assert (band.simultaneous[:, 0] <= band.pointwise[:, 0]).all() and (band.simultaneous[:, 1] >= band.pointwise[:, 1]).all()
    # the pointwise ranges are the 2.5% / 97.5% quantiles: each bound's own coverage is 97.5%, jointly much less
    assert np.mean(lo >= band.pointwise[:, 0]) == pytest.approx(1 - POINTWISE_ALPHA, abs=0.003)
    assert _inside_all(lo, hi, band.pointwise) < 0.6
    # the normal quantile at the calibrated level: the band's edges are where theory puts them
    from statistics import NormalDist

    z = NormalDist().inv_cdf(1 - sidak)
    np.testing.assert_allclose(band.simultaneous[:, 0], 0.3 - 0.02 * z, atol=0.004)


def test_perfectly_dependent_queries_keep_the_pointwise_level():
    """Replicates that move together: the pointwise ranges already hold 95% of them at once."""
    rng = np.random.default_rng(1)
    z = rng.standard_normal((4000, 1))
    lo = 0.2 + 0.01 * np.repeat(z, 5, axis=1)
    hi = 0.8 + 0.01 * np.repeat(z, 5, axis=1)
    band = simultaneous_band(np.full(5, 0.2), np.full(5, 0.8), lo, hi)
    assert band.alpha == POINTWISE_ALPHA
    np.testing.assert_array_equal(band.simultaneous, band.pointwise)


def test_basic_interval_reflects_the_replicates_about_the_point_bounds():
    """Replicates biased upward (a maximum's plug-in): the percentile range of the lower bound never goes
    below the point, the basic one reaches 2 l^ - q_97.5(L*) below it."""
    rng = np.random.default_rng(2)
    lo = 0.5 + np.abs(rng.standard_normal((5000, 1))) * 0.05  # L* >= l^ = 0.5
    hi = np.full((5000, 1), 0.9)
    pct = simultaneous_band([0.5], [0.9], lo, hi, interval="percentile")
    basic = simultaneous_band([0.5], [0.9], lo, hi, interval="basic")
    assert pct.pointwise[0, 0] == 0.5  # widened to the point, not below
    assert basic.pointwise[0, 0] == pytest.approx(2 * 0.5 - np.quantile(lo, 0.975))
    assert basic.pointwise[0, 0] < 0.5 - 0.1
    # reflected replicates of 0 and 1 leave [0, 1]: the ranges are clipped
    edge = simultaneous_band([0.0], [1.0], np.full((50, 1), 0.02), np.full((50, 1), 0.97), interval="basic")
    np.testing.assert_array_equal(edge.simultaneous, [[0.0, 1.0]])


def test_missing_replicates_and_bad_arguments():
    lo = np.array([[0.1, np.nan], [0.2, np.nan], [0.15, np.nan]])
    band = simultaneous_band([0.15, 0.4], [0.5, 0.6], lo, lo + 0.4)
    np.testing.assert_array_equal(band.pointwise[1], [0.4, 0.6])  # no replicate: the point bounds
    assert band.covered >= 0.95
    empty = simultaneous_band([0.1], [0.2], np.zeros((0, 1)), np.zeros((0, 1)))
    np.testing.assert_array_equal(empty.simultaneous, [[0.1, 0.2]])
    with pytest.raises(CfeditError, match="unknown bootstrap interval"):
        simultaneous_band([0.1], [0.2], lo[:, :1], lo[:, :1], interval="bca")
    with pytest.raises(CfeditError, match="do not match"):
        simultaneous_band([0.1], [0.2], lo, lo)


def test_normal_interval_and_its_sup_t_band():
    """``normal``: the pointwise range is 1.96 replicate sds about the point bounds; the sup-t band's critical
    value for Q independent queries is the Sidak normal quantile."""
    from statistics import NormalDist

    rng = np.random.default_rng(3)
    q, r = 8, 20_000
    lo = 0.3 + 0.02 * rng.standard_normal((r, q))
    hi = 0.7 + 0.02 * rng.standard_normal((r, q))
    band = simultaneous_band(np.full(q, 0.3), np.full(q, 0.7), lo, hi, interval="normal")
    np.testing.assert_allclose(band.pointwise[:, 0], 0.3 - 1.96 * lo.std(axis=0), atol=1e-3)
    c = NormalDist().inv_cdf(0.95 ** (1 / (2 * q)))
    np.testing.assert_allclose(band.simultaneous[:, 1], 0.7 + c * hi.std(axis=0), atol=0.002)
    assert abs(band.covered - 0.95) < 4 * math.sqrt(0.95 * 0.05 / r)


def test_bias_aware_interval_moves_each_end_out_by_the_replicates_bias():
    rng = np.random.default_rng(4)
    lo = 0.40 + 0.05 + 0.01 * rng.standard_normal((5000, 1))  # replicates 0.05 above the point lower bound
    hi = 0.60 - 0.03 + 0.01 * rng.standard_normal((5000, 1))  # and 0.03 below the point upper bound
    normal = simultaneous_band([0.4], [0.6], lo, hi, interval="normal")
    aware = simultaneous_band([0.4], [0.6], lo, hi, interval="bias-aware")
    np.testing.assert_allclose(aware.pointwise[0], [0.4 - 0.05 - 1.96 * 0.01, 0.6 + 0.03 + 1.96 * 0.01], atol=0.002)
    np.testing.assert_allclose(aware.pointwise[0] - normal.pointwise[0], [-0.05, 0.03], atol=0.002)
    assert aware.simultaneous[0, 0] <= aware.pointwise[0, 0] and aware.simultaneous[0, 1] >= aware.pointwise[0, 1]
