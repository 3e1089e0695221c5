"""Neural causal model (NCM) over the factors V, respecting a causal diagram G.

Each factor V_i has one small network f_i whose inputs are its parents Pa(V_i) (one-hot) and the shared
exogenous inputs of the bidirected cliques it belongs to (one hidden cause per clique);
the network outputs the logits of a categorical law, and V_i's own exogenous input U_i ~ Uniform[0, 1)
picks the value by inverse CDF:

    V_i := F_i^{-1}(U_i | Pa(V_i), Z_{cliques(i)}),   F_i the CDF of softmax(f_i(pa, z)).

Two kinds of shared inputs (``NCMConfig.method``):

* ``"exact"`` (default): each Z_c is uniform on ``latent_size`` values. The likelihood
  P(v) = sum_z P(z) prod_i P(v_i | pa_i, z) is computed by enumerating z, so the fit is exact maximum
  likelihood and P(U | V = v) is sampled exactly (no rejection needed).
* ``"mc"``: Z_c ~ N(0, I) in ``mc_dim`` dimensions; the likelihood is a Monte Carlo average over
  ``mc_samples`` draws and the posterior is sampled by importance sampling with resampling.

A *continuous* factor (a :class:`~cfedit.core.domains.Continuous` domain) has a conditional location-scale
mechanism in a fixed invertible output transform g (``NCMConfig.continuous_transform``; "logit" by default,
g(v) = logit((v - lo) / (hi - lo)), deepscm's form of the Morpho-MNIST intensity):

    V_i := g^{-1}(mu_i(pa, z) + sigma_i(pa, z) N_i),   N_i ~ N(0, 1),

mu and sigma from the factor's network plus a linear term (so the linear-Gaussian model is in the family).
Its noise is abducted exactly, N_i = (g(v_i) - mu_i) / sigma_i, and the fit adds its log-density (with the
Jacobian of g) to the categorical log-likelihoods. Networks take a continuous parent as its position in
its interval on [-1, 1] (:meth:`Continuous.standardise`). A categorical factor with a continuous parent
has one own noise for every parent value (the "comonotone" coupling: its parent values cannot be listed).

Why "exact" is the default: it fits faster and closer to the data's P(V) than "mc" on the worlds, and its
posterior is exact where "mc"'s is approximate (``python benchmarks/eval_ancm.py --ncm-methods`` prints
both fits' time and total variation; docs: results/benchmarks.md).

Notation: ``z`` -> shared U of a bidirected clique, ``u`` -> U_{V_i} (own noise), ``do`` -> x'.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.distributions import transforms as T

from cfedit.core.config import check_choice, check_ranges
from cfedit.core.domains import Continuous, Domains
from cfedit.core.graph import CausalGraph
from cfedit.core.intervention import Intervention
from cfedit.core.query import Expectation
from cfedit.errors import DomainError, GraphError, QueryError
from cfedit.rng import seeded
from cfedit.scm import Estimate

Codes = Mapping[str, np.ndarray | torch.Tensor]
"""Integer codes per factor (floats for a continuous factor), one entry per unit."""

_MAX_COMBOS = 65_536  # enumeration cap for the "exact" method
MAX_HIDDEN = 8192  # hidden units of a mechanism network: 64M parameters each (65,536 would ask ~17 GB per factor)
_Z_SCALE = 4.0  # one-hot z is scaled up so that its values start far apart (breaks the symmetric saddle)
_MIN_SCALE = 1e-3  # the smallest sigma of a continuous mechanism (in the transformed space)
CONTINUOUS_TRANSFORMS = ("logit", "affine")


def output_transform(domain: Continuous, kind: str = "logit") -> T.Transform:
    """g^{-1}: the real line -> the factor's interval. ``"logit"``: v = lo + (hi - lo) sigmoid(y) (values stay in
    the interval); ``"affine"``: v = lo + (y + 1) (hi - lo) / 2, i.e. y is the standardised value (a Gaussian in v)."""
    if kind == "logit":
        return T.ComposeTransform([T.SigmoidTransform(), T.AffineTransform(domain.lo, domain.hi - domain.lo)])
    if kind == "affine":
        return T.AffineTransform((domain.lo + domain.hi) / 2, (domain.hi - domain.lo) / 2)
    raise DomainError(f"unknown output transform {kind!r}; transforms are {', '.join(CONTINUOUS_TRANSFORMS)}")


@dataclass(frozen=True, kw_only=True)
class NCMConfig:
    """Settings of the NCM over V and of its fit (``ANCMConfig.ncm``; the ``[ncm]`` table of a settings file)."""

    method: str = "exact"  # "exact" (discrete shared inputs, enumerated) or "mc" (gaussian, Monte Carlo)
    latent_size: int = 32  # values of each shared input (exact) ...
    mc_dim: int = 4  # ... or its dimension (mc)
    mc_samples: int = 256  # Monte Carlo draws per likelihood / posterior (mc)
    coupling: str = "independent"  # own noise per parent configuration ("independent") or one for all ("comonotone")
    hidden: int = 32  # hidden units of each mechanism network
    steps: int = 600  # full-batch Adam steps of the fit
    lr: float = 0.01  # Adam learning rate (0.05 collapses onto the independence saddle)
    seed: int = 0  # initialisation and sampling seed
    impossible_below: float = 1e-4  # evidence with model probability below this is refused (categorical factors only)
    continuous_transform: str = "logit"  # output transform g of continuous factors: "logit" or "affine" (output_transform)
    batch_rows: int = 65_536  # label rows per fit step; with more distinct rows, each step draws this many

    def __post_init__(self) -> None:
        check_choice(self, "method", ("exact", "mc"))
        check_choice(self, "coupling", ("independent", "comonotone"))
        check_choice(self, "continuous_transform", CONTINUOUS_TRANSFORMS)
        check_ranges(self, {"latent_size": (int, 1, 4096), "mc_dim": (int, 1, 4096), "mc_samples": (int, 1, 10**6),
                            "hidden": (int, 1, MAX_HIDDEN), "steps": (int, 1, 10**7), "lr": (float, 1e-9, 10),
                            "seed": (int, 0, 2**31 - 1), "impossible_below": (float, 0, 1), "batch_rows": (int, 1, 10**8)})


@dataclass
class Exogenous:
    """A batch of exogenous inputs of the NCM: shared ``z`` per clique and own ``u`` per factor."""

    z: list[torch.Tensor]  # per clique: long (N,) for "exact", float (N, mc_dim) for "mc"
    u: dict[str, torch.Tensor]  # per factor: float (N, configs) in [0, 1), one column per parent configuration;
    # a continuous factor's N ~ N(0, 1), (N, 1)

    def __len__(self) -> int:
        return len(next(iter(self.u.values())))


@dataclass(frozen=True)
class FitReport:
    """How well the NCM's P(V) matches the data's: total variation (nan with continuous factors, whose
    empirical law has no mass function to compare), NLL (a density's where factors are continuous), steps and seconds."""

    tv: float
    nll: float
    steps: int
    seconds: float


class NCM(nn.Module):
    """An NCM in Omega(G): one network per factor; shared inputs per bidirected clique; own inputs."""

    def __init__(self, graph: CausalGraph, domains: Domains, config: NCMConfig = NCMConfig()):
        super().__init__()
        if set(graph.nodes) != set(domains.names):
            raise GraphError(f"the graph has factors {sorted(graph.nodes)} but the data has {sorted(domains.names)}")
        self.graph, self.domains, self.config = graph, domains, config
        self.order = graph.topological_order()
        self.cliques = graph.bidirected_cliques()
        self.reads = {v: [k for k, c in enumerate(self.cliques) if v in c] for v in graph.nodes}
        zdim = config.latent_size if config.method == "exact" else config.mc_dim
        if config.method == "exact" and config.latent_size ** len(self.cliques) > _MAX_COMBOS:
            raise GraphError(f"{len(self.cliques)} bidirected cliques x {config.latent_size} values are too many to "
                             "enumerate; lower latent_size or use method='mc'")
        g = torch.Generator().manual_seed(config.seed)
        width = {v: sum(self._width(p) for p in graph.parents(v)) + zdim * len(self.reads[v]) + 1 for v in self.order}
        with seeded(int(torch.randint(0, 2**31, (1,), generator=g, device="cpu"))):
            self.mechanisms = nn.ModuleDict({
                v: nn.Sequential(
                    nn.Linear(width[v], config.hidden),
                    nn.ReLU(),
                    nn.Linear(config.hidden, config.hidden),
                    nn.ReLU(),
                    nn.Linear(config.hidden, 2 if domains.is_continuous(v) else domains.size(v)),
                )
                for v in self.order
            })
            # continuous factors: a linear term beside the network, so that mu and log sigma can be exactly linear
            self.linear = nn.ModuleDict({v: nn.Linear(width[v], 2) for v in self.order if domains.is_continuous(v)})
            # uniform prior of each discrete shared input (a learned one collapsed onto few values)
            self.register_buffer("prior_logits", torch.zeros(len(self.cliques), config.latent_size))
        self.report: FitReport | None = None
        # per-model facts the per-request code reads many times, derived once (graph, domains and config are fixed)
        self._parents = {v: tuple(graph.parents(v)) for v in self.order}
        self._is_continuous = {v: domains.is_continuous(v) for v in domains.names}
        self._configs = {v: self._count_configs(v) for v in self.order}
        self._support_memo: tuple[tuple, tuple[list[torch.Tensor], torch.Tensor]] | None = None

    # ------------------------------------------------------------------ mechanisms
    @property
    def device(self) -> torch.device:
        return self.prior_logits.device

    def _width(self, name: str) -> int:
        """Inputs a parent gives a network: its one-hot code, or one standardised number if continuous."""
        return 1 if self.domains.is_continuous(name) else self.domains.size(name)

    def transform(self, name: str) -> T.Transform:
        """g^{-1} of continuous factor ``name`` (:func:`output_transform`)."""
        return output_transform(self.domains.continuous(name), self.config.continuous_transform)

    def _zfeat(self, z: torch.Tensor) -> torch.Tensor:
        if self.config.method == "exact":
            return nn.functional.one_hot(z.long(), self.config.latent_size).float() * _Z_SCALE
        return z.float()

    def _parent_feature(self, p: str, value: torch.Tensor) -> torch.Tensor:
        if self._is_continuous[p]:
            return self.domains.continuous(p).standardise(value.float())[:, None]
        return nn.functional.one_hot(value.long(), self.domains.size(p)).float()

    def mechanism(self, name: str, parents: Mapping[str, torch.Tensor], z: list[torch.Tensor],
                  n: int) -> torch.distributions.Distribution:
        """P(V_name | Pa = parents, Z = z) for n units: a ``Categorical``, or for a continuous factor the
        ``TransformedDistribution`` of N(mu, sigma) by g^{-1} (its ``base_dist`` holds mu and sigma)."""
        out = self._network(name, parents, z, n)
        if not self._is_continuous[name]:
            return torch.distributions.Categorical(logits=out)
        loc, raw = out.unbind(1)
        base = torch.distributions.Normal(loc, F.softplus(raw) + _MIN_SCALE, validate_args=False)
        return torch.distributions.TransformedDistribution(base, [self.transform(name)], validate_args=False)

    def _network(self, name: str, parents: Mapping[str, torch.Tensor], z: list[torch.Tensor], n: int) -> torch.Tensor:
        """The raw output of V_name's network for n units: a categorical factor's logits, a continuous one's
        (mu, raw sigma) pair with its linear term added (what :meth:`mechanism` wraps in a distribution)."""
        feats = [self._parent_feature(p, parents[p]) for p in self._parents[name]]
        feats += [self._zfeat(z[k]) for k in self.reads[name]]
        feats.append(torch.ones(n, 1, device=self.device))  # a bias input keeps root nodes well defined
        x = torch.cat(feats, dim=1)
        out = self.mechanisms[name](x)
        return out + self.linear[name](x) if self._is_continuous[name] else out

    def _categorical(self, name: str, parents: Mapping[str, torch.Tensor], z: list[torch.Tensor], n: int) -> torch.Tensor:
        """The normalised log-probabilities of categorical V_name, (n, values): the ``logits`` of :meth:`mechanism`'s
        ``Categorical``, computed by the same operations without building (and checking) a distribution object."""
        out = self._network(name, parents, z, n)
        return out - out.logsumexp(dim=-1, keepdim=True)

    def _inside(self, name: str, v: torch.Tensor) -> torch.Tensor:
        """A continuous value moved off its interval's ends by a hair, so that g(v) is finite."""
        c = self.domains.continuous(name)
        eps = 1e-5 * (c.hi - c.lo)
        return v.float().clamp(c.lo + eps, c.hi - eps)

    def configs(self, name: str) -> int:
        """Columns of U_name: one per parent configuration ("independent"), or one ("comonotone"; also a
        continuous factor, and a factor with a continuous parent)."""
        return self._configs[name] if name in self._configs else self._count_configs(self.domains.check(name))

    def _count_configs(self, name: str) -> int:
        pa = self.graph.parents(name)
        if self.config.coupling == "comonotone" or self.domains.is_continuous(name) or any(map(self.domains.is_continuous, pa)):
            return 1
        return self.domains.n_configs(pa)

    def _config_index(self, name: str, parents: Mapping[str, torch.Tensor], n: int) -> torch.Tensor:
        idx = torch.zeros(n, dtype=torch.long, device=self.device)
        if self._configs[name] == 1:
            return idx
        return idx + self.domains.config_index(self._parents[name], parents)

    def _codes(self, v: Codes, n: int | None = None) -> dict[str, torch.Tensor]:
        out = {}
        for k in self.domains.names:
            if k not in v:
                raise DomainError(f"the evidence lacks factor {k!r}; give all of {', '.join(self.domains.names)}")
            t = torch.as_tensor(np.asarray(v[k]) if not isinstance(v[k], torch.Tensor) else v[k], device=self.device).reshape(-1)
            if self.domains.is_continuous(k):
                c = self.domains.continuous(k)
                t = t.float()
                if len(t) and not bool(((t >= c.lo) & (t <= c.hi)).all()):
                    raise DomainError(f"values of {k} outside its range [{c.lo:g}, {c.hi:g}]")
            else:
                t = t.long()
                if len(t) and (t.min() < 0 or t.max() >= self.domains.size(k)):
                    raise DomainError(f"codes of {k} outside 0..{self.domains.size(k) - 1}")
            out[k] = t
        for k in v:
            self.domains.check(k)
        return out

    # ------------------------------------------------------------------ shared-input support
    def _support(self, m: int | None = None, generator: torch.Generator | None = None) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Points z_1..z_M of the shared inputs and their log weights log P(z_m)."""
        if not self.cliques:
            return [], torch.zeros(1, device=self.device)
        if self.config.method == "exact":
            # a function of the (fixed) prior alone: computed once per state of prior_logits, not per call
            key = (self.prior_logits._version, self.prior_logits.data_ptr(), self.prior_logits.device)
            if self._support_memo is None or self._support_memo[0] != key:
                self._support_memo = key, self._enumerated_support()
            return self._support_memo[1]
        m = m or self.config.mc_samples
        z = [torch.randn(m, self.config.mc_dim, generator=generator, device="cpu").to(self.device) for _ in self.cliques]
        return z, torch.full((m,), -math.log(m), device=self.device)

    @torch.no_grad()
    def _enumerated_support(self) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Every joint value of the discrete shared inputs ("exact") and its log prior weight."""
        k = self.config.latent_size
        grid = torch.tensor(list(itertools.product(range(k), repeat=len(self.cliques))), device=self.device)
        logp = torch.log_softmax(self.prior_logits, dim=1)
        lw = sum(logp[c, grid[:, c]] for c in range(len(self.cliques)))
        return [grid[:, c] for c in range(len(self.cliques))], lw

    def _joint_loglik(self, v: dict[str, torch.Tensor], z: list[torch.Tensor], lw: torch.Tensor) -> torch.Tensor:
        """log P(z_m) + log P(v_r | z_m), shape (R, M)."""
        r, m = len(next(iter(v.values()))), len(lw)
        zz = [t.repeat_interleave(r, dim=0) if t.dim() == 1 else t.repeat_interleave(r, dim=0) for t in z]
        vv = {k: t.repeat(m) for k, t in v.items()}
        ll = torch.zeros(m * r, device=self.device)
        for name in self.order:
            pa = {p: vv[p] for p in self._parents[name]}
            if self._is_continuous[name]:
                ll = ll + self.mechanism(name, pa, zz, m * r).log_prob(self._inside(name, vv[name]))
            else:  # Categorical(logits).log_prob(v), by the same operations
                ll = ll + self._categorical(name, pa, zz, m * r).gather(1, vv[name].long()[:, None]).squeeze(1)
        return ll.reshape(m, r).T + lw[None, :]

    def log_prob(self, v: Codes, generator: torch.Generator | None = None) -> torch.Tensor:
        """log P(V = v) under the model, per row (exact, or a Monte Carlo estimate for "mc")."""
        vv = self._codes(v)
        z, lw = self._support(generator=generator)
        return torch.logsumexp(self._joint_loglik(vv, z, lw), dim=1)

    def fit_activation_bytes(self, rows: int) -> int:
        """A rough figure for the activations one step of :meth:`fit` keeps for its gradient: every factor's
        network runs on each of ``rows`` distinct label rows times each point of the shared inputs (all
        ``latent_size ** cliques`` of them for "exact", ``mc_samples`` for "mc"), 4 bytes a number."""
        points = (self.config.latent_size ** len(self.cliques) if self.config.method == "exact" else self.config.mc_samples) \
            if self.cliques else 1
        per_pair = sum(net[0].in_features + 4 * self.config.hidden + 2 * net[-1].out_features for net in self.mechanisms.values())
        return 4 * int(rows) * points * per_pair

    # ------------------------------------------------------------------ fit
    def fit(self, v: Codes, weights: np.ndarray | None = None, log: Callable[[str], None] | None = None) -> FitReport:
        """Maximum likelihood on the labels (full batch over distinct rows weighted by counts).

        ``weights`` (one non-negative number per label row) make it weighted maximum likelihood: the
        labels may then be the cells of a table, weighted by their probability. ``log`` gets four
        progress lines. With more distinct rows than ``batch_rows`` (continuous labels are all distinct), each
        step fits a draw of ``batch_rows`` rows, with probability proportional to their weight.
        """
        rows, counts = distinct_rows(self.domains, v, weights)
        w = torch.as_tensor(counts / counts.sum(), dtype=torch.float32, device=self.device)
        codes = self._codes(rows)
        opt = torch.optim.Adam(self.parameters(), lr=self.config.lr)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, self.config.steps)
        g = torch.Generator().manual_seed(self.config.seed)
        batch = len(w) > self.config.batch_rows
        t0 = time.time()
        for step in range(self.config.steps):
            if batch:
                idx = torch.multinomial(w.cpu(), self.config.batch_rows, replacement=True, generator=g).to(self.device)
                loss = -self.log_prob({k: t[idx] for k, t in codes.items()}, generator=g).mean()
            else:
                loss = -(w * self.log_prob(codes, generator=g)).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            if log is not None and (step + 1) % max(1, self.config.steps // 4) == 0:
                spent = time.time() - t0
                log(f"  ncm step {step + 1}/{self.config.steps}  nll {loss.item():.4f}  {spent:.0f}s elapsed, "
                    f"~{spent / (step + 1) * (self.config.steps - step - 1):.0f}s left")
        self.report = FitReport(self.tv(v, weights), float(loss.item()), self.config.steps, time.time() - t0)
        return self.report

    @torch.no_grad()
    def tv(self, v: Codes, weights: np.ndarray | None = None) -> float:
        """Total variation distance between the model's P(V) and the empirical law of the labels ``v``
        (weighted by ``weights`` when given).

        Exact without enumerating V: outside the observed rows the data has mass 0, so those cells add
        (1 - model mass on the observed rows) / 2. Not a number (nan) where a factor is continuous.
        """
        if self.domains.continuous_names:
            return float("nan")
        rows, counts = distinct_rows(self.domains, v, weights)
        p_data = counts / counts.sum()
        codes = self._codes(rows)
        g = torch.Generator().manual_seed(self.config.seed + 1)
        p_model = torch.exp(self.log_prob(codes, generator=g)).cpu().double().numpy()
        return float(0.5 * (np.abs(p_model - p_data).sum() + max(0.0, 1.0 - p_model.sum())))

    @torch.no_grad()
    def table(self) -> np.ndarray:
        """The model's P(V) as a table, axes in ``domains.names`` order (small domains only)."""
        grid = np.indices(self.domains.shape).reshape(len(self.domains.shape), -1)
        codes = {k: grid[i] for i, k in enumerate(self.domains.names)}
        g = torch.Generator().manual_seed(self.config.seed + 1)
        return torch.exp(self.log_prob(codes, generator=g)).cpu().double().numpy().reshape(self.domains.shape)

    # ------------------------------------------------------------------ sampling and counterfactuals
    def sample_exogenous(self, n: int, generator: torch.Generator | None = None) -> Exogenous:
        """n draws of U from its prior."""
        z = []
        for c in range(len(self.cliques)):
            if self.config.method == "exact":
                z.append(torch.multinomial(torch.softmax(self.prior_logits[c], 0).cpu(), n, True, generator=generator).to(self.device))
            else:
                z.append(torch.randn(n, self.config.mc_dim, generator=generator).to(self.device))
        u = {k: (torch.randn if self.domains.is_continuous(k) else torch.rand)(n, self.configs(k), generator=generator).to(self.device)
             for k in self.order}
        return Exogenous(z, u)

    @torch.no_grad()
    def evaluate(self, exo: Exogenous, do: Mapping[str, int] | None = None) -> dict[str, torch.Tensor]:
        """V_x(u): solve the mechanisms in topological order with X held at x (``do``, integer codes; a float
        for a continuous factor, whose values come back as float32)."""
        do = do if isinstance(do, Intervention) else Intervention.of(self.domains, do)  # checked once, where input enters
        n = len(exo)
        v: dict[str, torch.Tensor] = {}
        for name in self.order:
            continuous = self._is_continuous[name]
            if name in do:
                v[name] = torch.full((n,), do[name], dtype=torch.float32 if continuous else torch.long, device=self.device)
                continue
            pa = {p: v[p] for p in self._parents[name]}
            if continuous:
                d = self.mechanism(name, pa, exo.z, n)
                v[name] = self.transform(name)(d.base_dist.loc + d.base_dist.scale * exo.u[name][:, 0])
                continue
            probs = torch.softmax(self._categorical(name, pa, exo.z, n), dim=-1)  # Categorical(logits).probs
            u = exo.u[name].gather(1, self._config_index(name, pa, n)[:, None])
            v[name] = torch.clamp((torch.cumsum(probs, dim=1) <= u).sum(dim=1), max=probs.shape[1] - 1)
        return {k: v[k] for k in self.domains.names}

    @torch.no_grad()
    def evaluate_each(self, exo: Exogenous, dos: list[Intervention], rows: list[int]) -> dict[str, torch.Tensor]:
        """:meth:`evaluate` of consecutive groups of rows at once, group i (``rows[i]`` rows) under its own
        intervention ``dos[i]``: each row's values are those ``evaluate`` gives it under its group's action."""
        n = len(exo)
        if sum(rows) != n or len(rows) != len(dos):
            raise QueryError(f"evaluate_each: groups of {sum(rows)} rows in all for {n} exogenous rows")
        counts = torch.tensor(rows, device=self.device)
        v: dict[str, torch.Tensor] = {}
        for name in self.order:
            continuous = self._is_continuous[name]
            dtype = torch.float32 if continuous else torch.long
            if all(name in do for do in dos):
                v[name] = torch.tensor([do[name] for do in dos], dtype=dtype, device=self.device).repeat_interleave(counts)
                continue
            pa = {p: v[p] for p in self._parents[name]}
            if continuous:
                d = self.mechanism(name, pa, exo.z, n)
                value = self.transform(name)(d.base_dist.loc + d.base_dist.scale * exo.u[name][:, 0])
            else:
                probs = torch.softmax(self._categorical(name, pa, exo.z, n), dim=-1)
                u = exo.u[name].gather(1, self._config_index(name, pa, n)[:, None])
                value = torch.clamp((torch.cumsum(probs, dim=1) <= u).sum(dim=1), max=probs.shape[1] - 1)
            if any(name in do for do in dos):
                held = torch.tensor([name in do for do in dos], device=self.device).repeat_interleave(counts)
                fixed = torch.tensor([do.get(name, 0) for do in dos], dtype=dtype, device=self.device).repeat_interleave(counts)
                value = torch.where(held, fixed, value)
            v[name] = value
        return {k: v[k] for k in self.domains.names}

    def sample(self, n: int, do: Mapping[str, int] | None = None, seed: int = 0) -> dict[str, np.ndarray]:
        """n units of V (or V_x under ``do``), as numpy codes (floats for continuous factors)."""
        g = torch.Generator().manual_seed(seed)
        return {k: t.cpu().numpy() for k, t in self.evaluate(self.sample_exogenous(n, g), do).items()}

    @torch.no_grad()
    def posterior(self, v: Codes, n_samples: int, generator: torch.Generator | None = None) -> Exogenous:
        """Abduction: ``n_samples`` draws of U ~ P(U | V = v) for each row of ``v`` (row-major, N * n_samples).

        Shared inputs: exact posterior over the enumerated z ("exact") or importance resampling from the
        prior ("mc"). Own inputs: uniform on the CDF interval that yields the observed v_i; a continuous
        factor's N_i = (g(v_i) - mu_i) / sigma_i exactly. Raises :class:`QueryError` when some evidence row
        has model probability below ``impossible_below`` (with continuous factors, whose evidence has a
        density and no probability: when its density is zero).
        """
        vv = self._codes(v)
        return self._posterior(vv, [(len(next(iter(vv.values()))), n_samples, generator)])

    @torch.no_grad()
    def posterior_each(self, v: Codes, n_samples: list[int], generators: list[torch.Generator]) -> Exogenous:
        """:meth:`posterior` of several requests at once: row i of ``v`` gets ``n_samples[i]`` draws from its own
        ``generators[i]``, drawn in the order and shapes its lone ``posterior(v_i, n_samples[i], generators[i])``
        draws them; rows come back request by request ("exact" method only: "mc"'s support is itself a draw)."""
        vv = self._codes(v)
        if self.config.method != "exact" and self.cliques:
            raise QueryError("posterior_each needs the 'exact' method: the 'mc' support is drawn from the generator")
        if len(n_samples) != len(next(iter(vv.values()))) or len(generators) != len(n_samples):
            raise QueryError(f"posterior_each: {len(n_samples)} sample counts and {len(generators)} generators for "
                             f"{len(next(iter(vv.values())))} rows")
        return self._posterior(vv, [(1, int(n), g) for n, g in zip(n_samples, generators)])

    def _posterior(self, vv: dict[str, torch.Tensor], groups: list[tuple[int, int, torch.Generator | None]]) -> Exogenous:
        """The abduction of :meth:`posterior` for consecutive groups of rows (rows, draws per row, generator),
        each drawing from its generator in the order a lone call would."""
        r = len(next(iter(vv.values())))
        z, lw = self._support(generator=groups[0][2])
        continuous = bool(self.domains.continuous_names)
        rows, inverse = torch.unique(torch.stack([vv[k].double() for k in self.domains.names], 1), dim=0, return_inverse=True)
        distinct = {k: rows[:, i].to(vv[k].dtype) for i, k in enumerate(self.domains.names)}
        joint = self._joint_loglik(distinct, z, lw)[inverse]  # (R, M), computed once per distinct row
        logp = torch.logsumexp(joint, dim=1)
        bad = torch.nonzero(~torch.isfinite(logp) if continuous else logp < math.log(self.config.impossible_below)).flatten()
        if len(bad):
            i = int(bad[0])
            ev = self.domains.format({k: (float(t[i]) if self.domains.is_continuous(k) else int(t[i])) for k, t in vv.items()})
            what = "has density zero" if continuous else f"is impossible under the model (P = {math.exp(float(logp[i])):.2g})"
            raise QueryError(f"the evidence {ev} {what}; {len(bad)} of {r} rows are")
        post = torch.softmax(joint, dim=1).cpu()
        starts = np.cumsum([0] + [size for size, _, _ in groups])
        idx = _cat([torch.multinomial(post[a:a + size], n, replacement=True, generator=g).reshape(-1)
                    for a, (size, n, g) in zip(starts, groups)]).to(self.device)
        zs = [t[idx] for t in z]
        if len(groups) == 1:
            rep = {k: t.repeat_interleave(groups[0][1]) for k, t in vv.items()}
        else:
            repeats = torch.tensor([n for size, n, _ in groups for _ in range(size)], device=self.device)
            rep = {k: t.repeat_interleave(repeats) for k, t in vv.items()}

        def rand(*shape: int) -> torch.Tensor:  # each group's uniforms from its own generator, groups in order
            return _cat([torch.rand(size * n, *shape, generator=g) for size, n, g in groups]).to(self.device)

        u = {}
        for name in self.order:
            pa = {p: rep[p] for p in self._parents[name]}
            if self._is_continuous[name]:
                d = self.mechanism(name, pa, zs, len(rep[name]))
                y = self.transform(name).inv(self._inside(name, rep[name]))
                u[name] = ((y - d.base_dist.loc) / d.base_dist.scale)[:, None]
                continue
            probs = torch.softmax(self._categorical(name, pa, zs, len(rep[name])), dim=-1)  # Categorical(logits).probs
            cdf = torch.cumsum(probs, dim=1)
            hi = cdf.gather(1, rep[name][:, None]).squeeze(1)
            lo = hi - probs.gather(1, rep[name][:, None]).squeeze(1)
            e = rand()
            # the column of the observed parent configuration is pinned to the interval that yields v;
            # the others (what V would do under other parents) keep their prior, independently
            cols = rand(self._configs[name])
            obs = torch.clamp(lo + e * (hi - lo), max=torch.nextafter(hi, lo))
            u[name] = cols.scatter(1, self._config_index(name, pa, len(lo))[:, None], obs[:, None])
        return Exogenous(zs, u)

    def counterfactual(self, v: Codes, do: Mapping[str, int], n_samples: int, seed: int = 0) -> dict[str, np.ndarray]:
        """Samples of V_{x'} | V = v: abduct, act, predict. Arrays of shape (N, n_samples)."""
        g = torch.Generator().manual_seed(seed)
        exo = self.posterior(v, n_samples, g)  # abduct
        out = self.evaluate(exo, do)  # act + predict
        return {k: t.reshape(-1, n_samples).cpu().numpy() for k, t in out.items()}

    def expectation(self, query: Expectation, n_samples: int = 1000, seed: int = 0) -> Estimate:
        """E[W_{x'} | V = v] of a continuous factor W: the mean of ``n_samples`` counterfactual draws, with its
        Monte Carlo standard error.

        The evidence must give every factor's factual value (an edited image's factors). Where W's
        counterfactual depends on no noise that the evidence leaves uncertain, every draw agrees and the
        answer is a point (``stderr`` 0): the case of a Markovian W whose ancestors between X and W are all
        continuous. That point is *the* counterfactual under this model's assumption, a location-scale
        mechanism strictly increasing in its own noise (whose noise is then recovered exactly); it is
        identified from P(V) only under that assumption, not for every SCM compatible with the diagram.
        """
        self.domains.continuous(query.var)
        ev = {}
        for a in query.given:
            if a.op != "=" or a.do or a.var in ev:
                raise QueryError("the NCM's expectation needs factual evidence V=v on every factor, each once")
            ev[a.var] = np.array([a.value], dtype=np.float64 if self.domains.is_continuous(a.var) else np.int64)
        missing = [k for k in self.domains.names if k not in ev]
        if missing:
            raise QueryError(f"the NCM's expectation needs the value of every factor in the evidence; missing {', '.join(missing)}")
        draws = self.counterfactual(ev, dict(query.do), n_samples, seed)[query.var].reshape(-1).astype(np.float64)
        value = float(draws.mean())
        spread = float(draws.std(ddof=1)) if n_samples > 1 else 0.0
        se = spread / math.sqrt(n_samples) if spread > 1e-6 * max(1.0, abs(value)) else 0.0
        return Estimate(value, se, n_samples, float(n_samples))


def _cat(parts: list[torch.Tensor]) -> torch.Tensor:
    """torch.cat, skipped for one part (the lone request's path stays the operations it always was)."""
    return parts[0] if len(parts) == 1 else torch.cat(parts)


def distinct_rows(domains: Domains, v: Codes, weights: np.ndarray | None = None) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Distinct label rows (per factor) and their total weight (their counts when ``weights`` is None); rows of
    weight 0 dropped. Continuous labels are floats (and seldom repeat)."""
    for k in domains.names:
        if k not in v:
            raise DomainError(f"the labels lack factor {k!r}; give all of {', '.join(domains.names)}")
    dtype = {k: np.float64 if domains.is_continuous(k) else np.int64 for k in domains.names}
    cols = [np.asarray(v[k].cpu() if isinstance(v[k], torch.Tensor) else v[k], dtype=dtype[k]).reshape(-1) for k in domains.names]
    if not len(cols[0]):
        raise DomainError("no labels to fit")
    if any(len(c) != len(cols[0]) for c in cols):
        raise DomainError(f"the labels' columns differ in length: {', '.join(f'{k} {len(c)}' for k, c in zip(domains.names, cols))}")
    table, inverse = np.unique(np.stack(cols, axis=1).astype(np.float64), axis=0, return_inverse=True)
    rows = {k: table[:, i].astype(dtype[k]) for i, k in enumerate(domains.names)}
    if weights is None:
        w = np.ones(len(cols[0]))
    else:
        w = np.asarray(weights.detach().cpu() if isinstance(weights, torch.Tensor) else weights, dtype=np.float64)
        if w.shape != (len(cols[0]),):
            raise DomainError(f"weights of shape {w.shape} for {len(cols[0])} label rows; give one number per row")
        if not np.all(np.isfinite(w)) or (w < 0).any() or w.sum() <= 0:
            raise DomainError("weights must be finite, non-negative and not all zero")
    counts = np.bincount(inverse.reshape(-1), weights=w, minlength=len(table))
    keep = counts > 0
    return {k: r[keep] for k, r in rows.items()}, counts[keep]
