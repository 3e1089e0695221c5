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

from cfedit.bounds.canonical import Component, vertex, virtual_components
from cfedit.bounds.context import Context
from cfedit.bounds.events import Contrast, check_evidence, events
from cfedit.bounds.forms import Branches, Poly
from cfedit.bounds.programmes import alternate, block_lfp, clusters_of, is_fixed, lp_size, needs_rlt, start_laws
from cfedit.bounds.witnesses import Solution
from cfedit.core.domains import Domains
from cfedit.core.files import clip, read_csv_rows
from cfedit.core.graph import CausalGraph
from cfedit.core.query import Query
from cfedit.errors import DataError, DomainError, QueryError
from cfedit.scm import SCM

__all__ = ["Bounds", "Contrast", "bounds_on_tables", "check_compatible", "count_table", "empirical_table", "extremal_models",
           "optimal_bounds", "pooled_table", "read_labels_csv"]

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
        """upper - lower (0 when identified)."""
        return self.upper - self.lower

    def contains(self, x: float, tol: float = 1e-9) -> bool:
        """Whether ``x`` lies in [lower - tol, upper + tol]."""
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
    solving step with its time. It is never called for a small query. How the interval is computed: the
    docs page "Optimal bounds" (``docs/concepts/bounds.md``).

    Args:
        query: a :class:`~cfedit.core.query.Query`, its text (``"P(B[C=green]=1 | D=7, C=red, B=0)"``), or a
            :class:`Contrast`.
        graph: the causal diagram G (directed and bidirected edges).
        domains: the factors' values; ``p_v``'s axes follow ``domains.names``.
        p_v: the observational table P(V), non-negative, summing to 1 (e.g. :func:`empirical_table`).
        tol: below this width the query counts as identified.
        log: a callable that receives progress lines for a large programme (``print``; the CLI uses the
            ``cfedit`` logger).

    Returns:
        The :class:`Bounds`: ``lower``, ``upper``, ``identified``, ``certified``, ``value``, ``method``, ``attained``.

    Raises:
        QueryError: unknown factors or values, or evidence of probability zero.
        DataError: a table of the wrong shape, one that no model over G reproduces, or a programme too large
            (the message gives its size).
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

    Args:
        query: as for :func:`optimal_bounds`.
        graph: the causal diagram G.
        domains: the factors' values.
        p_v: the observational table P(V).
        tol: as for :func:`optimal_bounds`.
        log: progress lines, as for :func:`optimal_bounds`.

    Returns:
        ``(lower_model, upper_model)``: two :class:`~cfedit.scm.SCM` whose ``probability(query)`` are the
        attained minimum and maximum, and whose ``observational()`` equals ``p_v``.

    Raises:
        QueryError: as for :func:`optimal_bounds`.
        DataError: as for :func:`optimal_bounds`.
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
            Component(ctx, tuple(members), {})  # builds its constraints and finds a feasible law, or raises


def pooled_table(graph: CausalGraph, domains: Domains, p_v: np.ndarray) -> np.ndarray:
    """The table of the pooled conditionals prod_i P(v_i | K_i) that the constraints read (package
    docstring: Tables G cannot produce), axes in ``domains.names`` order. It equals P(V) when some model
    over G produces P(V); the distance between the two measures how far an empirical table breaks G's
    equality constraints. Raises as :class:`~cfedit.bounds.context.Context` does for a bad table."""
    return Context(graph, domains, p_v).pooled()


def empirical_table(
    data: Mapping[str, Sequence[object] | np.ndarray] | Iterable[Mapping[str, object]], domains: Domains
) -> np.ndarray:
    """The empirical P(V) of labelled units (:func:`count_table` / n), axes in ``domains.names`` order.

    Args:
        data: a mapping factor -> values, or an iterable of rows (mappings factor -> value); text is a value
            name, an integer a code.
        domains: the factors' values.

    Returns:
        An array of shape ``domains.shape`` summing to 1.

    Raises:
        DataError: unknown or missing factors or values, no rows, or a table of more than
            :data:`MAX_TABLE_CELLS` cells.
    """
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

    Other columns (e.g. a file name) are ignored.

    Args:
        path: the CSV file.
        domains: the factors (columns that must be present) and their values.

    Returns:
        Integer codes per factor, one per row, ready for :func:`empirical_table`.

    Raises:
        DataError: a missing, binary or empty file, a missing column, an empty cell or an unknown value
            (with its line number).
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
@dataclass(frozen=True)
class _Events:
    """What a query reads, whatever the table: its events as branches and the slots they touch."""

    given: tuple
    is_probability: bool
    num_br: list[tuple[float, Branches]]
    den_br: Branches
    touched: dict[str, set[int]]
    reads: list

    @classmethod
    def of(cls, query: Query | Contrast | str, ctx: Context, check: bool = False) -> _Events:
        """Raises :class:`QueryError` for unknown factors or values, or too many branches; with ``check``,
        first for evidence of probability zero under ``ctx``'s table."""
        terms, given = events(query, ctx)
        if check:
            check_evidence(ctx, given)
        num_br = [(a, Branches(ctx, atoms)) for a, atoms in terms]
        den_br = Branches(ctx, given)
        touched: dict[str, set[int]] = {}
        for br in [b for _, b in num_br] + [den_br]:
            br.touched(touched)
        reads = [b.reads for _, b in num_br] + [den_br.reads]
        return cls(given, not isinstance(query, Contrast), num_br, den_br, touched, reads)


def bounds_on_tables(
    queries: Sequence[Query | Contrast | str], graph: CausalGraph, domains: Domains, tables: Iterable[np.ndarray], *,
    tol: float = 1e-6,
) -> Iterator[list[Bounds | None]]:
    """The bounds of every query on each table in turn (e.g. bootstrap resamples of one table of labels):
    per table, one :class:`Bounds` per query, equal to :func:`optimal_bounds` of that query on that table,
    or None where the table refuses the query (its evidence has probability zero, no model over G
    reproduces it, or its programme is over the size limits).

    Faster than calling :func:`optimal_bounds` for each pair: the queries' events are enumerated once, and
    on each table the queries share one context (its marginals) and every reduced C-component that two
    of them read alike (its constraints, feasible laws and row space). Tables are read lazily. Raises
    :class:`QueryError` for a query that no table could answer (unknown factors or values)."""
    prepared: list[_Events] | None = None
    for table in tables:
        ctx = Context(graph, domains, table)
        ctx.memo = {}  # components shared by the queries on this table (canonical.virtual_components)
        if prepared is None:
            prepared = [_Events.of(q, ctx) for q in queries]
        out: list[Bounds | None] = []
        for ev in prepared:
            try:
                out.append(_solve_events(ctx, ev, tol)[0])
            except (QueryError, DataError):
                out.append(None)
        yield out


def _solve(
    query: Query | Contrast | str, graph: CausalGraph, domains: Domains, p_v: np.ndarray, tol: float,
    log: Log | None = None,
) -> tuple[Bounds, Solution]:
    """The bounds of ``query`` and the laws attaining them (package docstring: Solving)."""
    ctx = Context(graph, domains, p_v)
    return _solve_events(ctx, _Events.of(query, ctx, check=True), tol, log)


def _solve_events(ctx: Context, ev: _Events, tol: float, log: Log | None = None) -> tuple[Bounds, Solution]:
    """The bounds of a query's events on ``ctx``'s table, and the laws attaining them."""
    report = _Report(log)
    given, is_probability, num_br, den_br, touched, reads = (ev.given, ev.is_probability, ev.num_br, ev.den_br,
                                                             ev.touched, ev.reads)
    domains = ctx.domains
    check_evidence(ctx, given)
    n_branches = sum(b.n for _, b in num_br) + den_br.n
    rc, num, den, same = _programme(ctx, touched, reads, num_br, den_br, lift=True,
                                    announce=lambda comps: report.size(lambda: _layout_size(n_branches, comps)))
    free = [v for v in range(len(rc)) if num.free(v) or den.free(v)]
    clusters = clusters_of(free, [num, den])
    if any(rlt and any(rc[v].lifted for v in K) for K, rlt in zip(clusters, needs_rlt(clusters, num, den))):
        # the RLT relaxation of a multilinear cluster is stated over whole response types (over lifted
        # laws it would be valid too, but possibly looser)
        rc, num, den, same = _programme(
            ctx, touched, reads, num_br, den_br, lift=False,
            announce=lambda comps: report.size(lambda: _layout_size(n_branches, comps, "multilinear, so not lifted: ")))
        free = [v for v in range(len(rc)) if num.free(v) or den.free(v)]
    m = len(rc)
    one = Poly.constant(1.0, m)
    den_free = [v for v in free if den.free(v)]
    identified = same or not free or not len(num.coef)
    clusters = clusters_of(free, [num, den])
    if identified:
        report.size(lambda: _programme_size(rc, clusters_of(den_free, [den]), den, one, identified))
    else:
        report.size(lambda: _programme_size(rc, clusters, num, den, identified))
    # -- evidence must have positive probability in some compatible model
    if den_free:
        den_clusters = clusters_of(den_free, [den])
        gmax, laws_den = block_lfp(rc, den_clusters, den, one, -1.0)
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
            start = start_laws(rc, den_free, laws_den)
            _, sol = alternate(rc, den_free, den, one, -1.0, [start], gmax, 0.0)
        q = laws(sol)
        report.step(f"identified: {val:.6g}")
        return _finish(ctx, touched, val, val, (val, val), "identified", True, q, q, rc, is_probability, tol)
    lo, laws_lo = block_lfp(rc, clusters, num, den, 1.0)
    report.step(f"lower bound {lo:.6g}")
    hi, laws_hi = block_lfp(rc, clusters, num, den, -1.0)
    report.step(f"upper bound {hi:.6g}")
    start_lo, start_hi = start_laws(rc, free, laws_lo), start_laws(rc, free, laws_hi)
    if not any(needs_rlt(clusters, num, den)):  # linear-fractional in the concatenated laws: exact
        method = "identified" if hi - lo < tol else ("lp" if all(len(K) == 1 for K in clusters) else "multilinear")
        return _finish(ctx, touched, lo, hi, (lo, hi), method, True, laws(start_lo), laws(start_hi), rc,
                       is_probability, tol)
    # -- multilinear: RLT outer bounds (lo, hi), alternating inner values
    base = {v: rc[v].q0 for v in free}

    @cache
    def vertices(s: int) -> dict[int, np.ndarray]:  # a random start, drawn only when needed
        return {v: vertex(rc[v], np.random.default_rng(100 + s)) for v in free}

    def starts(first: dict[int, np.ndarray]) -> Iterator[dict[int, np.ndarray]]:
        yield from (first, base)
        yield from (vertices(s) for s in range(_RANDOM_STARTS))

    in_lo, qs_lo = alternate(rc, free, num, den, 1.0, starts(start_lo), lo, tol / 10,
                              lambda k, v: report.step(f"lower bound: alternation start {k} of up to "
                                                       f"{2 + _RANDOM_STARTS} attains {v:.6g}"))
    in_hi, qs_hi = alternate(rc, free, num, den, -1.0, starts(start_hi), hi, tol / 10,
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


def _layout_size(n_branches: int, comps: Sequence[Component], note: str = "") -> tuple[str, int]:
    """The size line before the components are built: the branches, and the response types of each
    component (and its coordinates when lifted); the work is the largest of these numbers of rows and
    coordinates."""
    sizes = ", ".join(f"{{{', '.join(c.members)}}} {c.n_types:,}" + (f" ({c.coordinates:,} lifted)" if c.lifted else "")
                      for c in comps)
    plural = "es" if n_branches != 1 else ""
    return (f"bounds: {note}{n_branches:,} branch{plural}; response types per component read: {sizes}",
            max([n_branches, *(c.coordinates for c in comps)]))


def _programme_size(rc: Sequence[Component], clusters: Sequence[Sequence[int]], num: Poly, den: Poly,
                    identified: bool) -> tuple[str, int]:
    """The size line of the programme: its columns, rows and non-zeros, the clusters it couples, and the
    solves to come; the work is its number of columns or rows, the larger."""
    relaxed = needs_rlt(clusters, num, den)
    cols, rows, nnz = lp_size(rc, clusters, relaxed)
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
    ctx: Context, touched: dict[str, set[int]], reads: list, num_br: list[tuple[float, Branches]],
    den_br: Branches, *, lift: bool, announce: Callable[[list[Component]], None] | None = None,
) -> tuple[list[Component], Poly, Poly, bool]:
    """The components the query reads, the forms of its numerator and denominator with every fixed
    component contracted, and whether they are one form. Only the components the query reads enter
    (the others are marginalised: any feasible law of theirs completes a solution). ``announce`` hears
    the components once laid out, before they are built."""
    rc = virtual_components(ctx, touched, reads, lift=lift, announce=announce)
    num, den = Poly.of(rc, num_br), Poly.of(rc, [(1.0, den_br)])
    same = num.signature() == den.signature()
    rng = np.random.default_rng(0)
    changed = True
    while changed:
        changed = False
        for v, c in enumerate(rc):
            for P in (den,) if same else (num, den):
                if P.free(v) and is_fixed(c, P, v, rng):
                    P.contract(v, c.q0)
                    changed = True
    return rc, den if same else num, den, same


def _finish(ctx: Context, touched: dict[str, set[int]], lo: float, hi: float, attained: tuple[float, float],
            method: str, exact: bool, q_lo: list[np.ndarray], q_hi: list[np.ndarray], read: Sequence[Component],
            is_probability: bool, tol: float) -> tuple[Bounds, Solution]:
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
    return b, Solution(ctx, touched, list(read), q_lo, q_hi)
