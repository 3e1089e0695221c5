"""Queries as events: a query's numerator terms and evidence as atoms, its worlds, evidence checks.

Part of the package's internal API (with :mod:`cfedit.bounds.context`): :func:`events`,
:func:`world_plans` and :func:`check_evidence` turn a :class:`~cfedit.core.query.Query` or a
:class:`Contrast` into what the exact programme and the neural bounds (:mod:`cfedit.bounds.neural`)
both evaluate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from cfedit.bounds.context import Context
from cfedit.core.domains import Domains
from cfedit.core.query import Atom, Query, parse_query
from cfedit.errors import QueryError

__all__ = ["Contrast", "Terms", "WorldPlan", "check_evidence", "events", "world_plans"]


@dataclass(frozen=True)
class Contrast:
    """sum_k a_k P(E_k | e): a linear functional of one conditional counterfactual law.

    All terms share the evidence e. Example, the ACE of Balke & Pearl (1997):
    ``Contrast(((1.0, P(Y[X=1]=1)), (-1.0, P(Y[X=0]=1))))``.
    """

    terms: tuple[tuple[float, Query], ...]

    def __post_init__(self) -> None:
        if not self.terms:
            raise QueryError("a contrast needs at least one term")
        givens = {frozenset(q.given) for _, q in self.terms}
        if len(givens) > 1:
            raise QueryError("all terms of a contrast must condition on the same evidence")
        object.__setattr__(self, "terms", tuple((float(a), q) for a, q in self.terms))

    def format(self, domains: Domains) -> str:
        """E.g. ``P(Y[X=1]=1) - 1 P(Y[X=0]=1)``."""
        text = " ".join(f"{'+' if a >= 0 else '-'} {abs(a):g} {q.format(domains)}" for a, q in self.terms)
        return text.removeprefix("+ ")


Terms = list[tuple[float, tuple[Atom, ...]]]
"""Numerator terms of a query: (coefficient, the atoms of its outcome and evidence)."""

WorldPlan = tuple[dict[str, int], dict[str, int], tuple[str, ...]]
"""One world do(x) of an event: x, the pinned values, and the factors to evaluate (topological order)."""


def events(query: Query | Contrast | str, ctx: Context) -> tuple[Terms, tuple[Atom, ...]]:
    """Numerator terms (coefficient, atoms of outcome and evidence) and the evidence atoms.

    Unknown factors and values raise :class:`QueryError`; so does anything but a query, a contrast or
    query text.
    """
    if isinstance(query, str):
        query = parse_query(query, ctx.domains)
    if isinstance(query, Query):
        terms = [(1.0, query)]
    elif isinstance(query, Contrast):
        terms = list(query.terms)
    else:
        raise QueryError(f"expected a Query, a Contrast or query text, got {type(query).__name__}")
    for _, q in terms:
        for a in (*q.outcome, *q.given):
            _check_atom(a, ctx)
    given = terms[0][1].given
    return [(a, (*q.outcome, *q.given)) for a, q in terms], given


def _check_atom(a: Atom, ctx: Context) -> None:
    for name, value in ((a.var, a.value), *a.do):
        if name not in ctx.size:
            raise QueryError(f"unknown factor {name!r} in the query; factors are {', '.join(ctx.domains.names)}")
        if not isinstance(value, (int, np.integer)) or not 0 <= int(value) < ctx.size[name]:
            raise QueryError(f"code {value!r} is not a value of {name} ({ctx.size[name]} values)")


def world_plans(ctx: Context, atoms: Sequence[Atom]) -> list[WorldPlan]:
    """Per world do(x) of the atoms: x, the pinned values, and the factors to evaluate (topological).

    V_j in worlds do(x) and do(x') is one and the same variable when x and x' agree on An(V_j), so an atom
    pinning it in one world pins it in the other (this keeps the slots read small: under do(C = green)
    the digit D is still the factual D = 7).
    """
    by_world: dict[tuple, dict[str, int]] = {}
    for a in atoms:
        by_world.setdefault(a.do, {})[a.var] = a.value
    plans = []
    for do, own in by_world.items():
        x, pins = dict(do), dict(own)
        need = ctx.graph.do(x).ancestors(own)
        for j in need:
            if j in x or j in pins:
                continue
            an = ctx.ancestors(j)
            key = {k: v for k, v in do if k in an}
            for do2, pins2 in by_world.items():
                if j in pins2 and {k: v for k, v in do2 if k in an} == key:
                    pins[j] = pins2[j]
                    break
        plans.append((x, pins, tuple(sorted(need, key=ctx.rank.__getitem__))))
    return plans


def check_evidence(ctx: Context, given: Sequence[Atom]) -> None:
    """Factual evidence of probability zero under P(V) is refused with a clear :class:`QueryError`."""
    factual = {a.var: a.value for a in given if not a.do}
    if not factual:
        return
    names = tuple(factual)
    if ctx.marginal(names)[tuple(factual[n] for n in names)] <= 0:
        ev = ", ".join(a.format(ctx.domains) for a in given if not a.do)
        raise QueryError(f"the evidence {ev} has probability zero under P(V); the query is undefined")
