"""The public API: optimal bounds of a counterfactual query, witnesses, and P(V) from labelled data.

:func:`optimal_bounds` and :func:`extremal_models` compose the steps of :mod:`cfedit.bounds`: the
query's events (:mod:`~cfedit.bounds.events`), the reduced C-components
(:mod:`~cfedit.bounds.canonical`), the forms (:mod:`~cfedit.bounds.forms`), the programmes
(:mod:`~cfedit.bounds.programmes`) and the witnesses (:mod:`~cfedit.bounds.witnesses`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from cfedit.bounds.canonical import _Component, _vertex, _virtual_components
from cfedit.bounds.context import Context
from cfedit.bounds.events import Contrast, check_evidence, events
from cfedit.bounds.forms import _Branches, _Poly
from cfedit.bounds.programmes import _alternate, _block_lfp, _clusters, _is_fixed, _start
from cfedit.bounds.witnesses import _Solution
from cfedit.core.domains import Domains
from cfedit.core.files import clip, read_csv_rows
from cfedit.core.graph import CausalGraph
from cfedit.core.query import Query
from cfedit.errors import DataError, DomainError, QueryError
from cfedit.scm import SCM

__all__ = ["Bounds", "Contrast", "empirical_table", "extremal_models", "optimal_bounds", "read_labels_csv"]

MAX_TABLE_CELLS = 10**7  # the largest P(V) table (product of the domain sizes) built from data: 80 MB of float64


@dataclass(frozen=True)
class Bounds:
    """The interval [lower, upper] of a query over the models compatible with G that reproduce P(V).

    ``lower`` and ``upper`` are always valid. ``certified`` says they are proven optimal over the SCMs
    compatible with G; ``attained`` holds values reached by explicit compatible models (equal to
    ``(lower, upper)`` when the programme was solved exactly). ``method`` is ``"identified"`` (no free
    component), ``"lp"`` (one free component: an exact linear-fractional programme) or ``"multilinear"``.
    """

    lower: float
    upper: float
    identified: bool  # upper - lower < tol
    certified: bool  # lower and upper are the optimal bounds, not only valid ones
    value: float | None  # the identified value, else None
    method: str
    attained: tuple[float, float]

    @property
    def width(self) -> float:
        return self.upper - self.lower

    def contains(self, x: float, tol: float = 1e-9) -> bool:
        return self.lower - tol <= x <= self.upper + tol


def optimal_bounds(
    query: Query | Contrast | str,
    graph: CausalGraph,
    domains: Domains,
    p_v: np.ndarray,
    *,
    tol: float = 1e-6,
) -> Bounds:
    """The optimal bounds of ``query`` given G and P(V) (axes of ``p_v`` in ``domains.names`` order).

    Raises :class:`QueryError` for unknown factors or values and for evidence of probability zero,
    :class:`DataError` for a table of the wrong shape or one that no model over G reproduces.
    """
    return _solve(query, graph, domains, p_v, tol)[0]


def extremal_models(
    query: Query | Contrast | str, graph: CausalGraph, domains: Domains, p_v: np.ndarray, *, tol: float = 1e-6
) -> tuple[SCM, SCM]:
    """Two explicit SCMs that reproduce P(V) and attain ``Bounds.attained`` (min, max) of ``query``.

    They witness non-identification: same P(V), different counterfactuals. Each C-component becomes one
    exogenous variable over its response types (plus one per factor for the dropped slots); when a
    component is not a bidirected clique the SCMs' graph completes it to one (the canonical class).
    """
    _, sol = _solve(query, graph, domains, p_v, tol)
    return sol.scm(sol.q_lower), sol.scm(sol.q_upper)


def empirical_table(
    data: Mapping[str, Sequence[object] | np.ndarray] | Iterable[Mapping[str, object]], domains: Domains
) -> np.ndarray:
    """The empirical P(V) of labelled units (counts / n), axes in ``domains.names`` order.

    ``data`` is a mapping factor -> values or an iterable of rows (mappings factor -> value). A value is
    a value name when it is text and a code when it is an integer (e.g. from :func:`read_labels_csv`).
    Unknown or missing factors and values raise :class:`DataError`, and so does a table of more than
    :data:`MAX_TABLE_CELLS` cells, before anything is allocated.
    """
    check_table_size(domains)
    if isinstance(data, Mapping):
        columns = dict(data)
    else:
        rows = list(data)
        for i, row in enumerate(rows):
            if not isinstance(row, Mapping):
                raise DataError(f"row {i + 1} is not a mapping of factor -> value")
            for name in domains.names:
                if name not in row:
                    raise DataError(f"row {i + 1} has no value for factor {name!r}")
        columns = {name: [row[name] for row in rows] for name in domains.names}
    missing = [n for n in domains.names if n not in columns]
    if missing:
        raise DataError(f"no data for factor(s) {', '.join(missing)}; factors are {', '.join(domains.names)}")
    codes = [_codes_of(domains, n, columns[n]) for n in domains.names]
    lengths = {len(c) for c in codes}
    if len(lengths) != 1:
        raise DataError(f"the factors have different numbers of values: {dict(zip(domains.names, map(len, codes)))}")
    n = lengths.pop()
    if n == 0:
        raise DataError("no labelled units: the empirical table needs at least one row")
    idx = np.ravel_multi_index(tuple(codes), domains.shape)
    return np.bincount(idx, minlength=math.prod(domains.shape)).reshape(domains.shape) / n


def check_table_size(domains: Domains, limit: int = MAX_TABLE_CELLS) -> None:
    """Refuse a joint table P(V) over ``domains`` of more than ``limit`` cells (a :class:`DataError` that
    gives the size), before anything is allocated: 40 binary factors would be 8 TiB."""
    cells = math.prod(domains.shape)  # exact: Python integers do not overflow
    if cells > limit:
        sizes = clip(" x ".join(f"{k}:{n}" for k, n in zip(domains.names, domains.shape)))
        raise DataError(f"P(V) over {len(domains.names)} factors has {cells:.3g} cells ({sizes}), more than the "
                        f"limit of {limit:.0e}: use fewer factors or fewer values per factor")


def read_labels_csv(path: str | Path, domains: Domains) -> dict[str, np.ndarray]:
    """Read a labels CSV (a header with the factor names; each cell a value *name*, never a code).

    Other columns (e.g. a file name) are ignored. Returns integer codes per factor, ready for
    :func:`empirical_table`. Missing, binary or empty files, missing columns and unknown values raise
    :class:`DataError` (with the line number for a value).
    """
    header, rows = read_csv_rows(path, "labels file")
    where = clip(path)
    missing = [n for n in domains.names if n not in header]
    if missing:
        raise DataError(
            f"{where}: missing column(s) {clip(', '.join(missing))}; found {clip(', '.join(header))}; "
            f"expected {clip(', '.join(domains.names))}"
        )
    if not rows:
        raise DataError(f"{where} has a header but no rows")
    out: dict[str, list[int]] = {n: [] for n in domains.names}
    for line, row in enumerate(rows, start=2):
        for n in domains.names:
            if not row.get(n):
                raise DataError(f"{where}, line {line}: no value in column {n!r}")
            out[n].append(_code(domains, n, str(row[n]), f"{where}, line {line}"))
    return {n: np.asarray(v, dtype=np.int64) for n, v in out.items()}


def _code(domains: Domains, name: str, value: object, where: str) -> int:
    try:
        return domains.code(name, value)
    except DomainError as e:
        raise DataError(f"{where}: {e}") from None


def _codes_of(domains: Domains, name: str, values: Sequence[object] | np.ndarray) -> np.ndarray:
    try:
        return domains.codes(name, values)
    except DomainError as e:
        raise DataError(str(e).replace("item ", "unit ", 1)) from None


# ---------------------------------------------------------------------------------- the solver
def _solve(
    query: Query | Contrast | str, graph: CausalGraph, domains: Domains, p_v: np.ndarray, tol: float
) -> tuple[Bounds, _Solution]:
    """The bounds of ``query`` and the laws attaining them (package docstring: Solving)."""
    ctx = Context(graph, domains, p_v)
    terms, given = events(query, ctx)
    is_probability = not isinstance(query, Contrast)
    check_evidence(ctx, given)
    num_br = [(a, _Branches(ctx, atoms)) for a, atoms in terms]
    den_br = _Branches(ctx, given)
    touched: dict[str, set[int]] = {}
    for br in [b for _, b in num_br] + [den_br]:
        br.touched(touched)
    # only the components the query reads enter the programme (the others are marginalised: any
    # feasible law of theirs completes a solution)
    rc = _virtual_components(ctx, touched, [b.reads for _, b in num_br] + [den_br.reads])
    num, den = _Poly.of(rc, num_br), _Poly.of(rc, [(1.0, den_br)])
    same = num.signature() == den.signature()
    rng = np.random.default_rng(0)
    changed = True
    while changed:
        changed = False
        for v, c in enumerate(rc):
            for P in (den,) if same else (num, den):
                if P.free(v) and _is_fixed(c, P, v, rng):
                    P.contract(v, c.q0)
                    changed = True
    if same:
        num = den
    free = [v for v in range(len(rc)) if num.free(v) or den.free(v)]
    m = len(rc)
    one = _Poly.constant(1.0, m)
    # -- evidence must have positive probability in some compatible model
    den_free = [v for v in free if den.free(v)]
    if den_free:
        gmax, _ = _block_lfp(rc, _clusters(den_free, [den]), den, one, -1.0)
    else:
        gmax = den.scalar()
    if gmax <= 1e-12:
        ev = ", ".join(a.format(domains) for a in given)
        raise QueryError(f"the evidence {ev} has probability zero in every model compatible with G and P(V)")

    def laws(sol: Mapping[int, np.ndarray]) -> list[np.ndarray]:
        return [sol.get(v, c.q0) for v, c in enumerate(rc)]

    if same or not free or not len(num.coef):
        val = 1.0 if same else (0.0 if not len(num.coef) else num.scalar() / den.scalar())
        sol: dict[int, np.ndarray] = {}
        if den_free:  # witnesses must give the evidence positive probability
            clusters = _clusters(den_free, [den])
            _, Qs = _block_lfp(rc, clusters, den, one, -1.0)
            start = _start(rc, clusters, Qs)
            _, sol = _alternate(rc, den_free, den, one, -1.0, [start], gmax, 0.0)
        q = laws(sol)
        return _finish(ctx, touched, val, val, (val, val), "identified", True, q, q, rc, is_probability, tol)
    clusters = _clusters(free, [num, den])
    lo, Qs_lo = _block_lfp(rc, clusters, num, den, 1.0)
    hi, Qs_hi = _block_lfp(rc, clusters, num, den, -1.0)
    start_lo, start_hi = _start(rc, clusters, Qs_lo), _start(rc, clusters, Qs_hi)
    if all(len(K) == 1 for K in clusters):  # linear-fractional in the concatenated laws: exact
        method = "identified" if hi - lo < tol else "lp"
        return _finish(ctx, touched, lo, hi, (lo, hi), method, True, laws(start_lo), laws(start_hi), rc,
                       is_probability, tol)
    # -- multilinear: RLT outer bounds (lo, hi), alternating inner values
    base = {v: rc[v].q0 for v in free}

    @cache
    def vertices(s: int) -> dict[int, np.ndarray]:  # a random start, drawn only when needed
        return {v: _vertex(rc[v], np.random.default_rng(100 + s)) for v in free}

    def starts(first: dict[int, np.ndarray]) -> Iterator[dict[int, np.ndarray]]:
        yield from (first, base)
        yield from (vertices(s) for s in range(3))

    in_lo, qs_lo = _alternate(rc, free, num, den, 1.0, starts(start_lo), lo, tol / 10)
    in_hi, qs_hi = _alternate(rc, free, num, den, -1.0, starts(start_hi), hi, tol / 10)
    exact = (in_lo - lo < tol) and (hi - in_hi < tol)
    return _finish(ctx, touched, lo, hi, (in_lo, in_hi), "multilinear", exact, laws(qs_lo), laws(qs_hi), rc,
                   is_probability, tol)


def _finish(ctx: Context, touched: dict[str, set[int]], lo: float, hi: float, attained: tuple[float, float],
            method: str, exact: bool, q_lo: list[np.ndarray], q_hi: list[np.ndarray], read: Sequence[_Component],
            is_probability: bool, tol: float) -> tuple[Bounds, _Solution]:
    def snap(x: float) -> float:
        if is_probability:
            x = min(1.0, max(0.0, x))
            for r in (0.0, 1.0):
                if abs(x - r) < 1e-10:
                    x = r
        return float(x)

    lo, hi = snap(lo), snap(hi)
    if hi < lo:  # numerical noise of an identified query
        lo = hi = (lo + hi) / 2
    attained = (snap(attained[0]), snap(attained[1]))
    identified = hi - lo < tol
    # the SCMs over G form a non-empty subset of the canonical class: a point interval pins them too
    certified = exact and (identified or all(c.clique for c in read))
    b = Bounds(lo, hi, identified, certified, (lo + hi) / 2 if identified else None,
               "identified" if identified else method, attained)
    return b, _Solution(ctx, touched, list(read), q_lo, q_hi)
