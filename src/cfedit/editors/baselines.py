"""Baselines: honest stand-ins for the families the paper compares against.

Every baseline shares the ANCM's image mechanism (abduction and generation) and labeller, so that only
the causal assumptions about the factors differ. Each is named for what it assumes:

* ``non-causal`` (CVAE-style): change the intervened factors only, keep every other factor;
* ``associational``: resample the other factors from P(V | x'), as correlations suggest;
* ``markovian`` (DEAR-style): every bidirected edge replaced by a directed edge (earlier -> later in the
  topological order), an NCM refitted on that graph to the ANCM's own P(V) (which matches the training
  labels), then the ANCM's abduct / act / predict;
* ``independent`` (CGN-style): factors edited independently, no downstream effect, and the image noise
  drawn afresh from the prior for each edit (independent mechanisms compose; nothing is abducted).

All are :class:`~cfedit.editors.base.Editor` s: the same edit loop as the ANCM, with the abduct / predict
steps swapped. The oracle lives in :mod:`cfedit.editors.oracle`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import torch

from cfedit.core.graph import CausalGraph
from cfedit.editors.ancm import ANCM
from cfedit.editors.base import Editor
from cfedit.ncm import NCM


def markovian_graph(graph: CausalGraph) -> CausalGraph:
    """G with each bidirected edge a <-> b replaced by a -> b, a earlier in the topological order."""
    rank = {n: i for i, n in enumerate(graph.topological_order())}
    extra = tuple(tuple(sorted(e, key=rank.__getitem__)) for e in graph.bidirected)
    return CausalGraph(graph.nodes, graph.directed + extra, ())


MAX_TABLE_CELLS = 100_000  # beyond this many joint values of V, the Markovian NCM fits to a sample of the ANCM's NCM


def markovian(ancm: ANCM, labels: Mapping[str, np.ndarray] | None = None) -> ANCM:
    """The DEAR-style baseline: the ANCM with its NCM refitted on :func:`markovian_graph`.

    Fitted to ``labels`` when given, else to the ANCM's NCM's P(V) (every joint value weighted by its
    probability; a 200,000-unit sample when V has more than ``MAX_TABLE_CELLS`` values or a continuous
    factor), so that a saved run needs no copy of its training labels.
    """
    graph = markovian_graph(ancm.graph)
    ncm = NCM(graph, ancm.domains, ancm.config.ncm).to(ancm.device)
    if labels is not None:
        ncm.fit(labels)
    elif not ancm.domains.continuous_names and int(np.prod(ancm.domains.shape)) <= MAX_TABLE_CELLS:
        table = ancm.fitted_p_v()
        cells = np.indices(table.shape).reshape(table.ndim, -1)
        ncm.fit({k: cells[i] for i, k in enumerate(ancm.domains.names)}, weights=table.reshape(-1))
    else:
        ncm.fit(ancm.ncm.sample(200_000, seed=ancm.config.seed))
    ncm.eval()
    m = ANCM.from_components(graph, ncm, ancm.image, ancm.labeller, ancm.config, ancm.fit_report)
    m.name = "markovian"
    m.keeps_non_descendants = False  # of the diagram: it keeps those of its own graph, where a <-> b is a -> b
    return m


class _SharedImageEditor(Editor):
    """The ANCM's image mechanism and labeller with the factor step (and optionally the image-noise step) swapped."""

    name = "baseline"

    def __init__(self, ancm: ANCM):
        self.ancm = ancm
        self.domains, self.image_shape, self.device = ancm.domains, ancm.image_shape, ancm.device

    def label(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.ancm.label(images)

    def abduct(self, images, v, n_samples, generator):
        rep = {k: t.repeat_interleave(n_samples) for k, t in v.items()}
        u_i = self.ancm.image.abduct(images, v).repeat_interleave(n_samples, dim=0)
        return (rep, torch.rand(len(u_i), generator=generator)), u_i

    def predict(self, state, u_i, do):
        v_cf = self.factors(*state, do)
        return v_cf, self.ancm.image.generate_distinct(v_cf, u_i)

    def factors(self, v: dict[str, torch.Tensor], uniforms: torch.Tensor, do: Mapping[str, int]) -> dict[str, torch.Tensor]:
        raise NotImplementedError


class NonCausal(_SharedImageEditor):
    """Change the intervened factors only; every other factor keeps its factual value."""

    name = "non-causal"
    keeps_non_descendants = True  # and its descendants too

    def factors(self, v, uniforms, do):
        """v': x' set, every other factor kept."""
        return {k: torch.full_like(t, do[k]) if k in do else t.clone() for k, t in v.items()}


class Independent(NonCausal):
    """As :class:`NonCausal` for the factors, with the image noise drawn from the prior (no abduction)."""

    name = "independent"

    def abduct(self, images, v, n_samples, generator):
        """u_I drawn from the prior instead of abducted."""
        (rep, uni), u_i = super().abduct(images, v, n_samples, generator)
        return (rep, uni), self.ancm.image.prior(len(u_i), generator)


class Associational(_SharedImageEditor):
    """Resample every factor but the intervened ones from P(V | X = x') (the NCM's fitted P(V)).

    Categorical factors only: read off the fitted table. With a continuous factor the law is a density and has no
    table; P(V | X = x') is then read from a pool of ``POOL`` units drawn from the fitted NCM: the units whose
    categorical intervened factors equal x' and, among them, the ``NEIGHBOURS`` nearest to x' on the continuous ones
    (distance relative to each factor's interval), one drawn uniformly per edit: a nearest-neighbour conditional.
    """

    name = "associational"
    POOL = 100_000
    NEIGHBOURS = 200

    def __init__(self, ancm: ANCM):
        super().__init__(ancm)
        if ancm.domains.continuous_names:
            self.table = None
            self.pool = ancm.ncm.sample(self.POOL, seed=ancm.config.seed)
        else:
            self.table = ancm.fitted_p_v()

    def factors(self, v, uniforms, do):
        """v': x' set, the other factors drawn from P(V | x')."""
        if self.table is None:
            return self._pool_factors(v, uniforms, do)
        names = self.domains.names
        t = self.table.copy()
        for k, x in do.items():
            axis = names.index(k)
            mask = np.zeros(t.shape[axis], dtype=bool)
            mask[x] = True
            t = t * mask.reshape([-1 if i == axis else 1 for i in range(t.ndim)])
        cdf = np.cumsum(t.ravel()) / t.sum()
        flat = np.minimum(np.searchsorted(cdf, uniforms.cpu().numpy(), side="right"), len(cdf) - 1)
        cells = np.unravel_index(flat, t.shape)
        return {k: torch.as_tensor(cells[i], dtype=torch.long, device=v[k].device) for i, k in enumerate(names)}

    def neighbours(self, do: Mapping[str, float]) -> np.ndarray:
        """Indices into the pool of the units that stand for P(V | x'), nearest first."""
        keep = np.ones(self.POOL, dtype=bool)
        dist = np.zeros(self.POOL)
        for k, x in do.items():
            if self.domains.is_continuous(k):
                c = self.domains.continuous(k)
                dist += np.abs(self.pool[k] - float(x)) / (c.hi - c.lo)
            else:
                keep &= self.pool[k] == int(x)
        idx = np.flatnonzero(keep)
        if not len(idx):  # x' has no mass in the fitted P(V): nothing to condition on, keep the marginal
            idx = np.arange(self.POOL)
        return idx[np.argsort(dist[idx], kind="stable")[: self.NEIGHBOURS]]

    def _pool_factors(self, v, uniforms, do):
        near = self.neighbours(do)
        pick = near[np.minimum((uniforms.cpu().numpy() * len(near)).astype(np.int64), len(near) - 1)]
        out = {}
        for k, t in v.items():
            if k in do:
                out[k] = torch.full_like(t, do[k])
            else:
                out[k] = torch.as_tensor(self.pool[k][pick], dtype=t.dtype, device=t.device)
        return out


BASELINES: dict[str, Callable[[ANCM], Editor]] = {
    "non-causal": NonCausal,
    "associational": Associational,
    "markovian": markovian,
    "independent": Independent,
}
"""Every baseline by name, each built from a fitted ANCM: the evaluation (``cfedit evaluate``) and the editor
conformance test read this registry, so that a baseline added here is evaluated and tested."""
