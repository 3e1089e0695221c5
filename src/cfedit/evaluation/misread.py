"""The reader's misreads, and the consistency verdict that allows for them (beside the strict one).

Every figure of a user-data evaluation is read off images by a reader with a measured error, so the share of
edits *read* in an event is not the share of edits that *are* in it (that carry its factors). Let A be a
query's outcome event on the factors an edit carries (what an errorless reader would read), R the event
that the reader reads it, and p = P(A) in [l, u] (the bounds: consistency). Then

    P(R) = P(R | A) p + P(R | not A) (1 - p).

An edit in A is read outside A only if the reader misreads one of the factors the event involves, and an
edit outside A is read inside A only by such a misread. With eps_f a bound on the reader's misread rate of
factor f, whatever the true class, and eps = sum_f eps_f over the involved factors (the union bound),
P(R | A) >= 1 - eps and P(R | not A) <= eps, so p (1 - eps) <= P(R) <= p + (1 - p) eps. Both ends grow with p
(the upper one with slope 1 - eps >= 0), hence

    P(R) in [l (1 - eps), u + (1 - u) eps]      (:func:`widen`).

Only the outcome is read off edits; the evidence V = v is the reading of the factual image, which is also
the editor's input, so the verdict is about the edits of images read as v and eps involves the outcome's
factors only.

eps_f is measured on the held-out labelled real images (:func:`misread_rates`): for each class c of f, the
one-sided upper 95% Clopper-Pearson limit of the share of images of class c read as another class; eps_f is
the largest over the classes (a class without held-out images gives 1: its misread rate is unknown).

Assumption (the report states it): the reader misreads an edit no more often than a real held-out image of
the same class. The verdict cannot tell a misread from an edit that does not carry the factor: an editor
whose edits miss the event at a rate below eps passes it. So it is kept beside the strict verdict, never in
its place.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from cfedit.core.domains import Domains
from cfedit.core.query import Query
from cfedit.core.results import Result

LEVEL = 0.95  # one-sided level of the misread rates' upper limits


def upper_limit(k: int, n: int, level: float = LEVEL) -> float:
    """One-sided upper Clopper-Pearson limit of a proportion with k successes in n trials (1 when n = 0 or k = n)."""
    from scipy.stats import beta  # here: importing scipy.stats fails where torch is absent (the CLI's light install)

    if n <= 0 or k >= n:
        return 1.0
    return float(beta.ppf(level, k + 1, n - k))


@dataclass(frozen=True, kw_only=True)
class Misread(Result):
    """A factor's worst class on labelled images: the class whose misread rate has the largest upper limit."""

    worst_class: str  # the class (its value name)
    misread: int  # of the class's n images, how many the reader read as another class
    n: int  # labelled images of the class
    upper: float  # one-sided upper ``level`` limit of the class's misread rate (1 when n = 0): eps_f
    level: float  # the limit's one-sided level

    @property
    def rate(self) -> float:
        """The class's measured misread rate (NaN when it has no image)."""
        return self.misread / self.n if self.n else float("nan")


def misread_rates(read: Mapping[str, np.ndarray], labels: Mapping[str, np.ndarray], domains: Domains,
                  level: float = LEVEL) -> dict[str, Misread]:
    """Per factor, its worst class on labelled images (:class:`Misread`): ``read`` the reader's codes,
    ``labels`` the true ones; the worst class has the largest one-sided upper limit of its misread rate
    (:func:`upper_limit`)."""
    out = {}
    for f in domains.names:
        truth, got = np.asarray(labels[f]), np.asarray(read[f])
        classes = []
        for c in range(domains.size(f)):
            mask = truth == c
            n, k = int(mask.sum()), int(np.sum(got[mask] != c))
            classes.append((upper_limit(k, n, level), k, n, c))
        up, k, n, c = max(classes, key=lambda t: (t[0], t[1]))
        out[f] = Misread(worst_class=domains.values(f)[c], misread=k, n=n, upper=up, level=level)
    return out


def misread_bound(query: Query, rates: Mapping[str, Misread]) -> float:
    """eps of ``query``: the sum of the misread bounds of the factors its outcome event involves (at most 1)."""
    return float(min(1.0, sum(rates[f].upper for f in dict.fromkeys(a.var for a in query.outcome))))


def widen(lower: float, upper: float, eps: float) -> tuple[float, float]:
    """The range of the read share of an event whose true probability lies in [lower, upper] (module docstring)."""
    return lower * (1 - eps), upper + (1 - upper) * eps


def reader_aware_band(query: Query, lower: float, upper: float, rates: Mapping[str, Misread]) -> tuple[float, tuple[float, float]]:
    """(eps, (lower', upper')): the query's misread bound and the bounds [lower, upper] widened by it."""
    eps = misread_bound(query, rates)
    lo, hi = widen(lower, upper, eps)
    return eps, (float(lo), float(hi))


def describe(rates: Mapping[str, Misread]) -> str:
    """The misread bounds for a report: ``factor upper (class c: k/n misread)``, comma-separated."""
    return ", ".join(f"{k} {m.upper:.4f} (class {m.worst_class}: {m.misread}/{m.n} misread)" for k, m in rates.items())
