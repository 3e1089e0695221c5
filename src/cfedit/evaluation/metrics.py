"""Metrics of an editor, from factual units, edits and readings of the edited images (docs: guides/evaluation.md).

Arrays in, :class:`Estimate` out: every number carries its sample size and a 95% confidence interval
(Wilson for proportions of independent trials; a normal interval over units when each unit has several
correlated samples). Readings should come from the world's oracle, never from the editor's labeller.

>>> effectiveness({"C": np.array([0, 0, 1, 0])}, {"C": 0}).value
0.75
>>> reconstruction_error(np.zeros((2, 3, 4, 4)), np.zeros((2, 3, 4, 4))).value
0.0
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from cfedit.core.query import Query
from cfedit.core.results import Result
from cfedit.errors import QueryError

Z95 = 1.959963984540054  # 97.5% normal quantile: 95% intervals are estimate +- Z95 standard errors


@dataclass(frozen=True)
class Estimate(Result):
    """A value with its sample size ``n`` and 95% interval [``lower``, ``upper``] (NaN: unknown, e.g. n = 0;
    written as ``null`` by :meth:`~cfedit.core.results.Result.to_json`)."""

    value: float
    lower: float
    upper: float
    n: int

    def format(self, digits: int = 3) -> str:
        """``value [lower, upper] (n=N)``, ``-`` for a number that is not finite."""
        f = lambda x: f"{x:.{digits}f}" if math.isfinite(x) else "-"  # noqa: E731
        return f"{f(self.value)} [{f(self.lower)}, {f(self.upper)}] (n={self.n})"

    def overlaps(self, lo: float, hi: float) -> bool:
        return self.upper >= lo and self.lower <= hi


def wilson(successes: float, n: int) -> Estimate:
    """A proportion with its Wilson score interval."""
    if n <= 0:
        return Estimate(float("nan"), 0.0, 1.0, 0)
    p = successes / n
    den = 1 + Z95**2 / n
    mid = (p + Z95**2 / (2 * n)) / den
    half = Z95 * math.sqrt(p * (1 - p) / n + Z95**2 / (4 * n * n)) / den
    lo = 0.0 if successes <= 0 else max(0.0, mid - half)
    hi = 1.0 if successes >= n else min(1.0, mid + half)
    return Estimate(float(p), lo, hi, int(n))


def mean_estimate(x: np.ndarray, bounded: tuple[float, float] | None = None) -> Estimate:
    """The mean of per-unit values with a normal interval (clipped to ``bounded``)."""
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    n = len(x)
    if n == 0:
        return Estimate(float("nan"), float("nan"), float("nan"), 0)
    m = float(x.mean())
    half = Z95 * float(x.std(ddof=1)) / math.sqrt(n) if n > 1 else float("inf")
    lo, hi = m - half, m + half
    if bounded is not None:
        lo, hi = max(bounded[0], lo), min(bounded[1], hi)
    return Estimate(m, lo, hi, n)


def _unit_proportion(hits: np.ndarray) -> Estimate:
    """Proportion from hits (N,) or (N, k): Wilson for k = 1; normal over unit means for k > 1 (samples of
    one unit are correlated), falling back to Wilson over units when every unit mean is 0 or 1."""
    hits = np.asarray(hits, dtype=np.float64)
    if hits.ndim == 1 or hits.shape[1] == 1:
        return wilson(float(hits.sum()), hits.size)
    means = hits.mean(axis=1)
    if np.all((means == 0) | (means == 1)):
        return wilson(float(means.sum()), len(means))
    return mean_estimate(means, (0.0, 1.0))


def effectiveness(edited: Mapping[str, np.ndarray], do: Mapping[str, int]) -> Estimate:
    """P(every intervened factor reads as set) over edited images; readings (N,) or (N, k)."""
    hits = np.ones_like(np.asarray(edited[next(iter(do))]), dtype=bool)
    for k, x in do.items():
        hits &= np.asarray(edited[k]) == x
    return _unit_proportion(hits)


def preservation(before: Mapping[str, np.ndarray], edited: Mapping[str, np.ndarray], factors: tuple[str, ...] | list[str]) -> Estimate:
    """P(every factor in ``factors`` (the non-descendants of the intervention) reads as before).

    ``before`` (N,) is the reading of the factual images; ``edited`` is (N,) or (N, k).
    """
    if not factors:
        return Estimate(1.0, 1.0, 1.0, 0)
    first = np.asarray(edited[factors[0]])
    hits = np.ones(first.shape, dtype=bool)
    for k in factors:
        b = np.asarray(before[k])
        e = np.asarray(edited[k])
        hits &= e == (b[:, None] if e.ndim == 2 else b)
    return _unit_proportion(hits)


def faithfulness(edited: Mapping[str, np.ndarray], generated_from: Mapping[str, np.ndarray]) -> dict[str, Estimate]:
    """Image-stage faithfulness per factor: P(the reading of an edit equals the factor value v' the editor
    generated it from), i.e. whether the image carries the factors it was made with. Both (N,) or (N, k).

    >>> faithfulness({"C": np.array([[0, 1]])}, {"C": np.array([[0, 0]])})["C"].value
    0.5
    """
    return {k: _unit_proportion(np.asarray(edited[k]) == np.asarray(v)) for k, v in generated_from.items()}


def reconstruction_error(images: np.ndarray, reconstructions: np.ndarray) -> Estimate:
    """Mean absolute pixel error of the null edit, with a normal interval over images."""
    a, b = np.asarray(images, dtype=np.float64), np.asarray(reconstructions, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"images {a.shape} and reconstructions {b.shape} differ in shape")
    per = np.abs(a - b).reshape(len(a), -1).mean(axis=1)
    return mean_estimate(per, (0.0, 1.0))


def ctf_estimate(query: Query, factual: Mapping[str, np.ndarray], edited: Mapping[str, np.ndarray]) -> Estimate:
    """P^(W_{x'} = w | V = v) read off edits: among units whose factual factors match the evidence, the
    proportion of edited samples whose readings match the outcome.

    ``query`` must have the edit form: every outcome atom in one world do(x') (not the factual one), every
    given atom factual. ``factual`` (N,) are the units' factors; ``edited`` (N, k) readings of the edits
    made under that same do(x').
    """
    worlds = {a.do for a in query.outcome}
    if len(worlds) != 1 or () in worlds or any(a.do for a in query.given):
        raise QueryError("ctf_estimate reads queries of the edit form P(W[X=x]=w | V=v): one intervened world "
                         "in the outcome, factual evidence")
    first = np.asarray(edited[query.outcome[0].var])
    if first.ndim == 1:
        first = first[:, None]
    sel = np.ones(len(first), dtype=bool)
    for a in query.given:
        sel &= np.asarray(factual[a.var]) == a.value
    hits = np.ones(first.shape, dtype=bool)
    for a in query.outcome:
        e = np.asarray(edited[a.var])
        hits &= (e if e.ndim == 2 else e[:, None]) == a.value
    if not sel.any():
        return Estimate(float("nan"), 0.0, 1.0, 0)
    return _unit_proportion(hits[sel])
