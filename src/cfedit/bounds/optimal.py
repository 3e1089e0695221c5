"""The public API: optimal bounds of a counterfactual query, witnesses, and P(V) from labelled data.

:func:`optimal_bounds` and :func:`extremal_models` compose the steps of :mod:`cfedit.bounds`: the
query's events (:mod:`~cfedit.bounds.events`), the reduced C-components
(:mod:`~cfedit.bounds.canonical`), the forms (:mod:`~cfedit.bounds.forms`), the programmes
(:mod:`~cfedit.bounds.programmes`) and the witnesses (:mod:`~cfedit.bounds.witnesses`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from cfedit.bounds.canonical import _Component, _vertex, _virtual_components
from cfedit.bounds.context import Context
from cfedit.bounds.events import Contrast, check_evidence, events
from cfedit.bounds.forms import _Branches, _Poly
from cfedit.bounds.programmes import _alternate, _block_lfp, _clusters, _is_fixed, _lp_size, _relaxed, _start
from cfedit.bounds.witnesses import _Solution
from cfedit.core.domains import Domains
from cfedit.core.files import clip, read_csv_rows
from cfedit.core.graph import CausalGraph
from cfedit.core.query import Query
from cfedit.errors import DataError, DomainError, QueryError
from cfedit.scm import SCM

__all__ = ["Bounds", "Contrast", "check_compatible", "count_table", "empirical_table", "extremal_models", "optimal_bounds",
           "read_labels_csv"]

MAX_TABLE_CELLS = 10**7  # the largest P(V) table (product of the domain sizes) built from data: 80 MB of float64
REPORT_ABOVE = 10_000  # branches, law coordinates, programme rows or columns from which a query reports progress
_RANDOM_STARTS = 3  # random vertices the alternation may start from, after the programme's optimum and q0

Log = Callable[[str], None]


@dataclass(frozen=True)
class Bounds:
    """The interval [lower, upper] of a query over the models compatible with G that reproduce P(V).

    ``lower`` and ``upper`` are always valid. ``certified`` says they are proven optimal over the SCMs
    compatible with G; ``attained`` holds values reached by explicit compatible models (equal to
    ``(lower, upper)`` when the programme was solved exactly). ``method`` is ``"identified"`` (no free
    component), ``"lp"`` (free components in separate terms: an exact linear-fractional programme) or
    ``"multilinear"`` (several free components in one term; exact when they form one product of events).
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
    log: Log | None = None,
) -> Bounds:
    """The optimal bounds of ``query`` given G and P(V) (axes of ``p_v`` in ``domains.names`` order).

    ``log`` receives short progress lines when the work is large (from :data:`REPORT_ABOVE` branches,
    coordinates of a component's law, or rows or columns of the programme): first the size (branches and
    response types per C-component, then the programme's columns, rows and solves), then one line per
    solving step with its time. It is never called for a small query. Raises :class:`QueryError` for unknown factors or values and
    for evidence of probability zero, :class:`DataError` for a table of the wrong shape or one that no
    model over G reproduces.
    """
    return _solve(query, graph, domains, p_v, tol, log)[0]


def extremal_models(
    query: Query | Contrast | str, graph: CausalGraph, domains: Domains, p_v: np.ndarray, *, tol: float = 1e-6,
    log: Log | None = None,
) -> tuple[SCM, SCM]:
    """Two explicit SCMs that reproduce P(V) and attain ``Bounds.attained`` (min, max) of ``query``.

    They witness non-identification: same P(V), different counterfactuals. Each C-component becomes one
    exogenous variable over its response types (plus one per factor for the dropped slots); when a
    component is not a bidirected clique the SCMs' graph completes it to one (the canonical class).
    ``log``: progress lines, as for :func:`optimal_bounds`.
    """
    _, sol = _solve(query, graph, domains, p_v, tol, log)
    return sol.scm(sol.q_lower), sol.scm(sol.q_upper)


def check_compatible(graph: CausalGraph, domains: Domains, p_v: np.ndarray) -> None:
    """Raise :class:`DataError` when no model over G reproduces P(V) (e.g. an instrumental inequality
    fails): the check :func:`optimal_bounds` makes on the C-components a query reads, made here on every
    C-component with a bidirected edge (a component of one factor takes any P(v | pa)). A component too large
    to lay out raises :class:`QueryError`, as for a query."""
    ctx = Context(graph, domains, p_v)
    for members in graph.c_components():
        if len(members) > 1:
            _Component(ctx, tuple(members), {})  # builds its constraints and finds a feasible law, or raises


def empirical_table(
    data: Mapping[str, Sequence[object] | np.ndarray] | Iterable[Mapping[str, object]], domains: Domains
) -> np.ndarray:
    """The empirical P(V) of labelled units (:func:`count_table` / n), axes in ``domains.names`` order."""
    counts = count_table(data, domains)
    return counts / counts.sum()


def count_table(
    data: Mapping[str, Sequence[object] | np.ndarray] | Iterable[Mapping[str, object]], domains: Domains
) -> np.ndarray:
    """How many labelled units have each factor configuration (int64), axes in ``domains.names`` order.

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
    return np.bincount(idx, minlength=math.prod(domains.shape)).reshape(domains.shape).astype(np.int64)


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
        raise DataError(f"labels file {where} lacks column(s) {clip(', '.join(missing))} (columns: {clip(', '.join(header))})")
    if not rows:
        raise DataError(f"labels file {where} has no rows")
    out: dict[str, list[int]] = {n: [] for n in domains.names}
    for line, row in enumerate(rows, start=2):
        for n in domains.names:
            if not row.get(n):
                raise DataError(f"{where} line {line}: no value in column {n!r}")
            out[n].append(_code(domains, n, str(row[n]), f"{where} line {line}"))
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
    query: Query | Contrast | str, graph: CausalGraph, domains: Domains, p_v: np.ndarray, tol: float,
    log: Log | None = None,
) -> tuple[Bounds, _Solution]:
    """The bounds of ``query`` and the laws attaining them (package docstring: Solving)."""
    report = _Report(log)
    ctx = Context(graph, domains, p_v)
    terms, given = events(query, ctx)
    is_probability = not isinstance(query, Contrast)
    check_evidence(ctx, given)
    num_br = [(a, _Branches(ctx, atoms)) for a, atoms in terms]
    den_br = _Branches(ctx, given)
    touched: dict[str, set[int]] = {}
    for br in [b for _, b in num_br] + [den_br]:
        br.touched(touched)
    n_branches = sum(b.n for _, b in num_br) + den_br.n
    reads = [b.reads for _, b in num_br] + [den_br.reads]
    rc, num, den, same = _programme(ctx, touched, reads, num_br, den_br, lift=True,
                                    announce=lambda comps: report.size(lambda: _layout_size(n_branches, comps)))
    free = [v for v in range(len(rc)) if num.free(v) or den.free(v)]
    clusters = _clusters(free, [num, den])
    if any(rlt and any(rc[v].lifted for v in K) for K, rlt in zip(clusters, _relaxed(clusters, num, den))):
        # the RLT relaxation of a multilinear cluster is stated over whole response types (over lifted
        # laws it would be valid too, but possibly looser)
        rc, num, den, same = _programme(
            ctx, touched, reads, num_br, den_br, lift=False,
            announce=lambda comps: report.size(lambda: _layout_size(n_branches, comps, "multilinear, so not lifted: ")))
        free = [v for v in range(len(rc)) if num.free(v) or den.free(v)]
    m = len(rc)
    one = _Poly.constant(1.0, m)
    den_free = [v for v in free if den.free(v)]
    identified = same or not free or not len(num.coef)
    clusters = _clusters(free, [num, den])
    if identified:
        report.size(lambda: _programme_size(rc, _clusters(den_free, [den]), den, one, identified))
    else:
        report.size(lambda: _programme_size(rc, clusters, num, den, identified))
    # -- evidence must have positive probability in some compatible model
    if den_free:
        den_clusters = _clusters(den_free, [den])
        gmax, laws_den = _block_lfp(rc, den_clusters, den, one, -1.0)
        report.step(f"the evidence has probability up to {gmax:.6g} in a compatible model")
    else:
        gmax = den.scalar()
    if gmax <= 1e-12:
        ev = ", ".join(a.format(domains) for a in given)
        raise QueryError(f"the evidence {ev} has probability zero in every model compatible with G and P(V)")

    def laws(sol: Mapping[int, np.ndarray]) -> list[np.ndarray]:
        return [sol.get(v, c.q0) for v, c in enumerate(rc)]

    if identified:
        val = 1.0 if same else (0.0 if not len(num.coef) else num.scalar() / den.scalar())
        sol: dict[int, np.ndarray] = {}
        if den_free:  # witnesses must give the evidence positive probability
            start = _start(rc, den_free, laws_den)
            _, sol = _alternate(rc, den_free, den, one, -1.0, [start], gmax, 0.0)
        q = laws(sol)
        report.step(f"identified: {val:.6g}")
        return _finish(ctx, touched, val, val, (val, val), "identified", True, q, q, rc, is_probability, tol)
    lo, laws_lo = _block_lfp(rc, clusters, num, den, 1.0)
    report.step(f"lower bound {lo:.6g}")
    hi, laws_hi = _block_lfp(rc, clusters, num, den, -1.0)
    report.step(f"upper bound {hi:.6g}")
    start_lo, start_hi = _start(rc, free, laws_lo), _start(rc, free, laws_hi)
    if not any(_relaxed(clusters, num, den)):  # linear-fractional in the concatenated laws: exact
        method = "identified" if hi - lo < tol else ("lp" if all(len(K) == 1 for K in clusters) else "multilinear")
        return _finish(ctx, touched, lo, hi, (lo, hi), method, True, laws(start_lo), laws(start_hi), rc,
                       is_probability, tol)
    # -- multilinear: RLT outer bounds (lo, hi), alternating inner values
    base = {v: rc[v].q0 for v in free}

    @cache
    def vertices(s: int) -> dict[int, np.ndarray]:  # a random start, drawn only when needed
        return {v: _vertex(rc[v], np.random.default_rng(100 + s)) for v in free}

    def starts(first: dict[int, np.ndarray]) -> Iterator[dict[int, np.ndarray]]:
        yield from (first, base)
        yield from (vertices(s) for s in range(_RANDOM_STARTS))

    in_lo, qs_lo = _alternate(rc, free, num, den, 1.0, starts(start_lo), lo, tol / 10,
                              lambda k, v: report.step(f"lower bound: alternation start {k} of up to "
                                                       f"{2 + _RANDOM_STARTS} attains {v:.6g}"))
    in_hi, qs_hi = _alternate(rc, free, num, den, -1.0, starts(start_hi), hi, tol / 10,
                              lambda k, v: report.step(f"upper bound: alternation start {k} of up to "
                                                       f"{2 + _RANDOM_STARTS} attains {v:.6g}"))
    exact = (in_lo - lo < tol) and (hi - in_hi < tol)
    return _finish(ctx, touched, lo, hi, (in_lo, in_hi), "multilinear", exact, laws(qs_lo), laws(qs_hi), rc,
                   is_probability, tol)


class _Report:
    """Progress of one query to an optional ``log``: silent while the work is small; from the first size
    line above :data:`REPORT_ABOVE`, every size line and one line per solving step with its time."""

    def __init__(self, log: Log | None):
        self.log, self.on = log, False
        self.t = time.perf_counter()

    def size(self, make: Callable[[], tuple[str, int]]) -> None:
        """``make()`` gives a size line and its work (not computed without a ``log``)."""
        if self.log is None:
            return
        line, work = make()
        if self.on or work >= REPORT_ABOVE:
            self.on = True
            self.log(line)
            self.t = time.perf_counter()

    def step(self, line: str) -> None:
        if self.on:
            now = time.perf_counter()
            self.log(f"{line} ({now - self.t:.1f} s)")
            self.t = now


def _layout_size(n_branches: int, comps: Sequence[_Component], note: str = "") -> tuple[str, int]:
    """The size line before the components are built: the branches, and the response types of each
    component (and its coordinates when lifted); the work is the largest of these numbers of rows and
    coordinates."""
    sizes = ", ".join(f"{{{', '.join(c.members)}}} {c.n_types:,}" + (f" ({c.coordinates:,} lifted)" if c.lifted else "")
                      for c in comps)
    plural = "es" if n_branches != 1 else ""
    return (f"bounds: {note}{n_branches:,} branch{plural}; response types per component read: {sizes}",
            max([n_branches, *(c.coordinates for c in comps)]))


def _programme_size(rc: Sequence[_Component], clusters: Sequence[Sequence[int]], num: _Poly, den: _Poly,
                    identified: bool) -> tuple[str, int]:
    """The size line of the programme: its columns, rows and non-zeros, the clusters it couples, and the
    solves to come; the work is its number of columns or rows, the larger."""
    relaxed = _relaxed(clusters, num, den)
    cols, rows, nnz = _lp_size(rc, clusters, relaxed)
    parts = [f"bounds: {sum(len(K) for K in clusters)} of {len(rc)} component laws free"]

    def names(K: Sequence[int]) -> str:
        return " x ".join(f"{{{', '.join(rc[v].members)}}}" for v in K)

    products = [K for K, r in zip(clusters, relaxed) if len(K) > 1 and not r]
    if products:
        parts.append("exact products of " + "; ".join(names(K) for K in products))
    coupled = [K for K, r in zip(clusters, relaxed) if r]
    if coupled:
        parts.append("RLT of " + "; ".join(names(K) + " (" + " x ".join(f"{rc[v].n:,}" for v in K) + " types)"
                                           for K in coupled))
    if clusters:
        solves = "1 solve" if identified else ("2 solves" + (", then alternation" if coupled else ""))
        parts.append(f"programme of {cols:,} columns x {rows:,} rows ({nnz:,} non-zeros): {solves}")
    return "; ".join(parts), max(cols, rows) if clusters else 0


def _programme(
    ctx: Context, touched: dict[str, set[int]], reads: list, num_br: list[tuple[float, _Branches]],
    den_br: _Branches, *, lift: bool, announce: Callable[[list[_Component]], None] | None = None,
) -> tuple[list[_Component], _Poly, _Poly, bool]:
    """The components the query reads, the forms of its numerator and denominator with every fixed
    component contracted, and whether they are one form. Only the components the query reads enter
    (the others are marginalised: any feasible law of theirs completes a solution). ``announce`` hears
    the components once laid out, before they are built."""
    rc = _virtual_components(ctx, touched, reads, lift=lift, announce=announce)
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
    return rc, den if same else num, den, same


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
