"""The reader-aware verdict: the read share of an event lies in [l (1 - eps), u + (1 - u) eps]."""

import dataclasses
import itertools

import numpy as np
import pytest
from scipy.stats import binom

from cfedit.core.domains import Domains
from cfedit.core.query import parse_query
from cfedit.evaluation.misread import misread_bound, misread_rates, upper_limit, widen

SIZES = (3, 2)  # two factors: W1 with 3 classes, W2 with 2
JOINT = list(itertools.product(*(range(s) for s in SIZES)))


def _factor_misread(confusion: np.ndarray, f: int) -> float:
    """The largest probability, over true joint classes, that factor f is read as another class."""
    return max(sum(confusion[i, j] for j, r in enumerate(JOINT) if r[f] != c[f]) for i, c in enumerate(JOINT))


def _read_probability(p: np.ndarray, confusion: np.ndarray, event) -> float:
    """Exactly: sum over true classes c and read classes r in the event of P(c) P(read r | c)."""
    return float(sum(p[i] * confusion[i, j] for i in range(len(JOINT)) for j, r in enumerate(JOINT) if event(r)))


@pytest.mark.parametrize("factors", [(0,), (1,), (0, 1)])
def test_the_read_probability_lies_in_the_widened_interval(factors):
    """Brute force over random distributions of the edits' true factors and random reader confusions (joint:
    a misread of one factor may depend on the other): the read probability of the event {W_f = w_f, f in
    factors} lies in [p (1 - eps), p + (1 - p) eps], eps the sum over the event's factors of their worst misread
    rates, p the event's true probability; so it lies in the widening of any [l, u] that holds p."""
    rng = np.random.default_rng(0)
    target = (2, 1)
    event = lambda c: all(c[f] == target[f] for f in factors)  # noqa: E731
    worst_gap = 1.0
    for _ in range(400):
        p = rng.dirichlet(np.full(len(JOINT), 0.3))
        confusion = np.eye(len(JOINT)) * rng.uniform(2, 200) + rng.dirichlet(np.ones(len(JOINT)), size=len(JOINT))
        confusion /= confusion.sum(axis=1, keepdims=True)
        eps = sum(_factor_misread(confusion, f) for f in factors)
        true = sum(p[i] for i, c in enumerate(JOINT) if event(c))
        read = _read_probability(p, confusion, event)
        lo, hi = widen(true, true, eps)
        assert lo - 1e-12 <= read <= hi + 1e-12, (true, read, eps)
        l, u = max(0.0, true - rng.uniform(0, 0.2)), min(1.0, true + rng.uniform(0, 0.2))
        lo, hi = widen(l, u, eps)
        assert lo - 1e-12 <= read <= hi + 1e-12
        worst_gap = min(worst_gap, read - true * (1 - eps), true + (1 - true) * eps - read)
    assert worst_gap < 0.05  # the brute force came near an end of the interval: it is not vacuous


def test_the_interval_is_attained_and_an_editor_off_by_more_than_the_misreads_is_outside():
    """A kept factor ([l, u] = [1, 1]) whose class-c edits are misread at exactly eps: read share 1 - eps, the
    widened lower end. An editor that keeps the factor only 90% of the time, read by the same reader (eps 2%),
    reads between 0.882 and 0.902: outside the widened [0.98, 1], so the reader-aware verdict still fails it."""
    eps = 0.02
    lo, hi = widen(1.0, 1.0, eps)
    assert (lo, hi) == pytest.approx((0.98, 1.0))
    # two classes; the edits are all of class 0 (kept), the reader reads class 0 as 1 with probability eps
    confusion = np.array([[1 - eps, eps], [0.01, 0.99]])
    read_kept = 1.0 * confusion[0, 0]
    assert read_kept == pytest.approx(lo)
    p_keep = 0.9
    read_bad = p_keep * confusion[0, 0] + (1 - p_keep) * confusion[1, 0]
    assert 0.882 - 1e-9 <= read_bad <= 0.902 + 1e-9
    assert read_bad < lo  # a 95% interval around it that stays below 0.98 is outside the widened bounds


def test_upper_limit_is_the_clopper_pearson_limit():
    """The one-sided 95% upper limit q solves P(Binomial(n, q) <= k) = 5%; for k = 0 it is 1 - 0.05^(1/n)."""
    for k, n in [(0, 20), (1, 10), (3, 500), (40, 2000)]:
        q = upper_limit(k, n)
        assert binom.cdf(k, n, q) == pytest.approx(0.05, abs=1e-9)
    assert upper_limit(0, 20) == pytest.approx(1 - 0.05 ** (1 / 20))
    assert upper_limit(0, 0) == 1.0 and upper_limit(5, 5) == 1.0


def test_misread_rates_take_each_factors_worst_class_by_its_upper_limit():
    """D: class 0 has 1 misread of 10 (rate 0.1, limit ~0.394), class 1 none of 5 (limit 1 - 0.05^(1/5) = 0.451),
    class 2 none of 20: the worst is class 1, by its limit. C: class red never occurs: its rate is unknown, eps 1."""
    dom = Domains({"D": ["0", "1", "2"], "C": ["green", "red"]})
    d_true = np.array([0] * 10 + [1] * 5 + [2] * 20)
    d_read = d_true.copy()
    d_read[3] = 2
    c = np.zeros(35, int)
    rates = misread_rates({"D": d_read, "C": c}, {"D": d_true, "C": c}, dom)
    assert rates["D"].worst_class == "1" and rates["D"].misread == 0 and rates["D"].n == 5
    assert rates["D"].upper == pytest.approx(1 - 0.05 ** (1 / 5))
    assert rates["C"].worst_class == "red" and rates["C"].upper == 1.0 and rates["C"].n == 0 and np.isnan(rates["C"].rate)
    q1 = parse_query("P(D[C=red]=1 | D=1, C=green)", dom)
    assert misread_bound(q1, rates) == pytest.approx(1 - 0.05 ** (1 / 5))
    rates["C"] = dataclasses.replace(rates["C"], upper=0.1)
    q2 = parse_query("P(D[C=red]=1, C[C=red]=red | D=1, C=green)", dom)
    assert misread_bound(q2, rates) == pytest.approx(1 - 0.05 ** (1 / 5) + 0.1)  # the union bound: the sum
    rates["C"] = dataclasses.replace(rates["C"], upper=0.9)
    assert misread_bound(q2, rates) == 1.0
