"""The two impossibility results of Pan & Bareinboim (2024), made executable on any world.

1. **Without a diagram** (:func:`diagram_witness`). From one world's P(V) we build ASCMs with different
   diagrams over the intervened factor X and a factor Y adjacent to it -- Y -> X, X -> Y and Y <-> X, every
   other factor R with parents {Y, X} and the R before it -- that reproduce P(V) exactly and share the
   world's image mechanism, so P(V, I) is identical. They disagree on the image counterfactual: under
   X -> Y, do(X = x') changes Y; under the other two it cannot.
2. **With the diagram** (:func:`handwriting_witness`). M' has f'_I(v, u) = f_I(v, tau_v(u)) with tau_v a
   v-dependent map that preserves the law of U_I given v (the world's image mechanism offers such maps:
   :class:`ShiftableNoise`). P(V, I) is identical, but the counterfactual image gets other noise (other
   handwriting, another identity) whenever tau_v and tau_{v'} differ.

Every SCM built here is exact: conditionals are encoded with the inverse-CDF (comonotone) coupling on an
exogenous variable whose values are the intervals between all the conditional CDFs' breakpoints.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from cfedit.core.graph import CausalGraph
from cfedit.core.query import parse_query
from cfedit.errors import CfeditError
from cfedit.scm import ASCM, SCM, Exogenous, ImageMechanism, Units, Values
from cfedit.worlds import World


def inverse_cdf(name: str, cond: np.ndarray, readers: tuple[str, ...]) -> tuple[Exogenous, np.ndarray]:
    """Encode conditionals P(X | parent configuration) (rows) exactly with one finite exogenous U.

    Returns U (its values are the intervals between every row's CDF breakpoints) and the table
    ``lookup[config, u] -> x`` such that P(lookup[config, U] = x) = cond[config, x].
    """
    cond = np.atleast_2d(np.asarray(cond, dtype=float))
    cuts = np.unique(np.concatenate([[0.0, 1.0], np.cumsum(cond, axis=1).ravel()]).round(12))
    cuts = cuts[(cuts >= 0) & (cuts <= 1)]
    widths = np.diff(cuts)
    mids = (cuts[:-1] + cuts[1:]) / 2
    keep = widths > 1e-12
    widths, mids = widths[keep], mids[keep]
    cdf = np.cumsum(cond, axis=1)
    lookup = np.stack([np.minimum(np.searchsorted(row, mids, side="right"), cond.shape[1] - 1) for row in cdf])
    return Exogenous(name, tuple(widths / widths.sum()), readers), lookup


@dataclass(frozen=True)
class DiagramModel:
    """One of the diagram witness's ASCMs: its graph, its SCM, and how often the edit keeps the adjacent factor."""

    graph: CausalGraph
    scm: SCM
    kept: float  # P(Y_{X=x'} = Y | evidence): the probability that the edit keeps the adjacent factor Y
    factor: str  # Y


def _conditional(p: np.ndarray, names: tuple[str, ...], child: str, parents: tuple[str, ...]) -> np.ndarray:
    """P(child | parents) from the table ``p`` (axes ``names``), rows in mixed-radix parent order; rows
    of probability zero are uniform (never read by a unit of the model)."""
    keep = (*parents, child)
    m = p.sum(axis=tuple(i for i, n in enumerate(names) if n not in keep))
    kept_order = [n for n in names if n in keep]
    m = np.transpose(m, [kept_order.index(n) for n in keep]).reshape(-1, p.shape[names.index(child)])
    tot = m.sum(axis=1, keepdims=True)
    return np.where(tot > 0, m / np.where(tot > 0, tot, 1), 1.0 / m.shape[1])


def _pair(world: World, x: str, y: str | None) -> str:
    if y is not None:
        world.domains.check(y)
        if y == x:
            raise CfeditError(f"the kept factor must differ from the intervened factor {x}")
        return y
    g = world.graph
    near = [n for n in world.domains.names if n != x and (n in g.parents(x) or x in g.parents(n)
                                                          or frozenset((n, x)) in {frozenset(e) for e in g.bidirected})]
    if not near:
        raise CfeditError(f"no factor is adjacent to {x} in {g}: the diagram witness needs one")
    return near[0]


def witness_defaults(world: World) -> tuple[str, str]:
    """(action, evidence) the witnesses use unless told: the world's first figure action do(X = x') on one
    factor, and evidence X = the first other value (units the action changes)."""
    action = next((a for a in world.figure_actions if len(a) == 1), None)
    if action is None:
        raise CfeditError(f"world {world.name!r} has no single-factor figure action; give the action")
    (x, value), = action.items()
    other = next(v for v in world.domains.values(x) if v != value)
    return f"{x}={value}", f"{x}={other}"


def diagram_witness(world: World, evidence: str | None = None, action: str | None = None,
                    kept: str | None = None) -> list[DiagramModel]:
    """Three SCMs with diagrams Y -> X, X -> Y, Y <-> X (X the action's factor, Y ``kept`` or the first
    factor adjacent to X) that fit ``world``'s P(V) exactly; ``kept`` of each is P(Y_{x'} = Y | evidence).
    Action and evidence default to :func:`witness_defaults`."""
    default_action, default_evidence = witness_defaults(world)
    action = action or default_action
    evidence = evidence or (default_evidence if action == default_action else None)
    if evidence is None:
        raise CfeditError("give the evidence of the units the witness is about (e.g. the factual value of X)")
    dom, names = world.domains, world.domains.names
    act = dom.parse_assignments(action)
    if len(act) != 1:
        raise CfeditError(f"the diagram witness takes an action on one factor, got {action!r}")
    (x,) = act
    y = _pair(world, x, kept)
    ev = dom.parse_assignments(evidence)
    p = world.scm.observational()
    rest = [n for n in world.graph.topological_order() if n not in (x, y)]
    nx_ = dom.size(x)

    def rest_parts(before: tuple[str, ...]) -> tuple[list[Exogenous], dict, list[str]]:
        exo, mech, edges = [], {}, []
        for i, r in enumerate(rest):
            pa = (*before, *rest[:i])
            u, table = inverse_cdf(f"U_{r}", _conditional(p, names, r, pa), (r,))
            exo.append(u)
            mech[r] = _lookup(table, pa, u.name, dom)
            edges += [f"{q} -> {r}" for q in pa]
        return exo, mech, edges

    models: list[tuple[str, list[Exogenous], dict]] = []
    ex, mech, edges = rest_parts((y, x))
    u_y, y_of = inverse_cdf(f"U_{y}", _conditional(p, names, y, ()), (y,))
    u_x, x_of = inverse_cdf(f"U_{x}", _conditional(p, names, x, (y,)), (x,))
    models.append((f"{y} -> {x}", [u_y, u_x, *ex],
                   {y: _lookup(y_of, (), u_y.name, dom), x: _lookup(x_of, (y,), u_x.name, dom), **mech}))
    u_x2, x2_of = inverse_cdf(f"U_{x}", _conditional(p, names, x, ()), (x,))
    u_y2, y2_of = inverse_cdf(f"U_{y}", _conditional(p, names, y, (x,)), (y,))
    models.append((f"{x} -> {y}", [u_x2, u_y2, *ex],
                   {x: _lookup(x2_of, (), u_x2.name, dom), y: _lookup(y2_of, (x,), u_y2.name, dom), **mech}))
    p_yx = p.sum(axis=tuple(i for i, n in enumerate(names) if n not in (x, y)))
    if names.index(y) > names.index(x):
        p_yx = p_yx.T
    u_yx, yx_of = inverse_cdf(f"U_{y}{x}", p_yx.reshape(1, -1), (y, x))
    models.append((f"{y} <-> {x}", [u_yx, *ex], {y: lambda pa, u, t=yx_of, n=u_yx.name: t[0, u[n]] // nx_,
                                                  x: lambda pa, u, t=yx_of, n=u_yx.name: t[0, u[n]] % nx_, **mech}))
    act_text = dom.format(act).replace(" ", "")
    given = dom.format(ev)
    out = []
    for pair, exo, mechs in models:
        scm = SCM(CausalGraph.parse("; ".join([pair, *edges])), dom, exo, mechs)
        # P(Y_{x'} = Y | evidence) = sum_y P(Y_{x'} = y, Y = y | evidence)
        values = [dom.decode(y, ev[y])] if y in ev else dom.values(y)
        total = sum(scm.probability(parse_query(f"P({y}[{act_text}]={v}, {y}={v} | {given})", dom)) for v in values)
        out.append(DiagramModel(scm.graph, scm, float(total), y))
    return out


def _lookup(table: np.ndarray, parents: tuple[str, ...], u_name: str, dom) -> Callable:
    """The mechanism ``lookup[parent configuration, u]`` of an inverse-CDF encoding."""
    return lambda pa, u: table[dom.config_index(parents, pa) if parents else 0, u[u_name]]


def posterior_units(scm: SCM, v: Mapping[str, int], u_image: float, n: int, seed: int) -> Units:
    """n exact posterior draws of u given V = v (by enumeration), with a fixed image noise u_I."""
    support, p = scm.enumerate_u()
    world = scm.evaluate(support)
    mask = np.ones(len(p), dtype=bool)
    for k, x in v.items():
        mask &= world[k] == x
    w = p * mask
    idx = np.random.default_rng(seed).choice(len(p), size=n, p=w / w.sum())
    u = {k: a[idx] for k, a in support.items()}
    return Units(u, np.full(n, u_image), scm.evaluate(u))


# ------------------------------------------------------------------------------------- impossibility 2
@runtime_checkable
class ShiftableNoise(Protocol):
    """A true image mechanism whose noise admits law-preserving, v-dependent maps: ``shift_noise(v, u, s)``
    (for each integer s, a bijection that keeps the law of U_I given v), its inverse ``unshift_noise``, and
    ``law_preserved(tau)``, an exact check that a map tau(v, u) keeps P(I | v) for every v."""

    def shift_noise(self, v: Values, u_image: np.ndarray, s: np.ndarray) -> np.ndarray: ...

    def unshift_noise(self, v: Values, u_image: np.ndarray, s: np.ndarray) -> np.ndarray: ...

    def law_preserved(self, tau: Callable[[Values, np.ndarray], np.ndarray]) -> bool: ...


_PRIMES = (7, 3, 5, 11, 13, 17, 19, 23)


def shift_of(v: Values, names: tuple[str, ...]) -> np.ndarray:
    """s(v) = 1 + 7 v_1 + 3 v_2 + 5 v_3 + ...: a shift that differs between most pairs of factor values."""
    return 1 + sum(_PRIMES[i % len(_PRIMES)] * np.asarray(v[k], dtype=np.int64) for i, k in enumerate(names))


class ShiftedNoise:
    """f'_I(v, u) = f_I(v, tau_v(u)) with tau_v = ``base.shift_noise(v, ., s(v))``."""

    def __init__(self, base: ShiftableNoise, names: tuple[str, ...]):
        if not isinstance(base, ShiftableNoise):
            raise CfeditError(f"{type(base).__name__} offers no law-preserving noise maps: the handwriting witness needs them")
        self.base, self.names = base, names
        self.image_shape = base.image_shape  # type: ignore[attr-defined]

    def tau(self, v: Values, u_image: np.ndarray) -> np.ndarray:
        return self.base.shift_noise(v, u_image, shift_of(v, self.names))

    def prior(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return self.base.prior(n, rng)  # type: ignore[attr-defined]

    def generate(self, v: Values, u_image: np.ndarray) -> np.ndarray:
        return self.base.generate(v, self.tau(v, u_image))  # type: ignore[attr-defined]


@dataclass
class HandwritingWitness:
    """The second witness: the world's ASCM M and M' with f'_I(v, u) = f_I(v, tau_v(u)), and how their counterfactual images differ."""

    factual: np.ndarray  # the factual images, the same under M and M'
    counterfactual_m: np.ndarray  # the counterfactual images under M
    counterfactual_m2: np.ndarray  # the counterfactual images under M'
    share_different: float  # share of units whose counterfactual images differ between M and M'
    share_different_changed: float  # the same share among units whose factors the action changes
    law_identical: bool  # P(I | v) identical under M and M' for every v (checked exactly)


def handwriting_witness(
    ascm: ASCM, do: Mapping[str, int], n: int = 2000, seed: int = 0, units: Units | None = None
) -> HandwritingWitness:
    """Impossibility 2 on ``ascm``: the same factual images, counterfactuals under M and M'.

    A factual image i = f_I(v, u) under M is produced under M' by u' = tau_v^{-1}(u); the counterfactual
    images f_I(v', u) and f_I(v', tau_{v'}(tau_v^{-1}(u))) are compared pixel by pixel.
    """
    base: ImageMechanism = ascm.image
    m2 = ShiftedNoise(base, ascm.domains.names)  # type: ignore[arg-type]
    units = ascm.units(n, seed) if units is None else units
    n = len(units)
    factual = ascm.factual(units)
    v_cf, cf_m = ascm.counterfactual(units, do)
    u_prime = m2.base.unshift_noise(units.v, units.u_image, shift_of(units.v, m2.names))
    if not np.array_equal(m2.generate(units.v, u_prime), factual):
        raise CfeditError("the world's noise maps are not inverse to each other")
    cf_m2 = m2.generate(v_cf, u_prime)
    differ = np.abs(cf_m - cf_m2).reshape(n, -1).max(axis=1) > 0
    changed = np.any([v_cf[k] != units.v[k] for k in units.v], axis=0)
    share_changed = float(differ[changed].mean()) if changed.any() else 0.0
    return HandwritingWitness(factual, cf_m, cf_m2, float(differ.mean()), share_changed, m2.base.law_preserved(m2.tau))
