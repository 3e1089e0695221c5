"""Optimal bounds of feature-level counterfactuals from P(V) and a causal diagram G.

Given G (directed and bidirected edges), the observational table P(V) and a counterfactual query
Q = P(W_{x'} = w | V = v) (any :class:`~cfedit.core.query.Query`, or a :class:`Contrast` such as an ACE),
:func:`optimal_bounds` returns the interval [min_M Q(M), max_M Q(M)] over the models M compatible with G
that reproduce P(V). This is the yardstick of ctf-consistency (DESIGN.md sec. 1).

**Canonical models** (Balke & Pearl 1997; Zhang, Tian & Bareinboim 2022). Every SCM over G has the
same counterfactuals as one in which each factor V_j applies a *response function* r_j: Pa(V_j) -> V_j
and each C-component C draws the tuple (r_j)_{j in C} from a joint law q_C, independently across
components. We call r_j(pa) a *slot*: the value V_j would take were its parents pa. A counterfactual
event is a set of slot tuples, so Q = sum_r prod_C q_C(r_C) 1[event](r) / (same for the evidence).

**Constraints from P(V).** With V_1 < ... < V_n a topological order and C = (c_1 < ... < c_k), the
model reproduces P(V) iff for each member c_t and each value k of
K_t = ({c_1..c_{t-1}} u Pa(c_1..c_t)) minus c_t with P(k) > 0:

    q_C(E_t(k, v)) = P(c_t = v | K_t = k) q_C(E_{t-1}(k)),   E_t = {r : r_{c_s}(pa_{c_s}) = v_{c_s}, s <= t}.

(Induction on t: P^M(v_1..v_i) = prod_C q_C(E_{C, <= i}); K_t contains the Markov blanket of c_t in
G[V^{(c_t)}] (Tian & Pearl 2002), so pooling P(c_t | V^{(c_t - 1)}) over the rest of the prefix is exact
for a compatible P(V) and needs no positivity.) Each constraint is linear in one q_C.

**Reduction** (why a 10-valued digit parent does not blow the programme up). Only slots that the query
can read, or that P(V) constrains, are kept:

* in each world do(x) the query walks G_{bar x} from the factors its atoms name up to their ancestors,
  with a parent fixed to x (intervened) or to the value an atom demands (any other value already makes
  the event false, so slots below it are never read). V_j in two worlds whose actions agree on An(V_j)
  is one variable, so a value demanded in one world holds in the other (under do(C = green) the digit
  is still the factual D = 7);
* slots at parent values of probability zero that the query does not read are unconstrained: dropped;
* take the members of a component in an order compatible with G (the one keeping fewest slots). Each
  constraint on a slot r_{c_k}(pa) of the last member reads P(r_{c_k}(pa) = v | E_k) = P(v | K_k = k)
  for an event E_k of the earlier members' slots, one per key k that agrees with pa. If these events
  are pairwise disjoint (in any two, some earlier member's same slot takes different values; always so
  when K_k = Pa(c_k), e.g. for a one-factor component), drawing each unread slot from P(v | k) on E_k,
  independently of everything else, completes any solution on the read slots: the unread slots are
  dropped with their constraints, exactly. A last member with K_k = Pa(c_k) that the query does not
  read is dropped whole (its slots drawn from P(v | pa)), and the rule repeats on the member before it.

In the world queries a Markovian bar B with parents (D, C) keeps 2 of its 20 slots (4 response types
instead of 2^20). :func:`extremal_models` rebuilds the dropped slots this way, so its SCMs reproduce P(V).

**Solving.** An event is enumerated as *branches*: joint values of the variables it involves (V_j in
world do(x); one variable for all worlds whose actions agree on An(V_j)). A branch requires given slots
to take given values, so P(event) = sum over branches of prod_C q_C(the requirements on C's slots), a
multilinear form in the laws q_C. A component whose only kept member is constrained slot by slot (a
one-factor component) is split into groups of slots that some branch reads together: no branch reads
two groups, so independent laws per group are exact (the PNS of colour on bar, with the digit free,
reads 10 pairs of B's 20 slots, not their 2^20 joint). A component is *fixed* for a form when every
fibre along it has the same expectation under all feasible q_C; a random combination of the fibres
decides it (exact with probability one): two feasible laws that disagree prove it free, membership in
the row space of the constraints proves it fixed, otherwise two LPs decide. Fixed components are
contracted with any feasible law; if none remains free the query is identified. Free components that
share a term form clusters, and every term lies in one cluster, so the query is linear-fractional in
the concatenated cluster laws: one Charnes-Cooper LP (a single t shared by the clusters) with
``scipy.optimize.linprog(method="highs")``. It is exact when every cluster is one component (method
``"lp"``). A cluster of several components is genuinely multilinear (``"multilinear"``): its joint law
is relaxed to the level-1 reformulation-linearisation (RLT: every conditional law of one component given
the others meets that component's constraints), which gives *valid* but possibly loose bounds;
alternating exact block optimisation from several starts gives values ``attained`` by explicit models,
and the result is ``certified`` when both meet.

The canonical class equals the class of SCMs over G when each C-component is a bidirected clique.
When a component the query reads is not a clique the canonical class can be larger, so the bounds stay
valid but are not certified optimal (unless the interval is a point).

**Tables G cannot produce.** The constraints pool P(c_t | V^{(c_t - 1)}) into P(c_t | K_t). For a table
some model over G produces this is exact, in any member order. A table that breaks G's constraints
(typically an empirical one) is thereby replaced by the table of its pooled conditionals, a projection
that may depend on the member order; when even that admits no model (e.g. the instrumental inequality
fails) :class:`~cfedit.errors.DataError` is raised.

Notation: ``q`` -> q_C (law of response types), ``slot`` -> r_j(pa), ``x`` -> the action do(X = x').

>>> from cfedit.core.graph import CausalGraph
>>> from cfedit.core.domains import Domains
>>> from cfedit.core.query import parse_query
>>> g = CausalGraph.parse("X -> Y")
>>> dom = Domains({"X": ["0", "1"], "Y": ["0", "1"]})
>>> p = np.array([[0.3, 0.2], [0.1, 0.4]])  # P(X, Y)
>>> b = optimal_bounds(parse_query("P(Y[X=1]=1, Y[X=0]=0)", dom), g, dom, p)  # PNS, Tian & Pearl
>>> round(b.lower, 6), round(b.upper, 6), b.identified, b.certified
(0.4, 0.6, False, True)
"""

from __future__ import annotations

import csv
import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from scipy.optimize import linprog

from cfedit.core.domains import Domains
from cfedit.errors import DataError, DomainError, GraphError, QueryError
from cfedit.core.graph import CausalGraph
from cfedit.core.query import Atom, Query, parse_query
from cfedit.scm import SCM, Exogenous

__all__ = ["Bounds", "Contrast", "empirical_table", "extremal_models", "optimal_bounds", "read_labels_csv"]

_MAX_TYPES = 100_000  # response types of one C-component after the reduction
_MAX_BRANCHES = 500_000  # joint values of a query's variables that are enumerated
_MAX_RLT = 200_000  # joint response types in the relaxation of a multilinear query
_FIXED_TOL = 1e-9  # a fibre whose range over the feasible set is below this (relative) is constant
_LP_OPTIONS = {"primal_feasibility_tolerance": 1e-10, "dual_feasibility_tolerance": 1e-10}


# ---------------------------------------------------------------------------------- public types
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
        return text[2:] if text.startswith("+ ") else text


# ---------------------------------------------------------------------------------- entry points
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
    return _solve(query, graph, domains, p_v, tol).bounds


def extremal_models(
    query: Query | Contrast | str, graph: CausalGraph, domains: Domains, p_v: np.ndarray, *, tol: float = 1e-6
) -> tuple[SCM, SCM]:
    """Two explicit SCMs that reproduce P(V) and attain ``Bounds.attained`` (min, max) of ``query``.

    They witness non-identification: same P(V), different counterfactuals. Each C-component becomes one
    exogenous variable over its response types (plus one per factor for the dropped slots); when a
    component is not a bidirected clique the SCMs' graph completes it to one (the canonical class).
    """
    sol = _solve(query, graph, domains, p_v, tol)
    return sol.scm(sol.q_lower), sol.scm(sol.q_upper)


def empirical_table(
    data: Mapping[str, Sequence[object] | np.ndarray] | Iterable[Mapping[str, object]], domains: Domains
) -> np.ndarray:
    """The empirical P(V) of labelled units (counts / n), axes in ``domains.names`` order.

    ``data`` is a mapping factor -> values (codes or value names; e.g. from :func:`read_labels_csv`)
    or an iterable of rows (mappings factor -> value). Unknown or missing factors and values raise
    :class:`DataError`.
    """
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
    return np.bincount(idx, minlength=int(np.prod(domains.shape))).reshape(domains.shape) / n


def read_labels_csv(path: str | Path, domains: Domains) -> dict[str, np.ndarray]:
    """Read a labels CSV (a header with the factor names; values are value names or integer codes).

    Other columns (e.g. a file name) are ignored. Returns integer codes per factor, ready for
    :func:`empirical_table`. Missing files, missing columns and unknown values raise :class:`DataError`
    with the line number.
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"labels file {p} does not exist")
    with p.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        header = [h.strip() for h in (reader.fieldnames or [])]
        if not header:
            raise DataError(f"{p} is empty: expected a header with the columns {', '.join(domains.names)}")
        reader.fieldnames = header
        missing = [n for n in domains.names if n not in header]
        if missing:
            raise DataError(
                f"{p}: missing column(s) {', '.join(missing)}; found {', '.join(header)}; "
                f"expected {', '.join(domains.names)}"
            )
        out: dict[str, list[int]] = {n: [] for n in domains.names}
        for line, row in enumerate(reader, start=2):
            for n in domains.names:
                value = row.get(n)
                if value is None:
                    raise DataError(f"{p}, line {line}: no value in column {n!r}")
                out[n].append(_code(domains, n, value, f"{p}, line {line}"))
    if not out[domains.names[0]]:
        raise DataError(f"{p} has a header but no rows")
    return {n: np.asarray(v, dtype=np.int64) for n, v in out.items()}


def _code(domains: Domains, name: str, value: object, where: str) -> int:
    try:
        return domains.code(name, value)
    except DomainError as e:
        raise DataError(f"{where}: {e}") from None


def _codes_of(domains: Domains, name: str, values: Sequence[object] | np.ndarray) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise DataError(f"the values of {name} must be one-dimensional, got shape {arr.shape}")
    if arr.dtype.kind in "iu":
        bad = (arr < 0) | (arr >= domains.size(name))
        if bad.any():
            raise DataError(
                f"unit {int(np.argmax(bad))}: code {arr[bad][0]} is out of range for {name} "
                f"({domains.size(name)} values)"
            )
        return arr.astype(np.int64)
    return np.asarray([_code(domains, name, v, f"unit {i}") for i, v in enumerate(arr.tolist())], dtype=np.int64)


# ---------------------------------------------------------------------------------- the model context
class _Context:
    """G, the domains and the validated table P(V), with cached marginals."""

    def __init__(self, graph: CausalGraph, domains: Domains, p_v: np.ndarray):
        if set(domains.names) != set(graph.nodes):
            raise GraphError(f"the domains cover {sorted(domains.names)} but the graph has {sorted(graph.nodes)}")
        p = np.asarray(p_v, dtype=float)
        if p.shape != domains.shape:
            raise DataError(f"P(V) has shape {p.shape}; expected {domains.shape} (axes {', '.join(domains.names)})")
        if not np.isfinite(p).all() or (p < -1e-12).any():
            raise DataError("P(V) must hold finite non-negative probabilities")
        if abs(p.sum() - 1) > 1e-6:
            raise DataError(f"P(V) sums to {p.sum():.6g}, not 1")
        self.graph, self.domains = graph, domains
        self.p = np.clip(p, 0, None) / np.clip(p, 0, None).sum()
        self.axis = {n: i for i, n in enumerate(domains.names)}
        self.rank = {n: i for i, n in enumerate(graph.topological_order())}
        self.parents = {n: graph.parents(n) for n in graph.nodes}
        self.size = {n: domains.size(n) for n in graph.nodes}
        self._marg: dict[tuple[str, ...], np.ndarray] = {}
        self._anc: dict[str, frozenset[str]] = {}

    def ancestors(self, node: str) -> frozenset[str]:
        if node not in self._anc:
            self._anc[node] = self.graph.ancestors([node])
        return self._anc[node]

    def marginal(self, names: Sequence[str]) -> np.ndarray:
        """P(names), axes in the order given."""
        key = tuple(names)
        if key not in self._marg:
            keep = sorted(key, key=self.axis.__getitem__)
            drop = tuple(i for n, i in self.axis.items() if n not in key)
            m = self.p.sum(axis=drop) if drop else self.p
            self._marg[key] = np.transpose(m, [keep.index(n) for n in key]) if key else np.asarray(m)
        return self._marg[key]

    def n_configs(self, node: str) -> int:
        return int(np.prod([self.size[p] for p in self.parents[node]], dtype=np.int64))

    def flat(self, node: str, values: Mapping[str, int]) -> int:
        """Flat index of the parent configuration of ``node`` read from ``values``."""
        i = 0
        for p in self.parents[node]:
            i = i * self.size[p] + int(values[p])
        return i

    def key_vars(self, members: Sequence[str]) -> tuple[str, ...]:
        """K_t for the last of ``members`` (a topologically ordered prefix of a C-component)."""
        last = members[-1]
        ks = set(members[:-1]).union(*(self.parents[m] for m in members)) - {last}
        return tuple(sorted(ks, key=self.rank.__getitem__))


# ---------------------------------------------------------------------------------- queries as events
_Terms = list[tuple[float, tuple[Atom, ...]]]
"""Numerator terms of a query: (coefficient, the atoms of its outcome and evidence)."""


def _events(query: Query | Contrast | str, ctx: _Context) -> tuple[_Terms, tuple[Atom, ...]]:
    """Numerator terms (coefficient, atoms of outcome and evidence) and the evidence atoms."""
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


def _check_atom(a: Atom, ctx: _Context) -> None:
    for name, value in ((a.var, a.value), *a.do):
        if name not in ctx.size:
            raise QueryError(f"unknown factor {name!r} in the query; factors are {', '.join(ctx.domains.names)}")
        if not isinstance(value, (int, np.integer)) or not 0 <= int(value) < ctx.size[name]:
            raise QueryError(f"code {value!r} is not a value of {name} ({ctx.size[name]} values)")


def _world_plans(ctx: _Context, atoms: Sequence[Atom]) -> list[tuple[dict[str, int], dict[str, int], tuple[str, ...]]]:
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


def _check_evidence(ctx: _Context, given: Sequence[Atom]) -> None:
    """Factual evidence of probability zero under P(V) is refused with a clear message."""
    factual = {a.var: a.value for a in given if not a.do}
    if not factual:
        return
    names = tuple(factual)
    if ctx.marginal(names)[tuple(factual[n] for n in names)] <= 0:
        ev = ", ".join(a.format(ctx.domains) for a in given if not a.do)
        raise QueryError(f"the evidence {ev} has probability zero under P(V); the query is undefined")


# ---------------------------------------------------------------------------------- C-components
_Law = np.ndarray | None | list[tuple[tuple[tuple[str, int, int], ...], np.ndarray]]
"""The law of a dropped slot: P(v | pa), None (unconstrained), or per event of the earlier members'
slots ((member, parent configuration, value), ...) the law P(v | K = k) that applies there."""


def _keys(pk: np.ndarray) -> list[tuple[int, ...]]:
    """The values k of a key with P(k) > 0."""
    return [tuple(int(x) for x in k) for k in np.argwhere(pk > 0)] if pk.ndim else [()]


def _orders(ctx: _Context, members: tuple[str, ...]) -> list[tuple[str, ...]]:
    """Orders of a C-component's members compatible with G (the topological one first)."""
    if len(members) > 5:
        return [members]
    out = []
    for perm in itertools.permutations(members):
        if all(perm.index(a) < perm.index(b) for a in members for b in members
               if a != b and a in ctx.ancestors(b)):
            out.append(perm)
    return sorted(out, key=lambda o: o != members)


def _reduction(
    ctx: _Context, order: tuple[str, ...], touched: Mapping[str, set[int]]
) -> tuple[tuple[str, ...], int, bool, dict[str, list[int]], float]:
    """(order, index of the last active member, whether its unread slots are dropped, kept slots, cost).

    Walking back from the last member: a member whose key K equals its parents and that the query
    does not read is dropped whole; otherwise the unread slots of the last member are dropped when the
    events of the earlier members that condition them are pairwise disjoint (always so when K = Pa).
    """
    t = len(order) - 1
    partial = False
    while t >= 0:
        j = order[t]
        if set(ctx.key_vars(order[: t + 1])) == set(ctx.parents[j]):
            if not touched.get(j):
                t -= 1
                continue
            partial = True
        else:
            partial = _disjoint(ctx, order[: t + 1], touched.get(j, set()))
        break
    kept: dict[str, list[int]] = {}
    for i, j in enumerate(order[: t + 1]):
        cfgs = set(touched.get(j, ()))
        if not (partial and i == t):
            cfgs |= set(np.flatnonzero(ctx.marginal(ctx.parents[j]).reshape(-1) > 0).tolist())
        kept[j] = sorted(cfgs)
    cost = sum(len(c) * np.log(ctx.size[j]) for j, c in kept.items())
    return order, t, partial, kept, float(cost)


def _best_plan(
    ctx: _Context, members: tuple[str, ...], touched: Mapping[str, set[int]]
) -> tuple[tuple[str, ...], int, bool, dict[str, list[int]], float]:
    """The reduction of the member order that keeps the fewest slots (the topological one on ties)."""
    return min((_reduction(ctx, order, touched) for order in _orders(ctx, members)), key=lambda plan: plan[4])


def _disjoint(ctx: _Context, prefix: tuple[str, ...], read: set[int]) -> bool:
    """Whether, for every unread slot of the last member, the events E_{t-1}(k) of the keys k that
    evaluate it are pairwise disjoint (some earlier member's same slot takes different values)."""
    j = prefix[-1]
    K = ctx.key_vars(prefix)
    groups: dict[int, list[dict[str, int]]] = {}
    for k in _keys(ctx.marginal(K)):
        key = dict(zip(K, k))
        c = ctx.flat(j, key)
        if c not in read:
            groups.setdefault(c, []).append(key)
    for keys in groups.values():
        for a, b in itertools.combinations(keys, 2):
            if not any(ctx.flat(s, a) == ctx.flat(s, b) and a[s] != b[s] for s in prefix[:-1]):
                return False
    return True


class _Component:
    """The reduced canonical model of one C-component: response types, constraints, a feasible law."""

    def __init__(self, ctx: _Context, members: tuple[str, ...], touched: Mapping[str, set[int]]):
        self.members = members
        self.clique = all(frozenset((a, b)) in {frozenset(e) for e in ctx.graph.bidirected}
                          for a, b in itertools.combinations(members, 2))
        # -- reduction (module docstring): choose the member order that keeps the fewest slots
        order, t, partial, kept, _ = _best_plan(ctx, members, touched)
        self.order, self.active = order, order[: t + 1]
        self.dropped: dict[str, dict[int, _Law]] = {}
        for j in members:
            pa = ctx.parents[j]
            pa_prob = ctx.marginal(pa).reshape(-1)
            joint = ctx.marginal((*pa, j)).reshape(-1, ctx.size[j])
            own = set(kept.get(j, ()))
            self.dropped[j] = {
                c: (joint[c] / pa_prob[c] if pa_prob[c] > 0 else None)
                for c in range(ctx.n_configs(j)) if c not in own
            }
        if partial and set(ctx.key_vars(self.active)) != set(ctx.parents[self.active[-1]]):
            self._conditional_laws(ctx)
        # -- slots and response types
        self.slots = [(j, c) for j in self.active for c in kept[j]]
        self.col_of: dict[str, np.ndarray] = {}
        for j in members:
            col = np.full(ctx.n_configs(j), -1, dtype=np.int64)
            for k, (jj, c) in enumerate(self.slots):
                if jj == j:
                    col[c] = k
            self.col_of[j] = col
        sizes = [ctx.size[j] for j, _ in self.slots]
        n_types = int(np.prod(sizes, dtype=np.float64)) if sizes else 1
        if n_types > _MAX_TYPES:
            raise QueryError(
                f"C-component {{{', '.join(members)}}} needs {n_types:.3g} response types after the reduction "
                f"(limit {_MAX_TYPES}); the exact programme is too large, use cfedit.ncm_bounds instead"
            )
        dtype = np.int16 if max(sizes, default=1) < 30000 else np.int64
        self.types = (np.indices(sizes, dtype=dtype).reshape(len(sizes), -1).T if sizes
                      else np.zeros((1, 0), dtype=dtype))
        A, b = self._constraints(ctx, partial)
        self._prune(A, b)
        self.q0 = self._feasible()

    def _conditional_laws(self, ctx: _Context) -> None:
        """Laws of the last member's dropped slots given the earlier members' slots (disjoint events)."""
        j = self.active[-1]
        K = ctx.key_vars(self.active)
        joint = ctx.marginal((*K, j))
        pk = joint.sum(axis=-1)
        laws: dict[int, list[tuple[tuple[tuple[str, int, int], ...], np.ndarray]]] = {}
        for k in _keys(pk):
            key = dict(zip(K, k))
            c = ctx.flat(j, key)
            if c in self.dropped[j]:
                event = tuple((s, ctx.flat(s, key), key[s]) for s in self.active[:-1])
                laws.setdefault(c, []).append((event, joint[k] / pk[k]))
        self.dropped[j].update(laws)

    # constraints q(E_t(k, v)) - P(v | k) q(E_{t-1}(k)) = 0, plus sum q = 1
    def _constraints(self, ctx: _Context, partial: bool) -> tuple[sp.csr_matrix, np.ndarray]:
        n = len(self.types)
        rows: list[np.ndarray] = []
        vals: list[np.ndarray] = []
        rhs: list[float] = []
        for t, j in enumerate(self.active):
            K = ctx.key_vars(self.active[: t + 1])
            joint = ctx.marginal((*K, j))
            pk = joint.sum(axis=-1)
            last_partial = partial and t == len(self.active) - 1
            for k in _keys(pk):
                key = dict(zip(K, (int(x) for x in k)))
                cj = self.col_of[j][ctx.flat(j, key)]
                if cj < 0:
                    if last_partial:
                        continue
                    raise AssertionError("a positive-probability slot was dropped")
                prev = np.ones(n, dtype=bool)
                for s in self.active[:t]:
                    prev &= self.types[:, self.col_of[s][ctx.flat(s, key)]] == key[s]
                cond = joint[k] / pk[k]
                for v in range(ctx.size[j]):
                    cur = prev & (self.types[:, cj] == v)
                    row = cur.astype(float) - cond[v] * prev
                    nz = np.flatnonzero(row)
                    rows.append(nz)
                    vals.append(row[nz])
                    rhs.append(0.0)
        rows.append(np.arange(n))
        vals.append(np.ones(n))
        rhs.append(1.0)
        indptr = np.concatenate([[0], np.cumsum([len(r) for r in rows])])
        A = sp.csr_matrix((np.concatenate(vals), np.concatenate(rows), indptr), shape=(len(rows), n))
        return A, np.asarray(rhs)

    def _prune(self, A: sp.csr_matrix, b: np.ndarray) -> None:
        """Remove response types forced to probability zero (a homogeneous row of one sign)."""
        live = np.ones(A.shape[1], dtype=bool)
        changed = True
        while changed:
            changed = False
            for i in np.flatnonzero(b == 0):
                idx = A.indices[A.indptr[i]: A.indptr[i + 1]]
                v = A.data[A.indptr[i]: A.indptr[i + 1]]
                m = live[idx] & (np.abs(v) > 1e-15)
                if m.any() and ((v[m] > 0).all() or (v[m] < 0).all()):
                    live[idx[m]] = False
                    changed = True
        self.live = live
        self.types = self.types[live]
        A = A[:, live].tocsr()
        keep = (A.getnnz(axis=1) > 0) | (b != 0)
        self.A, self.b = A[keep], b[keep]
        # homogeneous form (A - b 1^T) y = 0 for the Charnes-Cooper and RLT programmes: every row but
        # the normalisation (which becomes 0 = 0) already has b = 0
        self.H = self.A[self.b == 0]

    def _feasible(self) -> np.ndarray:
        n = len(self.types)
        if n == 0:
            raise self._incompatible()
        res = linprog(np.zeros(n), A_eq=self.A, b_eq=self.b, bounds=(0, None), method="highs", options=_LP_OPTIONS)
        if res.status != 0:
            raise self._incompatible()
        q = np.clip(res.x, 0, None)
        return q / q.sum()

    def _incompatible(self) -> DataError:
        return DataError(
            f"P(V) is not compatible with the graph: no model over G reproduces it "
            f"(the constraints of C-component {{{', '.join(self.members)}}} are infeasible, e.g. an instrumental "
            f"inequality fails). Check the graph; an empirical table may need more data."
        )

    @property
    def n(self) -> int:
        return len(self.types)

    @cached_property
    def q1(self) -> np.ndarray:
        """A second feasible law (a vertex for a random objective)."""
        return _vertex(self, np.random.default_rng(1))

    @cached_property
    def _normal(self) -> tuple[sp.csr_matrix, np.ndarray]:
        M = (self.A @ self.A.T).toarray()
        return self.A, np.linalg.pinv(M, rcond=1e-12, hermitian=True)

    def residual(self, f: np.ndarray) -> float:
        """max |f - A^T lambda| for the least-squares lambda; 0 proves f . q the same for every feasible q."""
        A, Minv = self._normal
        lam = Minv @ (A @ f)
        return float(np.abs(f - A.T @ lam).max())

    def range_of(self, f: np.ndarray) -> tuple[float, float]:
        """min and max of f . q over the feasible q_C."""
        out = []
        for sign in (1.0, -1.0):
            res = linprog(sign * f, A_eq=self.A, b_eq=self.b, bounds=(0, None), method="highs", options=_LP_OPTIONS)
            if res.status != 0:
                raise self._incompatible()
            out.append(sign * res.fun)
        return out[0], out[1]


# ---------------------------------------------------------------------------------- events as branches
class _Branches:
    """The joint values of an event's variables, one row per branch, and the slots each branch reads.

    A variable is V_j in world do(x), identified with V_j in any world whose action agrees with x on
    An(V_j). A branch fixes every variable the event needs (pinned ones to their value); it requires, for
    each variable, the slot r_j(pa) at the parents' values in that branch to take the variable's value.
    So P(event) = sum over branches of prod_C q_C(the requirements on C's slots).
    """

    def __init__(self, ctx: _Context, atoms: Sequence[Atom]):
        plans = _world_plans(ctx, atoms)
        cells: dict[tuple, int] = {}
        allowed: list[set[int]] = []
        evals: list[tuple[int, str, int]] = []  # (world, factor, variable)

        def cell(w: int, j: str) -> int:
            x = plans[w][0]
            key = (j, tuple(sorted((k, v) for k, v in x.items() if k in ctx.ancestors(j))))
            if key not in cells:
                cells[key] = len(cells)
                allowed.append(set(range(ctx.size[j])))
            return cells[key]

        for w, (x, pins, need) in enumerate(plans):
            for j in need:
                if j not in x:
                    c = cell(w, j)
                    if j in pins:
                        allowed[c] &= {pins[j]}
                    evals.append((w, j, c))
        sizes = [len(a) for a in allowed]
        n = int(np.prod(sizes, dtype=np.float64)) if sizes else 1
        if n > _MAX_BRANCHES:
            raise QueryError(f"the query's worlds have {n:.3g} joint values to enumerate (limit {_MAX_BRANCHES}); "
                             "pin more factors, or use cfedit.ncm_bounds")
        choices = [np.asarray(sorted(a), dtype=np.int64) for a in allowed]
        grid = (np.stack([ch[i] for ch, i in zip(choices, np.indices(sizes).reshape(len(sizes), -1))], axis=1)
                if sizes else np.zeros((1, 0), dtype=np.int64))
        self.n = len(grid)
        self.reads: list[tuple[str, np.ndarray, np.ndarray]] = []  # (factor, parent configuration, value)
        seen: set[int] = set()
        for w, j, c in evals:
            if c in seen:  # the same variable evaluated in an equivalent world reads the same slot
                continue
            seen.add(c)
            x = plans[w][0]
            flat = np.zeros(self.n, dtype=np.int64)
            for p in ctx.parents[j]:
                flat = flat * ctx.size[p] + (x[p] if p in x else grid[:, cell(w, p)])
            self.reads.append((j, flat, grid[:, c]))

    def touched(self, out: dict[str, set[int]]) -> None:
        for j, flat, _ in self.reads:
            out.setdefault(j, set()).update(np.unique(flat).tolist())


class _Poly:
    """sum_t coef_t prod_v mu_v(event_{t,v}): a multilinear form in the laws of the virtual components.

    ``masks[v]`` holds the distinct events of component v (0/1 rows over its response types) and
    ``idx[t, v]`` the row term t uses; a contracted component has ``masks[v] = None``.
    """

    def __init__(self, coef: np.ndarray, idx: np.ndarray, masks: list[np.ndarray | None]):
        self.coef, self.idx, self.masks = coef, idx, masks
        self._merge()

    @classmethod
    def of(cls, comps: Sequence[_Component], terms: Sequence[tuple[float, _Branches]]) -> _Poly:
        m = len(comps)
        coefs, idxs = [], []
        rows: list[list[np.ndarray]] = [[] for _ in range(m)]
        offsets = [0] * m
        for a, br in terms:
            if br.n == 0:
                continue
            idx = np.zeros((br.n, m), dtype=np.int64)
            for v, c in enumerate(comps):
                reads = [(c.col_of[j][flat], val) for j, flat, val in br.reads if j in c.col_of]
                key = np.stack([np.where(col >= 0, val, -1) for col, val in reads] +
                               [col for col, _ in reads], axis=1) if reads else np.zeros((br.n, 0), np.int64)
                uniq, inv = np.unique(key, axis=0, return_inverse=True)
                for row in uniq:
                    mask = np.ones(c.n, dtype=bool)
                    for (col, _), val, cc in zip(reads, row[: len(reads)], row[len(reads):]):
                        if cc >= 0:
                            mask &= c.types[:, cc] == val
                    rows[v].append(mask.astype(float))
                idx[:, v] = offsets[v] + inv.reshape(-1)
                offsets[v] += len(uniq)
            coefs.append(np.full(br.n, a))
            idxs.append(idx)
        if not coefs:
            return cls(np.zeros(0), np.zeros((0, m), dtype=np.int64), [np.ones((1, c.n)) for c in comps])
        return cls(np.concatenate(coefs), np.concatenate(idxs),
                   [np.asarray(r) if r else np.ones((1, c.n)) for r, c in zip(rows, comps)])

    def _merge(self) -> None:
        """Sum the coefficients of terms with the same events; drop zero terms and duplicate events."""
        self.__dict__.pop("_triv", None)
        for v, M in enumerate(self.masks):
            if M is not None and len(M) > 1:
                uniq, inv = np.unique(M, axis=0, return_inverse=True)
                self.masks[v] = uniq
                self.idx[:, v] = inv.reshape(-1)[self.idx[:, v]]
        if len(self.coef) and self.idx.shape[1] == 0:
            self.coef, self.idx = np.asarray([self.coef.sum()]), np.zeros((1, 0), dtype=np.int64)
        elif len(self.coef):
            uniq, inv = np.unique(self.idx, axis=0, return_inverse=True)
            coef = np.bincount(inv.reshape(-1), weights=self.coef, minlength=len(uniq))
            keep = coef != 0
            self.idx, self.coef = uniq[keep], coef[keep]

    def free(self, v: int) -> bool:
        return self.masks[v] is not None

    def fibres(self, v: int, w: np.ndarray | None = None) -> np.ndarray:
        """sum_g w_g F_g, F_g the fibre along v of the terms that agree on every other free component."""
        others = [k for k in range(len(self.masks)) if k != v and self.masks[k] is not None]
        if w is None or not others:
            weights = np.bincount(self.idx[:, v], weights=self.coef, minlength=len(self.masks[v]))
            return weights @ self.masks[v]
        _, inv = np.unique(self.idx[:, others], axis=0, return_inverse=True)
        weights = np.bincount(self.idx[:, v], weights=self.coef * w[inv.reshape(-1)], minlength=len(self.masks[v]))
        return weights @ self.masks[v]

    def n_groups(self, v: int) -> int:
        others = [k for k in range(len(self.masks)) if k != v and self.masks[k] is not None]
        return len(np.unique(self.idx[:, others], axis=0)) if others and len(self.coef) else 1

    def contract(self, v: int, q: np.ndarray) -> None:
        self.coef = self.coef * (self.masks[v] @ q)[self.idx[:, v]]
        self.idx[:, v] = 0
        self.masks[v] = None
        self._merge()

    def scalar(self) -> float:
        return float(self.coef.sum())

    @classmethod
    def constant(cls, value: float, m: int) -> _Poly:
        return cls(np.asarray([value], dtype=float), np.zeros((1, m), dtype=np.int64), [None] * m)

    def involved(self, t: int, free: Sequence[int]) -> list[int]:
        """The free components whose event in term t is not the sure event."""
        return [v for v in free if self.masks[v] is not None and not self._trivial(v)[self.idx[t, v]]]

    def _trivial(self, v: int) -> np.ndarray:
        cache = self.__dict__.setdefault("_triv", {})
        if v not in cache:
            cache[v] = (self.masks[v] == 1).all(axis=1)
        return cache[v]

    def by_cluster(self, clusters: Sequence[Sequence[int]], comps: Sequence[_Component]) -> tuple[float, list[np.ndarray]]:
        """The form as a constant plus one dense tensor per cluster (each term lies in one cluster)."""
        free = [v for K in clusters for v in K]
        const = 0.0
        dense = [np.zeros([comps[v].n for v in K]) for K in clusters]
        where = {v: i for i, K in enumerate(clusters) for v in K}
        for t in range(len(self.coef)):
            inv = self.involved(t, free)
            if not inv:
                const += self.coef[t]
                continue
            k = where[inv[0]]
            term = np.asarray(self.coef[t])
            for v in clusters[k]:
                M = self.masks[v]
                term = np.multiply.outer(term, np.ones(comps[v].n) if M is None else M[self.idx[t, v]])
            dense[k] = dense[k] + term
        return const, dense

    def value(self, qs: Mapping[int, np.ndarray]) -> float:
        """The form at laws ``qs`` of its free components."""
        w = self.coef.copy()
        for v, q in qs.items():
            if self.masks[v] is not None:
                w = w * (self.masks[v] @ q)[self.idx[:, v]]
        return float(w.sum())

    def fibre(self, qs: Mapping[int, np.ndarray], v: int) -> np.ndarray | float:
        """The form as a function of component v's law, the others at ``qs`` (a scalar if constant)."""
        w = self.coef.copy()
        for u, q in qs.items():
            if u != v and self.masks[u] is not None:
                w = w * (self.masks[u] @ q)[self.idx[:, u]]
        if self.masks[v] is None:
            return float(w.sum())
        return np.bincount(self.idx[:, v], weights=w, minlength=len(self.masks[v])) @ self.masks[v]

    def signature(self) -> dict:
        """A canonical form: equal signatures mean equal forms."""
        out: dict = {}
        for t in range(len(self.coef)):
            key = tuple(None if M is None else M[self.idx[t, v]].tobytes() for v, M in enumerate(self.masks))
            out[key] = out.get(key, 0.0) + self.coef[t]
        return out


def _is_fixed(c: _Component, P: _Poly, v: int, rng: np.random.Generator) -> bool:
    """Whether every fibre of P along v has one expectation over all feasible q_v.

    A random combination f of the fibres is tested (if any fibre varies, so does f, with probability
    one): two feasible points that disagree prove it free; f in the row space of the constraints (an
    explicit residual below 1e-10) proves it fixed; otherwise two LPs decide.
    """
    f = P.fibres(v, rng.standard_normal(P.n_groups(v)))
    if np.ptp(f) == 0:
        return True
    scale = 1 + np.abs(f).max()
    if abs(f @ c.q0 - f @ c.q1) > 1e-7 * scale:
        return False
    if c.residual(f) <= 1e-10 * scale:
        return True
    lo, hi = c.range_of(f)
    return hi - lo <= _FIXED_TOL * scale


# ---------------------------------------------------------------------------------- programmes
def _lfp(
    comps: Sequence[_Component], f: np.ndarray, g: np.ndarray | float, sense: float
) -> tuple[float, np.ndarray | None]:
    """Optimise (f . q) / (g . q) over the feasible laws q of one component (``comps`` has one entry),
    exactly, by the Charnes-Cooper LP. ``sense`` is +1 for the minimum and -1 for the maximum.
    Returns the value and q (None when the optimum is a limit that no law attains)."""
    (c,) = comps
    num = _Poly(np.ones(c.n), np.arange(c.n)[:, None], [np.eye(c.n) * np.broadcast_to(f, (c.n,))[:, None]])
    den = (_Poly.constant(float(g), 1) if np.ndim(g) == 0 else
           _Poly(np.ones(c.n), np.arange(c.n)[:, None], [np.eye(c.n) * np.asarray(g)[:, None]]))
    val, Qs = _block_lfp([c], [[0]], num, den, sense)
    return val, (None if Qs is None else Qs[0])


def _rlt_rows(comps: Sequence[_Component]) -> sp.csr_matrix:
    """Rows H y = 0 on the joint types of ``comps``: every conditional law of one component given the
    others meets that component's constraints (exact for one component, the RLT relaxation otherwise)."""
    sizes = [c.n for c in comps]
    blocks = []
    for i, c in enumerate(comps):
        before, after = int(np.prod(sizes[:i])), int(np.prod(sizes[i + 1:]))
        if c.H.shape[0]:
            blocks.append(sp.kron(sp.kron(sp.identity(before), c.H), sp.identity(after)))
    return sp.vstack(blocks).tocsr() if blocks else sp.csr_matrix((0, int(np.prod(sizes))))


def _clusters(free: Sequence[int], polys: Sequence[_Poly]) -> list[list[int]]:
    """Free components joined when some term of a form involves both (their product matters)."""
    parent = {v: v for v in free}

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for P in polys:
        for t in range(len(P.coef)):
            inv = P.involved(t, free)
            for a, b in zip(inv, inv[1:]):
                parent[find(a)] = find(b)
    groups: dict[int, list[int]] = {}
    for v in free:
        groups.setdefault(find(v), []).append(v)
    return list(groups.values())


def _block_lfp(
    comps: Sequence[_Component], clusters: Sequence[Sequence[int]], num: _Poly, den: _Poly, sense: float
) -> tuple[float, list[np.ndarray] | None]:
    """Optimise num / den over one joint law Q_K per cluster K of free components.

    Every term of num and den involves one cluster at most, so the ratio is linear-fractional in the
    concatenated (Q_K): the Charnes-Cooper LP with one t shared by all clusters. Exact when every
    cluster is one component; the RLT relaxation of the multilinear problem otherwise.
    """
    parts = [[comps[v] for v in K] for K in clusters]
    sizes = [int(np.prod([c.n for c in cs])) for cs in parts]
    if sum(sizes) > _MAX_RLT:
        raise QueryError(f"the query couples C-components with {sum(sizes):.3g} joint response types "
                         f"(limit {_MAX_RLT}); use cfedit.ncm_bounds instead")
    f0, fK = num.by_cluster(clusters, comps)
    g0, gK = den.by_cluster(clusters, comps)
    N = sum(sizes)
    rows, eq = [], []
    offset = 0
    for cs, n in zip(parts, sizes):
        H = _rlt_rows(cs)
        pad = (sp.csr_matrix((H.shape[0], offset)), H, sp.csr_matrix((H.shape[0], N - offset - n + 1)))
        rows.append(sp.hstack(pad))
        norm = np.zeros(N + 1)
        norm[offset: offset + n], norm[-1] = 1.0, -1.0
        rows.append(sp.csr_matrix(norm[None, :]))
        offset += n
    rows.append(sp.csr_matrix(np.concatenate([*(g.reshape(-1) for g in gK), [g0]])[None, :]))
    A = sp.vstack(rows).tocsr()
    b = np.zeros(A.shape[0])
    b[-1] = 1.0
    c = sense * np.concatenate([*(f.reshape(-1) for f in fK), [f0]])
    res = linprog(c, A_eq=A, b_eq=b, bounds=(0, None), method="highs", options=_LP_OPTIONS)
    if res.status != 0:
        raise RuntimeError(f"the linear-fractional programme failed: {res.message}")
    t = res.x[-1]
    if t <= 1e-12:
        return sense * res.fun, None
    Qs, offset = [], 0
    for cs, n in zip(parts, sizes):
        Qs.append(np.clip(res.x[offset: offset + n], 0, None).reshape([c.n for c in cs]) / t)
        offset += n
    return sense * res.fun, Qs


def _alternate(
    comps: Sequence[_Component], free: Sequence[int], num: _Poly, den: _Poly, sense: float,
    starts: Sequence[dict[int, np.ndarray]], target: float, tol: float,
) -> tuple[float, dict[int, np.ndarray]]:
    """Block-coordinate optimisation of the multilinear ratio from several starts; each block is an
    exact linear-fractional programme, so every value returned is attained by an explicit model."""
    best_val, best_q = np.inf, dict(starts[0])
    for start in starts:
        qs = {v: q.copy() for v, q in start.items()}
        val = np.inf
        for _ in range(30):
            old = val
            for v in free:
                f, g = num.fibre(qs, v), den.fibre(qs, v)
                if np.ndim(g) and np.max(g) <= 1e-12:
                    continue
                c = comps[v]
                value, q = _lfp([c], np.broadcast_to(f, (c.n,)), g, sense)
                if q is not None:
                    qs[v] = q.reshape(-1) / q.sum()
                    val = sense * value
            if val >= old - 1e-12:
                break
        val = sense * num.value(qs) / den.value(qs) if den.value(qs) > 1e-12 else np.inf
        if val < best_val:
            best_val, best_q = val, qs
        if abs(sense * best_val - target) < tol:
            break
    return sense * best_val, best_q


def _virtual_components(ctx: _Context, touched: dict[str, set[int]], branches: Sequence[_Branches]) -> list[_Component]:
    """The reduced components the query reads. A component whose only kept member is constrained slot
    by slot (P(r_j(pa) = v) = P(v | pa)) is split into groups of slots that some branch reads together:
    no branch reads two groups, so their coupling never matters and independent laws are exact."""
    out: list[_Component] = []
    for members in ctx.graph.c_components():
        if not any(touched.get(j) for j in members):
            continue
        order, t, _, kept, _ = _best_plan(ctx, members, touched)
        if t == 0 and len(kept[order[0]]) > 1:
            j = order[0]
            groups = _coread_groups(j, branches)
            plans = [_best_plan(ctx, members, {**touched, j: g}) for g in groups]
            if len(groups) > 1 and all(pl[1] == 0 and pl[0][0] == j for pl in plans):
                out += [_Component(ctx, members, {**touched, j: g}) for g in groups]
                continue
        out.append(_Component(ctx, members, touched))
    return out


def _coread_groups(j: str, branches: Sequence[_Branches]) -> list[set[int]]:
    """Parent configurations of V_j joined when one branch reads both (union-find)."""
    parent: dict[int, int] = {}

    def find(a: int) -> int:
        while parent.setdefault(a, a) != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for br in branches:
        flats = [flat for jj, flat, _ in br.reads if jj == j]
        for f in flats:
            for a in np.unique(f).tolist():
                find(a)
        for f1, f2 in zip(flats, flats[1:]):
            for a, b in np.unique(np.stack([f1, f2], axis=1), axis=0).tolist():
                parent[find(a)] = find(b)
    groups: dict[int, set[int]] = {}
    for a in list(parent):
        groups.setdefault(find(a), set()).add(a)
    return list(groups.values())


# ---------------------------------------------------------------------------------- the solver
@dataclass
class _Solution:
    bounds: Bounds
    ctx: _Context
    touched: dict[str, set[int]]
    read: list[_Component]  # the (virtual) components the query reads
    q_lower: list[np.ndarray]  # their laws in the models attaining ``bounds.attained``
    q_upper: list[np.ndarray]

    def scm(self, qs: Sequence[np.ndarray]) -> SCM:
        """An SCM over G (components completed to cliques) realising the canonical model with laws
        ``qs`` on the read components and a feasible law on the others (built here, for witnesses)."""
        ctx = self.ctx
        built = list(zip(self.read, qs))
        covered = {j for c in self.read for j in c.members}
        for members in ctx.graph.c_components():
            if not set(members) & covered:
                c = _Component(ctx, members, self.touched)
                built.append((c, c.q0))
        exo: list[Exogenous] = []
        bidirected = set(ctx.graph.bidirected)
        sources: dict[str, list[tuple[str, np.ndarray, np.ndarray]]] = {j: [] for j in ctx.graph.nodes}
        dropped: dict[str, tuple[_Component, str | None, np.ndarray]] = {}
        for ci, (c, q) in enumerate(built):
            name = None
            types = c.types[:1]
            if c.active:
                keep = np.flatnonzero(q > 1e-13)
                name, types = f"U_C{ci}", c.types[keep]
                exo.append(Exogenous(name, tuple(q[keep] / q[keep].sum()), c.active))
                bidirected |= set(itertools.combinations(c.active, 2))
                for j in c.active:
                    sources[j].append((name, types, c.col_of[j]))
                    dropped.setdefault(j, (c, name, types))
            for j in c.members:  # a member with no kept slot here: its dropped laws are unconditional
                dropped.setdefault(j, (c, None, c.types[:1]))
        mech = {}
        for j in ctx.graph.nodes:
            c, u_comp, types = dropped[j]
            law_of, values, probs = _dropped_draws(ctx, j, c, types)
            exo.append(Exogenous(f"U_{j}", tuple(probs), (j,)))
            mech[j] = _Mechanism(ctx, j, sources[j], (u_comp, law_of, values, f"U_{j}"))
        graph = CausalGraph(ctx.graph.nodes, ctx.graph.directed, tuple(bidirected))
        return SCM(graph, ctx.domains, exo, mech)


def _dropped_draws(
    ctx: _Context, j: str, c: _Component, types: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """How V_j's dropped slots are drawn in a witness: ``law_of[config, type]`` picks a law, and one
    own exogenous U_j with states ``probs`` draws every law by inverse CDF (``values[law, state]``)."""
    laws = [np.eye(ctx.size[j])[0]]  # law 0: a point mass (slots no constraint reads)
    law_of = np.zeros((ctx.n_configs(j), len(types)), dtype=np.int64)
    for cfg, d in c.dropped[j].items():
        if d is None:
            continue
        if isinstance(d, np.ndarray):
            laws.append(d)
            law_of[cfg] = len(laws) - 1
            continue
        assigned = np.zeros(len(types), dtype=bool)
        for event, law in d:
            laws.append(law)
            m = np.ones(len(types), dtype=bool)
            for s, scfg, val in event:
                m &= types[:, c.col_of[s][scfg]] == val
            law_of[cfg, m & ~assigned] = len(laws) - 1
            assigned |= m
        law_of[cfg, ~assigned] = len(laws) - len(d)  # an event no unit meets: any of its laws
    cdfs = np.cumsum(np.asarray(laws), axis=1)
    cuts = np.unique(np.clip(np.concatenate([[0.0, 1.0], cdfs.reshape(-1)]), 0, 1))
    probs = np.diff(cuts)
    keep = probs > 1e-15
    mids = ((cuts[:-1] + cuts[1:]) / 2)[keep]
    values = np.minimum((cdfs[:, :, None] <= mids[None, None, :]).sum(axis=1), ctx.size[j] - 1)
    return law_of, values, probs[keep] / probs[keep].sum()


class _Mechanism:
    """V_j := r_j(pa): a kept slot reads the response type of the component holding it, a dropped
    one is drawn by V_j's own exogenous (given the type of its component when its law is conditional)."""

    def __init__(self, ctx: _Context, j: str, sources: list[tuple[str, np.ndarray, np.ndarray]],
                 dropped: tuple[str | None, np.ndarray, np.ndarray, str]):
        self.parents = ctx.parents[j]
        self.sizes = [ctx.size[p] for p in self.parents]
        self.sources = sources
        self.u_comp, self.law_of, self.values, self.u_own = dropped

    def __call__(self, pa: Mapping[str, np.ndarray], u: Mapping[str, np.ndarray]) -> np.ndarray:
        e = np.asarray(u[self.u_own])
        flat = np.zeros_like(e)
        for p, s in zip(self.parents, self.sizes):
            flat = flat * s + np.asarray(pa[p])
        t = np.asarray(u[self.u_comp]) if self.u_comp is not None else np.zeros_like(e)
        out = self.values[self.law_of[flat, t], e]
        for name, types, col in self.sources:
            c = col[flat]
            out = np.where(c >= 0, types[np.asarray(u[name]), np.maximum(c, 0)], out)
        return out


def _solve(
    query: Query | Contrast | str, graph: CausalGraph, domains: Domains, p_v: np.ndarray, tol: float
) -> _Solution:
    ctx = _Context(graph, domains, p_v)
    terms, given = _events(query, ctx)
    is_probability = not isinstance(query, Contrast)
    _check_evidence(ctx, given)
    num_br = [(a, _Branches(ctx, atoms)) for a, atoms in terms]
    den_br = _Branches(ctx, given)
    touched: dict[str, set[int]] = {}
    for br in [b for _, b in num_br] + [den_br]:
        br.touched(touched)
    # only the components the query reads enter the programme (the others are marginalised: any
    # feasible law of theirs completes a solution)
    rc = _virtual_components(ctx, touched, [b for _, b in num_br] + [den_br])
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
    rnd = [{v: _vertex(rc[v], np.random.default_rng(100 + s)) for v in free} for s in range(3)]
    in_lo, qs_lo = _alternate(rc, free, num, den, 1.0, [start_lo, base, *rnd], lo, tol / 10)
    in_hi, qs_hi = _alternate(rc, free, num, den, -1.0, [start_hi, base, *rnd], hi, tol / 10)
    exact = (in_lo - lo < tol) and (hi - in_hi < tol)
    return _finish(ctx, touched, lo, hi, (in_lo, in_hi), "multilinear", exact, laws(qs_lo), laws(qs_hi), rc,
                   is_probability, tol)


def _start(comps: Sequence[_Component], clusters: Sequence[Sequence[int]], Qs: list[np.ndarray] | None
           ) -> dict[int, np.ndarray]:
    """Per free component, the marginal of its cluster's optimal joint law (a feasible law)."""
    out = {}
    for i, K in enumerate(clusters):
        for a, v in enumerate(K):
            if Qs is None:
                out[v] = comps[v].q0
                continue
            m = Qs[i].sum(axis=tuple(k for k in range(len(K)) if k != a))
            out[v] = m / m.sum() if m.sum() > 0 else comps[v].q0
    return out


def _vertex(c: _Component, rng: np.random.Generator) -> np.ndarray:
    res = linprog(rng.standard_normal(c.n), A_eq=c.A, b_eq=c.b, bounds=(0, None), method="highs", options=_LP_OPTIONS)
    q = np.clip(res.x, 0, None) if res.status == 0 else c.q0
    return q / q.sum()


def _finish(ctx: _Context, touched: dict[str, set[int]], lo: float, hi: float, attained: tuple[float, float],
            method: str, exact: bool, q_lo: list[np.ndarray], q_hi: list[np.ndarray], read: Sequence[_Component],
            is_probability: bool, tol: float) -> _Solution:
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
    return _Solution(b, ctx, touched, list(read), q_lo, q_hi)
