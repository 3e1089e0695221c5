"""Exact discrete SCMs and augmented SCMs (ASCMs).

An :class:`SCM` has finitely many exogenous variables, each with a finite law and a set of *readers*
(the factors whose mechanisms read it). A variable read by two factors is a shared hidden cause, so the
graph must carry a bidirected edge between them. Because every U is finite, every quantity of interest
(P(V), P(W_{x'} = w | V = v), joint counterfactuals over several worlds) is computed exactly by
enumerating u.

An :class:`ASCM` adds the image mechanism I := f_I(V, U_I), U_I independent of U, and an oracle that reads
the factors back from images; for the same units it renders factual and true counterfactual images.

Notation: ``u`` -> U (exogenous), ``v`` -> V (factors), ``u_image`` -> U_I, ``do`` -> the action x'.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from itertools import combinations
from typing import Protocol, runtime_checkable

import numpy as np

from cfedit.core.domains import Domains
from cfedit.core.graph import CausalGraph
from cfedit.core.intervention import Intervention
from cfedit.core.query import Atom, Expectation, Query
from cfedit.errors import DomainError, GraphError, QueryError

Values = dict[str, np.ndarray]
"""Integer codes per factor (or per exogenous variable), one entry per unit."""

Mechanism = Callable[[Mapping[str, np.ndarray], Mapping[str, np.ndarray]], np.ndarray]
"""f_V(parents, u) -> codes of V, vectorised over units: ``parents`` maps Pa(V) to codes, ``u`` maps the
exogenous variables V reads to their values."""


@dataclass(frozen=True)
class Exogenous:
    """A finite exogenous variable U with law ``probs`` over {0, ..., len(probs) - 1}, read by ``readers``."""

    name: str
    probs: tuple[float, ...]
    readers: tuple[str, ...]

    def __post_init__(self) -> None:
        p = np.asarray(self.probs, dtype=float)
        if p.ndim != 1 or len(p) == 0 or (p < 0).any() or abs(p.sum() - 1) > 1e-9:
            raise ValueError(f"exogenous {self.name}: probabilities must be non-negative and sum to 1")
        object.__setattr__(self, "probs", tuple(float(x) for x in p))

    @property
    def size(self) -> int:
        return len(self.probs)

    @staticmethod
    def uniform(name: str, size: int, readers: Sequence[str]) -> Exogenous:
        """Uniform on {0, ..., size - 1}."""
        return Exogenous(name, tuple([1.0 / size] * size), tuple(readers))

    @staticmethod
    def bernoulli(name: str, p: float, readers: Sequence[str]) -> Exogenous:
        """1 with probability p, else 0."""
        return Exogenous(name, (1.0 - p, p), tuple(readers))


def check_structure(graph: CausalGraph, exogenous: Sequence, mechanisms: Mapping[str, object]) -> None:
    """A mechanism for every factor, distinct exogenous names, and a shared exogenous read only by factors that
    the graph joins by a bidirected edge (a :class:`GraphError` otherwise): the checks every SCM makes."""
    missing = [v for v in graph.nodes if v not in mechanisms]
    if missing:
        raise GraphError(f"no mechanism for {', '.join(missing)}")
    names = [e.name for e in exogenous]
    if len(set(names)) != len(names):
        raise GraphError(f"exogenous names repeat: {names}")
    bidirected = {frozenset(e) for e in graph.bidirected}
    for e in exogenous:
        for r in e.readers:
            graph.check_factor(r)
        for a, b in combinations(e.readers, 2):
            if frozenset((a, b)) not in bidirected:
                raise GraphError(f"{e.name} is read by {a} and {b} but the graph has no {a} <-> {b} edge")


class SCM:
    """A discrete structural causal model M = <U, V, F, P(U)> over a causal diagram ``graph``.

    Args:
        graph: the causal diagram; a variable read by two factors needs their bidirected edge.
        domains: the factors' values (the same factors as ``graph``).
        exogenous: the finite exogenous variables, each with its law and its readers.
        mechanisms: factor -> f(parents, u), vectorised over units: ``parents`` maps Pa(V) to codes, ``u`` the
            exogenous variables the factor reads to their values; returns codes.

    Raises:
        GraphError: domains and graph disagree, a factor has no mechanism, exogenous names repeat, or a
            shared variable's readers lack a bidirected edge.
    """

    def __init__(
        self,
        graph: CausalGraph,
        domains: Domains,
        exogenous: Sequence[Exogenous],
        mechanisms: Mapping[str, Mechanism],
    ):
        if set(domains.names) != set(graph.nodes):
            raise GraphError(f"domains cover {sorted(domains.names)} but the graph has {sorted(graph.nodes)}")
        if domains.continuous_names:
            raise DomainError(f"an exact SCM enumerates categorical factors; {', '.join(domains.continuous_names)} "
                              "continuous: use SampledSCM")
        check_structure(graph, exogenous, mechanisms)
        self.graph = graph
        self.domains = domains
        self.exogenous = tuple(exogenous)
        self.mechanisms = dict(mechanisms)
        self._order = graph.topological_order()
        self._reads = {v: tuple(e.name for e in self.exogenous if v in e.readers) for v in graph.nodes}

    @property
    def factors(self) -> tuple[str, ...]:
        """Factor order used by tables (the order of ``domains``)."""
        return self.domains.names

    # ------------------------------------------------------------------ sampling and solving
    def sample_u(self, n: int, rng: np.random.Generator) -> Values:
        """n draws of every exogenous variable from its law."""
        return {e.name: rng.choice(e.size, size=n, p=np.asarray(e.probs)) for e in self.exogenous}

    def evaluate(self, u: Mapping[str, np.ndarray], do: Mapping[str, int] | None = None) -> Values:
        """V_x(u): solve the mechanisms in topological order, with X held at x (``do``)."""
        do = do if isinstance(do, Intervention) else Intervention.of(self.domains, do)  # checked once, where input enters
        n = len(next(iter(u.values()))) if u else 1
        v: Values = {}
        for name in self._order:
            if name in do:
                v[name] = np.full(n, do[name], dtype=np.int64)
                continue
            pa = {p: v[p] for p in self.graph.parents(name)}
            out = np.asarray(self.mechanisms[name](pa, {k: u[k] for k in self._reads[name]}), dtype=np.int64)
            v[name] = np.broadcast_to(out, (n,)).copy()
        return {k: v[k] for k in self.factors}

    def sample(self, n: int, seed: int = 0, do: Mapping[str, int] | None = None) -> Values:
        """n units of V (or of V_x under ``do``), seeded."""
        return self.evaluate(self.sample_u(n, np.random.default_rng(seed)), do)

    def counterfactual(self, u: Mapping[str, np.ndarray], do: Mapping[str, int]) -> Values:
        """The counterfactual of the given units: the same u, the new action."""
        return self.evaluate(u, do)

    def do(self, intervention: Mapping[str, int]) -> SCM:
        """M_x: mechanisms of X replaced by constants; the graph loses the edges into X."""
        x = self.domains.encode(intervention)
        mech = dict(self.mechanisms)
        for k, val in x.items():
            mech[k] = lambda pa, u, _v=val: np.asarray(_v)
        exo = [Exogenous(e.name, e.probs, tuple(r for r in e.readers if r not in x)) for e in self.exogenous]
        return SCM(self.graph.do(x), self.domains, exo, mech)

    # ------------------------------------------------------------------ exact enumeration
    @cached_property
    def _support(self) -> tuple[Values, np.ndarray]:
        sizes = [e.size for e in self.exogenous]
        total = int(np.prod(sizes, dtype=np.int64)) if sizes else 1
        if total > 20_000_000:
            raise ValueError(f"the exogenous space has {total} points; too many to enumerate exactly")
        grids = np.indices(sizes).reshape(len(sizes), -1) if sizes else np.zeros((0, 1), dtype=np.int64)
        u = {e.name: grids[i] for i, e in enumerate(self.exogenous)}
        p = np.ones(total)
        for i, e in enumerate(self.exogenous):
            p = p * np.asarray(e.probs)[grids[i]]
        keep = p > 0
        return {k: a[keep] for k, a in u.items()}, p[keep]

    def enumerate_u(self) -> tuple[Values, np.ndarray]:
        """Every u with P(u) > 0, and P(u)."""
        return self._support

    def _world(self, do: tuple[tuple[str, int], ...]) -> Values:
        cache = self.__dict__.setdefault("_worlds", {})
        if do not in cache:
            cache[do] = self.evaluate(self._support[0], dict(do))
        return cache[do]

    def observational(self) -> np.ndarray:
        """The exact table P(V), axes in the order of ``factors``."""
        v = self._world(())
        idx = np.ravel_multi_index(tuple(v[k] for k in self.factors), self.domains.shape)
        return np.bincount(idx, weights=self._support[1], minlength=int(np.prod(self.domains.shape))).reshape(
            self.domains.shape
        )

    def interventional(self, do: Mapping[str, int]) -> np.ndarray:
        """The exact table P(V_x)."""
        return self.do(do).observational()

    def _mask(self, atoms) -> np.ndarray:
        p = self._support[1]
        m = np.ones(len(p), dtype=bool)
        for a in atoms:
            for k in (a.var, *a.intervention):
                self.domains.check(k)
            if a.op != "=":
                raise QueryError(f"{a.var}: an exact SCM's factors are categorical, compared with = only")
            if not 0 <= a.value < self.domains.size(a.var):
                raise DomainError(f"code {a.value} is outside the domain of {a.var}")
            m &= self._world(a.do)[a.var] == a.value
        return m

    def probability(self, query: Query) -> float:
        """The exact value of a counterfactual query, by enumeration over u.

        Args:
            query: a :class:`~cfedit.core.query.Query` over any number of worlds (e.g. from
                :func:`~cfedit.core.query.parse_query`).

        Returns:
            P(outcome | evidence) in this model.

        Raises:
            QueryError: the evidence has probability zero.
        """
        p = self._support[1]
        given = self._mask(query.given)
        pg = float(p[given].sum())
        if pg <= 0:
            ev = ", ".join(a.format(self.domains) for a in query.given)
            raise QueryError(f"the evidence {ev} has probability zero in this model")
        return float(p[given & self._mask(query.outcome)].sum() / pg)


# ---------------------------------------------------------------------- augmented SCMs
class ImageMechanism(Protocol):
    """The true image mechanism of a world, I := f_I(V, U_I), with the verbs of the learned ones
    (:mod:`cfedit.imaging`) in numpy: ``prior`` draws U_I, ``generate`` renders images (N, C, H, W) in [0, 1].
    A world that can also invert it exactly offers ``abduct(images, v) -> u_image`` (see :class:`Abducible`)."""

    image_shape: tuple[int, int, int]

    def prior(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """n draws of U_I."""
        ...

    def generate(self, v: Mapping[str, np.ndarray], u_image: np.ndarray) -> np.ndarray:
        """Images f_I(v, u_I), (N, C, H, W) in [0, 1]."""
        ...


@runtime_checkable
class Abducible(Protocol):
    """A true image mechanism with exact abduction: generate(v, abduct(generate(v, u), v)) == generate(v, u)."""

    def abduct(self, images: np.ndarray, v: Mapping[str, np.ndarray]) -> np.ndarray:
        """The u_I with generate(v, u_I) == images."""
        ...


class Reader(Protocol):
    """An oracle h: images (N, 3, H, W) in [0, 1] -> factor codes."""

    def __call__(self, images: np.ndarray) -> Values: ...


@dataclass
class Units:
    """A batch of units of an ASCM: exogenous u, image noise u_I, and their factors v."""

    u: Values
    u_image: np.ndarray
    v: Values = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.u_image)


class ASCM:
    """An augmented SCM: an :class:`SCM` over V plus I := f_I(V, U_I) and an oracle reader."""

    def __init__(self, scm: SCM, image: ImageMechanism, oracle: Reader | None = None):
        self.scm = scm
        self.image = image
        self._oracle = oracle

    @property
    def graph(self) -> CausalGraph:
        return self.scm.graph

    @property
    def domains(self) -> Domains:
        return self.scm.domains

    @property
    def oracle(self) -> Reader:
        if self._oracle is None:
            raise RuntimeError("this ASCM has no oracle reader")
        return self._oracle

    def units(self, n: int, seed: int = 0) -> Units:
        """n units: their exogenous u, image noise u_I and factors v, seeded."""
        rng = np.random.default_rng(seed)
        u = self.scm.sample_u(n, rng)
        u_image = self.image.prior(n, rng)
        return Units(u, u_image, self.scm.evaluate(u))

    def factual(self, units: Units) -> np.ndarray:
        """The factual images f_I(v, u_I)."""
        return self.image.generate(units.v, units.u_image)

    def counterfactual(self, units: Units, do: Mapping[str, int]) -> tuple[Values, np.ndarray]:
        """The true counterfactual factors V_{x'}(u) and images f_I(V_{x'}(u), u_I) of the same units."""
        v_cf = self.scm.counterfactual(units.u, do)
        return v_cf, self.image.generate(v_cf, units.u_image)


# ---------------------------------------------------------------------- sample-based SCMs (continuous noise)
@dataclass(frozen=True)
class Noise:
    """An exogenous variable given by a sampler ``sample(n, rng) -> array`` (any law, e.g. continuous),
    read by ``readers`` (two readers need a bidirected edge, as for :class:`Exogenous`)."""

    name: str
    sample: Callable[[int, np.random.Generator], np.ndarray] = field(repr=False)
    readers: tuple[str, ...]


NoiseMap = Callable[[np.ndarray, Mapping[str, np.ndarray], Mapping[str, np.ndarray]], np.ndarray]
"""(v, parents, other noises V reads) -> array, vectorised over units."""


@dataclass(frozen=True)
class Invertible:
    """Abduction for a continuous factor V := f(Pa(V), U_V, U_rest) that is invertible in its own noise U_V:
    ``inverse(v, pa, u_rest)`` is the U_V that gives v, and ``log_density(v, pa, u_rest)`` is log p(v | pa, u_rest).
    Conditioning on V = v sets U_V by ``inverse`` and weighs the unit by that density."""

    noise: str
    inverse: NoiseMap = field(repr=False)
    log_density: NoiseMap = field(repr=False)


@dataclass(frozen=True)
class Estimate:
    """A counterfactual quantity computed from ``n`` sampled units: value and its standard error.

    ``stderr`` is the delta-method standard error of the self-normalised importance-sampling ratio
    (Monte Carlo error only); it is 0 when the evidence and actions determine the quantity for every unit
    (then the value is exact). ``ess`` is the effective sample size behind it.
    """

    value: float
    stderr: float
    n: int
    ess: float

    @property
    def exact(self) -> bool:
        return self.stderr == 0.0

    def interval(self, z: float = 1.96) -> tuple[float, float]:
        """The normal confidence interval value +- z stderr (95% by default)."""
        return self.value - z * self.stderr, self.value + z * self.stderr

    def to_json(self) -> dict[str, float | int]:
        return {"value": self.value, "stderr": self.stderr, "n": self.n, "ess": self.ess}


class SampledSCM:
    """An SCM whose exogenous variables have any law (continuous ones included) and whose factors may be
    continuous: counterfactual quantities are computed from sampled units with a stated Monte Carlo error.

    Evidence on categorical factors and comparisons (``T > 2.5``) select units; evidence ``V = v`` on a
    continuous factor (factual world) abducts V's own noise with its :class:`Invertible` and weighs each
    unit by p(v | pa, other noises): self-normalised importance sampling, exact in its noise when V has no
    other noise (a Markovian factor). ``evaluate``/``counterfactual`` follow :class:`SCM`.
    """

    def __init__(self, graph: CausalGraph, domains: Domains, noises: Sequence[Noise], mechanisms: Mapping[str, Mechanism],
                 invertible: Mapping[str, Invertible] | None = None):
        if set(domains.names) != set(graph.nodes):
            raise GraphError(f"domains cover {sorted(domains.names)} but the graph has {sorted(graph.nodes)}")
        check_structure(graph, noises, mechanisms)
        invertible = dict(invertible or {})
        for v, inv in invertible.items():
            if not domains.is_continuous(v):
                raise DomainError(f"{v} is categorical: only a continuous factor is abducted by inversion")
            if inv.noise not in {e.name for e in noises} or v not in next(e for e in noises if e.name == inv.noise).readers:
                raise GraphError(f"{v} does not read the noise {inv.noise!r} its inversion sets")
        self.graph, self.domains = graph, domains
        self.noises = tuple(noises)
        self.mechanisms = dict(mechanisms)
        self.invertible = invertible
        self._order = graph.topological_order()
        self._reads = {v: tuple(e.name for e in self.noises if v in e.readers) for v in graph.nodes}

    @property
    def factors(self) -> tuple[str, ...]:
        return self.domains.names

    def sample_u(self, n: int, rng: np.random.Generator) -> Values:
        return {e.name: np.asarray(e.sample(n, rng)) for e in self.noises}

    def _dtype(self, name: str):
        return np.float64 if self.domains.is_continuous(name) else np.int64

    def evaluate(self, u: Mapping[str, np.ndarray], do: Mapping[str, object] | None = None) -> Values:
        """V_x(u): the mechanisms in topological order, X held at x (``do``; a continuous value is a float)."""
        do = self.domains.encode(do or {})
        n = len(next(iter(u.values()))) if u else 1
        v: Values = {}
        for name in self._order:
            if name in do:
                v[name] = np.full(n, do[name], dtype=self._dtype(name))
                continue
            pa = {p: v[p] for p in self.graph.parents(name)}
            out = np.asarray(self.mechanisms[name](pa, {k: u[k] for k in self._reads[name]}), dtype=self._dtype(name))
            v[name] = np.broadcast_to(out, (n,)).copy()
        return {k: v[k] for k in self.factors}

    def sample(self, n: int, seed: int = 0, do: Mapping[str, object] | None = None) -> Values:
        return self.evaluate(self.sample_u(n, np.random.default_rng(seed)), do)

    def counterfactual(self, u: Mapping[str, np.ndarray], do: Mapping[str, object]) -> Values:
        return self.evaluate(u, do)

    # ------------------------------------------------------------------ abduction and estimates
    def abduct(self, given: Sequence[Atom], n: int, rng: np.random.Generator) -> tuple[Values, np.ndarray]:
        """Units drawn from P(U | evidence), as (u, weights): point evidence on continuous factors abducts
        their own noise and weighs by its density; every other atom keeps or drops the unit (weight 0)."""
        points: dict[str, float] = {}
        for a in given:
            for k in (a.var, *a.intervention):
                self.domains.check(k)
            if a.op == "=" and self.domains.is_continuous(a.var):
                if a.do:
                    raise QueryError(f"{a.var}={a.value:g} in the world do({self.domains.format(a.intervention)}): point evidence "
                                     "on a continuous factor is supported in the factual world only")
                if a.var not in self.invertible:
                    raise QueryError(f"cannot condition on {a.var}={a.value:g}: this model has no abduction for {a.var} "
                                     "(compare it with < or > instead)")
                points[a.var] = float(a.value)
        u = self.sample_u(n, rng)
        log_w = np.zeros(n)
        if points:
            v: Values = {}
            for name in self._order:
                pa = {p: v[p] for p in self.graph.parents(name)}
                if name in points:
                    inv = self.invertible[name]
                    rest = {k: u[k] for k in self._reads[name] if k != inv.noise}
                    x = np.full(n, points[name])
                    u[inv.noise] = np.asarray(inv.inverse(x, pa, rest), dtype=float)
                    log_w = log_w + np.asarray(inv.log_density(x, pa, rest), dtype=float)
                v[name] = np.asarray(self.mechanisms[name](pa, {k: u[k] for k in self._reads[name]}), dtype=self._dtype(name))
                v[name] = np.broadcast_to(v[name], (n,)).copy()
        keep = np.isfinite(log_w)
        worlds: dict[tuple, Values] = {}
        for a in given:
            if a.op == "=" and self.domains.is_continuous(a.var) and not a.do:
                continue
            if a.do not in worlds:
                worlds[a.do] = self.evaluate(u, dict(a.do))
            keep &= a.holds(worlds[a.do][a.var])
        w = np.where(keep, np.exp(log_w - (log_w[keep].max() if keep.any() else 0.0)), 0.0)
        return u, w

    def _estimate(self, f: np.ndarray, w: np.ndarray, given: Sequence[Atom]) -> Estimate:
        total = w.sum()
        if total <= 0:
            ev = ", ".join(a.format(self.domains) for a in given)
            raise QueryError(f"no sampled unit meets the evidence {ev}: it has probability zero or needs more samples")
        value = float((w * f).sum() / total)
        se = float(np.sqrt(((w * (f - value)) ** 2).sum()) / total)
        ess = float(total ** 2 / (w ** 2).sum())
        return Estimate(value, se if se > 1e-12 * max(1.0, abs(value)) else 0.0, len(w), ess)

    def probability(self, query: Query, n: int = 100_000, seed: int = 0) -> Estimate:
        """P(outcome | given) from ``n`` units (seeded), with its Monte Carlo standard error."""
        u, w = self.abduct(query.given, n, np.random.default_rng(seed))
        hit = np.ones(n, dtype=bool)
        for a in query.outcome:
            for k in (a.var, *a.intervention):
                self.domains.check(k)
            hit &= a.holds(self.evaluate(u, dict(a.do))[a.var])
        return self._estimate(hit.astype(float), w, query.given)

    def expectation(self, query: Expectation, n: int = 100_000, seed: int = 0) -> Estimate:
        """E[W_x | given] from ``n`` units (seeded), with its Monte Carlo standard error."""
        self.domains.continuous(query.var)
        u, w = self.abduct(query.given, n, np.random.default_rng(seed))
        return self._estimate(self.evaluate(u, dict(query.do))[query.var], w, query.given)
