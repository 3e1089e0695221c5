"""Bootstrap ranges of optimal bounds: one query at a time, and all of a report's queries at once.

Bounds computed from an empirical P(V) of n label rows are themselves estimates. Recomputing them on R
resamples of the rows gives replicates L*_{rj}, U*_{rj} of the lower and upper bound of query j (NaN where
a resample lacks the query's evidence). Two ways to turn them into a range for the true bounds (l_j, u_j),
each one-sided per bound, since a range only has to reach down to l_j and up to u_j:

* ``percentile``: [q_a(L*_j), q_{1-a}(U*_j)];
* ``basic`` (the pivot): [2 l^_j - q_{1-a}(L*_j), 2 u^_j - q_a(U*_j)], i.e. the percentile range of the
  reflected replicates 2 l^ - L*, 2 u^ - U*. A lower bound is a maximum over compatible-model expressions
  (an upper bound a minimum), so its plug-in estimate is biased up (down) and its replicates more so; the
  reflection moves the range against that bias, where the percentile range moves with it;
* ``normal``: [l^_j - c sd(L*_j), u^_j + c sd(U*_j)], symmetric about the point bounds with the replicates'
  standard deviations: it ignores the replicates' skew and their bias, which for bounds (non-smooth
  functions of P(V), some clipped at 0 or 1) the bootstrap need not reproduce;
* ``bias-aware``: ``normal`` widened on each side by the size of the replicates' bias, |mean(L*_j) - l^_j|
  (and likewise for U): where the bound's plug-in is biased (a kink of the max or min that defines it), the
  bootstrap bias is of that bias's order, and a range that may be off by it is widened by it (the simple
  form of a bias-aware interval, estimate +- (|bias| + c sd)).

*Pointwise*: a = 2.5% (c = 1.96) for each bound of each query. *Simultaneous* (:func:`simultaneous_band`):
for the quantile intervals, the largest a <= 2.5% such that a share ``level`` of the R replicates lie inside
every query's range at once (for ``basic``, the reflected replicates); for ``normal``, the sup-t band (c the
``level`` quantile over replicates of the largest studentized deviation of any bound from its replicates'
mean, at least 1.96). Either band is meant to hold every query's true bounds at once, and is never narrower
than the pointwise ranges. All are widened to contain the point bounds, and clipped to [0, 1] (the queries
are probabilities).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cfedit.errors import CfeditError

INTERVALS = ("percentile", "basic", "normal", "bias-aware")
POINTWISE_ALPHA = 0.025  # one-sided level of each bound's pointwise range


@dataclass(frozen=True)
class Band:
    """Ranges of the bounds of Q queries: ``pointwise`` and ``simultaneous`` (Q, 2) arrays [low, high]."""

    pointwise: np.ndarray
    simultaneous: np.ndarray
    alpha: float  # the one-sided level per bound that the simultaneous band uses (<= POINTWISE_ALPHA; normal: 1 - Phi(c))
    covered: float  # share of the replicates inside the simultaneous band at once (>= level; normal: centred at their mean)
    interval: str
    level: float
    replicates: int


def _check(lower: np.ndarray, upper: np.ndarray, lo_draws: np.ndarray, hi_draws: np.ndarray, interval: str, level: float):
    if interval not in INTERVALS:
        raise CfeditError(f"unknown bootstrap interval {interval!r}; use one of {', '.join(INTERVALS)}")
    if not 0.5 <= level < 1:
        raise CfeditError(f"the band's level must lie in [0.5, 1), got {level}")
    lower, upper = np.asarray(lower, float).reshape(-1), np.asarray(upper, float).reshape(-1)
    lo_draws, hi_draws = np.asarray(lo_draws, float), np.asarray(hi_draws, float)
    q = len(lower)
    if len(upper) != q or lo_draws.ndim != 2 or lo_draws.shape != hi_draws.shape or lo_draws.shape[1] != q:
        raise CfeditError(f"bootstrap draws of shape {lo_draws.shape} and {hi_draws.shape} do not match {q} queries")
    return lower, upper, lo_draws, hi_draws


def _oriented(lower, upper, lo_draws, hi_draws, interval):
    """The replicates whose percentile range is the interval's: as drawn, or reflected about the point."""
    if interval == "basic":
        return 2 * lower - lo_draws, 2 * upper - hi_draws
    return lo_draws, hi_draws


def _ranges(lower, upper, lo, hi, alpha: float) -> np.ndarray:
    """[q_alpha(lo), q_{1-alpha}(hi)] per query, widened to the point bounds (not clipped: reflected
    replicates may leave [0, 1]); a query with no replicate keeps its point bounds."""
    out = np.stack([lower, upper], axis=1)
    seen = ~np.all(np.isnan(lo), axis=0)
    if seen.any():
        out[seen, 0] = np.minimum(lower[seen], np.nanquantile(lo[:, seen], alpha, axis=0))
        out[seen, 1] = np.maximum(upper[seen], np.nanquantile(hi[:, seen], 1 - alpha, axis=0))
    return out


def _covered(lo, hi, ranges: np.ndarray) -> float:
    """Share of replicates r with lo[r, j] and hi[r, j] inside ranges[j] for every query j (NaN: no constraint)."""
    if not len(lo):
        return 1.0
    with np.errstate(invalid="ignore"):
        ok = (np.isnan(lo) | (lo >= ranges[:, 0] - 1e-12)) & (np.isnan(hi) | (hi <= ranges[:, 1] + 1e-12))
    return float(np.mean(np.all(ok, axis=1)))


def simultaneous_band(lower, upper, lo_draws, hi_draws, *, level: float = 0.95, interval: str = "percentile",
                      iterations: int = 60) -> Band:
    """Pointwise ranges and the simultaneous band of Q queries' bounds (module docstring).

    ``lower``, ``upper``: (Q,) point bounds; ``lo_draws``, ``hi_draws``: (R, Q) bootstrap replicates, NaN
    where a resample has no value. The band's one-sided level a is found by bisection on [0, 2.5%]: the
    share of replicates inside every query's range only grows as a falls, and at a = 0 (the replicates'
    extremes) it is 1."""
    lower, upper, lo_draws, hi_draws = _check(lower, upper, lo_draws, hi_draws, interval, level)
    if interval in ("normal", "bias-aware"):
        return _sup_t(lower, upper, lo_draws, hi_draws, level, interval)
    lo, hi = _oriented(lower, upper, lo_draws, hi_draws, interval)
    pointwise = _ranges(lower, upper, lo, hi, POINTWISE_ALPHA)
    good, bad = 0.0, POINTWISE_ALPHA
    if _covered(lo, hi, pointwise) >= level:
        good = POINTWISE_ALPHA
    else:
        for _ in range(iterations):
            mid = (good + bad) / 2
            if _covered(lo, hi, _ranges(lower, upper, lo, hi, mid)) >= level:
                good = mid
            else:
                bad = mid
    band = _ranges(lower, upper, lo, hi, good)
    covered = _covered(lo, hi, band)
    return Band(np.clip(pointwise, 0, 1), np.clip(band, 0, 1), good, covered, interval, level, len(lo_draws))


def _sup_t(lower, upper, lo, hi, level: float, interval: str) -> Band:
    """The ``normal`` ranges: pointwise with c = z_{97.5%}, simultaneous with the sup-t critical value;
    ``bias-aware``: each end moved out by the size of the replicates' bias."""
    from statistics import NormalDist

    z = NormalDist().inv_cdf(1 - POINTWISE_ALPHA)
    import warnings

    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a query without replicates: all-NaN columns
        sd_lo = np.nan_to_num(np.nanstd(lo, axis=0)) if len(lo) else np.zeros(len(lower))
        sd_hi = np.nan_to_num(np.nanstd(hi, axis=0)) if len(hi) else np.zeros(len(upper))
        # the largest one-sided deviation (down for a lower bound, up for an upper) of any bound, in its sds
        dev = np.concatenate([(np.nanmean(lo, axis=0) - lo) / sd_lo, (hi - np.nanmean(hi, axis=0)) / sd_hi], axis=1)
        bias_lo = np.abs(np.nan_to_num(np.nanmean(lo, axis=0) - lower)) if interval == "bias-aware" and len(lo) else 0.0
        bias_hi = np.abs(np.nan_to_num(np.nanmean(hi, axis=0) - upper)) if interval == "bias-aware" and len(hi) else 0.0
    dev = np.where(np.isfinite(dev), dev, -np.inf)  # no replicate, or a bound that never moves: no constraint
    worst = dev.max(axis=1) if dev.size else np.zeros(0)
    c = max(z, float(np.quantile(worst, level))) if len(worst) else z
    band = lambda k: np.clip(np.stack([lower - bias_lo - k * sd_lo, upper + bias_hi + k * sd_hi], axis=1), 0, 1)  # noqa: E731
    covered = float(np.mean(worst <= c + 1e-12)) if len(worst) else 1.0
    return Band(band(z), band(c), 1 - NormalDist().cdf(c), covered, interval, level, len(lo))
