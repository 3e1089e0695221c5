"""Neural bounds of counterfactual queries (Xia, Pan & Bareinboim, ICLR 2023).

Two neural causal models (NCMs) over V that respect G are trained to fit P(V) while pushing the query
down and up; their query values give the interval. The penalty weight lambda on the query is annealed
geometrically from ``penalty_start`` to ``penalty_end``, so late in training the fit dominates:

    L_min = KL(P || P^M) + lambda_t Q(M),      L_max = KL(P || P^M) - lambda_t Q(M).

The NCM here: each C-component C has a shared exogenous U_C with ``latent`` states and a learned law
(one per C-component, the same class as the canonical models of :mod:`cfedit.bounds`); each factor V_j
has a small network f_j(pa_j, u_C) giving the logits of a categorical law and its own noise
E_j ~ Uniform[0, 1) picks the value by inverse CDF. The same E_j in every world couples V_j's
counterfactual values comonotonically given u_C, so every probability the loss needs (P^M(v), and the
query's worlds) is computed exactly by enumerating values and the states of U_C; there is no Monte
Carlo noise. Unlike :func:`cfedit.bounds.optimal_bounds` the size grows with the query's cells and
``latent``, not with response functions, so it reaches graphs where enumeration of responses does not;
the values are not certified (a local optimum, and a slightly relaxed fit).

It starts from the package's internal API (:class:`~cfedit.bounds.context.Context`,
:func:`~cfedit.bounds.events.events`, :func:`~cfedit.bounds.events.world_plans`,
:func:`~cfedit.bounds.events.check_evidence`), like the exact programme. This is the one module of
:mod:`cfedit.bounds` that imports torch.

Notation: ``u`` -> U_C (shared, per C-component), ``e`` -> E_j (own noise), ``lam`` -> lambda.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from cfedit.bounds.context import Context
from cfedit.bounds.events import Contrast, Terms, check_evidence, events, world_plans
from cfedit.core.domains import Domains
from cfedit.core.graph import CausalGraph
from cfedit.core.query import Atom, Query
from cfedit.errors import QueryError
from cfedit.rng import seeded

__all__ = ["NeuralBounds", "NeuralBoundsConfig", "neural_bounds"]

_MAX_ASSIGNMENTS = 200_000  # joint values of a query's cells that are enumerated


@dataclass(frozen=True, kw_only=True)
class NeuralBoundsConfig:
    latent: int = 32  # states of each C-component's shared exogenous U_C
    hidden: int = 32  # hidden units of each mechanism network
    steps: int = 1000  # full-batch Adam steps per direction
    lr: float = 0.03  # Adam learning rate
    warmup: float = 0.2  # share of the steps that only fit P(V) (lambda = 0) before the query pushes
    cooldown: float = 0.3  # share of the last steps that only fit P(V) again (removes the residual misfit)
    penalty_start: float = 0.5  # lambda at the first step after the warm-up
    penalty_end: float = 1e-3  # lambda at the last step
    logit_bound: float = 6.0  # logits are squashed into (-b, b): probabilities stay >= ~e^(-2b)
    offset_init: float = 2.0  # std of the initial per-(parents, U_C state) logit offsets
    latent_scale: float = 3.0  # scale of the one-hot U_C input (breaks the symmetry between its states)
    restarts: int = 1  # independent initialisations per direction (the most extreme fitting one wins)
    fit_tol: float = 0.02  # total variation to P(V) under which a model counts as fitting
    seed: int = 0  # initialisation seed


@dataclass(frozen=True)
class NeuralBounds:
    """The interval of the two trained NCMs, with how well each reproduces P(V)."""

    lower: float
    upper: float
    fit_tv: tuple[float, float]  # total variation between P^M(V) and P(V), min and max model
    seconds: float


def neural_bounds(
    query: Query | Contrast | str,
    graph: CausalGraph,
    domains: Domains,
    p_v: np.ndarray,
    config: NeuralBoundsConfig = NeuralBoundsConfig(),
) -> NeuralBounds:
    """Bounds of ``query`` from two NCMs fitted to P(V) while minimising / maximising it.

    Approximate (the NCMs' fit and the optimiser's reach), for diagrams too large for
    :func:`~cfedit.bounds.optimal.optimal_bounds`; needs torch.

    Args:
        query: as for :func:`~cfedit.bounds.optimal.optimal_bounds`.
        graph: the causal diagram G.
        domains: the factors' values.
        p_v: the observational table P(V).
        config: the NCMs' size and the optimisation (:class:`NeuralBoundsConfig`).

    Returns:
        The :class:`NeuralBounds`: the lower and upper estimates and each fit's distance to P(V).

    Raises:
        QueryError: unknown factors or values, or evidence of probability zero.
    """
    t0 = time.perf_counter()
    ctx = Context(graph, domains, p_v)
    terms, given = events(query, ctx)
    check_evidence(ctx, given)
    plan = _Plan(ctx, terms, given)
    results = []
    for sense in (1.0, -1.0):
        best = None
        for r in range(config.restarts):
            with seeded(config.seed + 1000 * r + (0 if sense > 0 else 1)):  # the caller's RNG untouched
                model = _NCM(ctx, config)
                value, tv = _train(model, plan, ctx, sense, config)
            # a model that fits P(V) beats one that does not; among those, the more extreme
            if best is None or (tv > config.fit_tol, sense * value) < (best[1] > config.fit_tol, sense * best[0]):
                best = (value, tv)
        results.append(best)
    (lo, tv_lo), (hi, tv_hi) = results
    return NeuralBounds(lo, max(lo, hi), (tv_lo, tv_hi), time.perf_counter() - t0)


class _NCM(nn.Module):
    """f_j(pa_j, u_C) -> logits of V_j, for every parent configuration and state of U_C at once."""

    def __init__(self, ctx: Context, config: NeuralBoundsConfig):
        super().__init__()
        self.comps = ctx.graph.c_components()
        self.comp_of = {j: i for i, c in enumerate(self.comps) for j in c}
        self.K = config.latent
        self.logit_bound = config.logit_bound
        self.u_logits = nn.Parameter(0.1 * torch.randn(len(self.comps), self.K, dtype=torch.float64))
        self.nets = nn.ModuleDict()
        self.offsets = nn.ParameterDict()
        self.inputs: dict[str, torch.Tensor] = {}
        for j in ctx.graph.nodes:
            pa = ctx.parents[j]
            configs = list(itertools.product(*(range(ctx.size[p]) for p in pa)))
            onehots = [np.eye(ctx.size[p])[[c[i] for c in configs]] for i, p in enumerate(pa)]
            x_pa = np.concatenate(onehots, axis=1) if onehots else np.zeros((1, 0))
            # rows: (configuration, u) pairs, configuration-major
            # U_C enters scaled so that its states start out distinct (they must specialise to reach
            # the extreme couplings; identical states receive identical gradients)
            x = np.concatenate([np.repeat(x_pa, self.K, axis=0),
                                config.latent_scale * np.tile(np.eye(self.K), (len(configs), 1))], axis=1)
            self.inputs[j] = torch.as_tensor(x, dtype=torch.float64)
            self.nets[j] = nn.Sequential(
                nn.Linear(x.shape[1], config.hidden), nn.Tanh(), nn.Linear(config.hidden, ctx.size[j])
            ).double()
            self.offsets[j] = nn.Parameter(config.offset_init * torch.randn(len(configs) * self.K, ctx.size[j],
                                                                            dtype=torch.float64))

    def raw(self) -> dict[str, torch.Tensor]:
        """The networks' logits f_j(pa, u) for every (parent configuration, state of U_C) row."""
        return {j: net(self.inputs[j]) + self.offsets[j] for j, net in self.nets.items()}

    def tables(self, raw: dict[str, torch.Tensor] | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """P(U_C = k) per component (C, K), and P(V_j = v | pa, u) as (configs, K, |V_j|) per factor."""
        raw = self.raw() if raw is None else raw
        pu = torch.softmax(self.u_logits, dim=1)
        L = self.logit_bound
        cond = {j: torch.softmax(L * torch.tanh(r / L), dim=1).reshape(-1, self.K, r.shape[1]) for j, r in raw.items()}
        return pu, cond

    def wall(self, raw: dict[str, torch.Tensor]) -> torch.Tensor:
        """A soft wall keeping raw logits where the squash still passes gradients (|raw| < 1.5 b):
        a saturated state gets no gradient from the fit and could never be repaired."""
        L = 1.5 * self.logit_bound
        return sum(torch.relu(r.abs() - L).pow(2).mean() for r in raw.values())


class _EventPlan:
    """The enumerated values of one event's cells (world, factor) and the index arrays to score them."""

    def __init__(self, ctx: Context, atoms: Sequence[Atom]):
        plans = world_plans(ctx, atoms)
        cells: list[tuple[int, str]] = []
        choices: list[tuple[int, ...]] = []
        for w, (x, pins, need) in enumerate(plans):
            for j in need:
                if j not in x:
                    cells.append((w, j))
                    choices.append((pins[j],) if j in pins else tuple(range(ctx.size[j])))
        n = int(np.prod([len(c) for c in choices], dtype=np.float64))
        if n > _MAX_ASSIGNMENTS:
            raise QueryError(f"the query's worlds have {n:.3g} joint values to enumerate (limit {_MAX_ASSIGNMENTS})")
        grid = np.array(list(itertools.product(*choices)), dtype=np.int64).reshape(n, len(cells))
        col = {cell: i for i, cell in enumerate(cells)}
        # per factor: for each world it is a cell in, (configuration index, value) per assignment
        self.by_factor: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {}
        for (w, j), i in col.items():
            x = plans[w][0]
            pa = {p: (x[p] if p in x else grid[:, col[(w, p)]]) for p in ctx.parents[j]}
            flat = np.zeros(n, dtype=np.int64) + ctx.flat(j, pa)
            self.by_factor.setdefault(j, []).append((torch.as_tensor(flat), torch.as_tensor(grid[:, i])))
        self.n = n

    def probability(self, model: _NCM, pu: torch.Tensor, cond: dict[str, torch.Tensor]) -> torch.Tensor:
        """P^M(event): sum over assignments of prod_C sum_u P(u) prod_{j in C} P(V_j's cells | u)."""
        per_comp = [torch.ones(self.n, model.K, dtype=torch.float64) for _ in model.comps]
        for j, worlds in self.by_factor.items():
            upper, lower = None, None
            for flat, val in worlds:
                cdf = torch.cumsum(cond[j][flat], dim=2)  # (n, K, |V_j|)
                hi = cdf.gather(2, val.view(-1, 1, 1).expand(-1, model.K, 1)).squeeze(2)
                lo = torch.where(val.view(-1, 1) > 0,
                                 cdf.gather(2, (val - 1).clamp(min=0).view(-1, 1, 1).expand(-1, model.K, 1)).squeeze(2),
                                 torch.zeros_like(hi))
                upper = hi if upper is None else torch.minimum(upper, hi)
                lower = lo if lower is None else torch.maximum(lower, lo)
            c = model.comp_of[j]
            per_comp[c] = per_comp[c] * torch.clamp(upper - lower, min=0.0)
        total = torch.ones(self.n, dtype=torch.float64)
        for c, f in enumerate(per_comp):
            total = total * (f * pu[c]).sum(dim=1)
        return total.sum()


class _Plan:
    """Everything the loss needs: P(V) cells, the numerator terms and the evidence."""

    def __init__(self, ctx: Context, terms: Terms, given: Sequence[Atom]):
        self.p = torch.as_tensor(ctx.p.reshape(-1), dtype=torch.float64)
        names = ctx.domains.names
        grid = np.indices(ctx.domains.shape).reshape(len(names), -1).T
        self.obs: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        columns = {n: grid[:, i] for i, n in enumerate(names)}
        for j in names:
            flat = np.zeros(len(grid), dtype=np.int64) + ctx.flat(j, columns)
            self.obs[j] = (torch.as_tensor(flat), torch.as_tensor(columns[j]))
        self.terms = [(a, _EventPlan(ctx, atoms)) for a, atoms in terms]
        self.given = _EventPlan(ctx, given) if given else None

    def observational(self, model: _NCM, pu: torch.Tensor, cond: dict[str, torch.Tensor]) -> torch.Tensor:
        """P^M(v) for every v (flattened in the order of the table)."""
        per_comp = [torch.ones(len(self.p), model.K, dtype=torch.float64) for _ in model.comps]
        for j, (flat, val) in self.obs.items():
            c = model.comp_of[j]
            per_comp[c] = per_comp[c] * cond[j][flat].gather(2, val.view(-1, 1, 1).expand(-1, model.K, 1)).squeeze(2)
        total = torch.ones(len(self.p), dtype=torch.float64)
        for c, f in enumerate(per_comp):
            total = total * (f * pu[c]).sum(dim=1)
        return total

    def query(self, model: _NCM, pu: torch.Tensor, cond: dict[str, torch.Tensor]) -> torch.Tensor:
        num = sum(a * ev.probability(model, pu, cond) for a, ev in self.terms)
        den = self.given.probability(model, pu, cond) if self.given is not None else 1.0
        return num / torch.clamp(torch.as_tensor(den, dtype=torch.float64), min=1e-12)


def _train(model: _NCM, plan: _Plan, ctx: Context, sense: float, config: NeuralBoundsConfig) -> tuple[float, float]:
    """Minimise KL(P || P^M) + sense * lambda_t * Q(M); returns Q and the TV of the fit at the end."""
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    support = plan.p > 0
    p = plan.p[support]
    ratio = config.penalty_end / config.penalty_start
    warm, cool = int(config.warmup * config.steps), int((1 - config.cooldown) * config.steps)
    for step in range(config.steps):
        if step < warm or step >= cool:
            lam = 0.0
        else:
            lam = config.penalty_start * ratio ** ((step - warm) / max(1, cool - warm - 1))
        raw = model.raw()
        pu, cond = model.tables(raw)
        pm = plan.observational(model, pu, cond)
        kl = (p * (torch.log(p) - torch.log(pm[support].clamp(min=1e-300)))).sum()
        loss = kl + sense * lam * plan.query(model, pu, cond) + model.wall(raw)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        pu, cond = model.tables()
        tv = 0.5 * float((plan.observational(model, pu, cond) - plan.p).abs().sum())
        return float(plan.query(model, pu, cond)), tv
