"""Witnesses: explicit SCMs over G that reproduce P(V) and attain the values of a query.

Each read C-component becomes one exogenous variable over its response types, drawn from the law that
attains the value (a lifted law glued into one: ``Component.joint``); every factor gets one more
exogenous that draws its dropped slots from the laws the reduction left them
(:mod:`cfedit.bounds.canonical`), so the SCM reproduces P(V).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from cfedit.bounds.canonical import Component
from cfedit.bounds.context import Context
from cfedit.core.graph import CausalGraph
from cfedit.scm import SCM, Exogenous

__all__ = ["Solution"]


@dataclass
class Solution:
    """The laws attaining the values of a query, from which witnesses are built."""

    ctx: Context
    touched: dict[str, set[int]]
    read: list[Component]  # the (virtual) components the query reads
    q_lower: list[np.ndarray]  # their laws in the models attaining ``Bounds.attained``
    q_upper: list[np.ndarray]

    def scm(self, qs: Sequence[np.ndarray]) -> SCM:
        """An SCM over G (components completed to cliques) realising the canonical model with laws
        ``qs`` on the read components and a feasible law on the others (built here, for witnesses)."""
        ctx = self.ctx
        built = list(zip(self.read, qs))
        covered = {j for c in self.read for j in c.members}
        for members in ctx.graph.c_components():
            if not set(members) & covered:
                c = Component(ctx, members, self.touched)
                built.append((c, c.q0))
        exo: list[Exogenous] = []
        bidirected = set(ctx.graph.bidirected)
        sources: dict[str, list[tuple[str, np.ndarray, np.ndarray]]] = {j: [] for j in ctx.graph.nodes}
        dropped: dict[str, tuple[Component, str | None, np.ndarray]] = {}
        for ci, (c, q) in enumerate(built):
            none = np.zeros((1, len(c.slots)), dtype=np.int64)  # a member with no kept slot reads no type
            if c.active:
                name = f"U_C{ci}"
                types, probs = c.joint(q)
                exo.append(Exogenous(name, tuple(probs), c.active))
                bidirected |= set(itertools.combinations(c.active, 2))
                for j in c.active:
                    sources[j].append((name, types, c.col_of[j]))
                    dropped.setdefault(j, (c, name, types))
            for j in c.members:  # a member with no kept slot here: its dropped laws are unconditional
                dropped.setdefault(j, (c, None, none))
        mech = {}
        for j in ctx.graph.nodes:
            c, u_comp, types = dropped[j]
            law_of, values, probs = _dropped_draws(ctx, j, c, types)
            exo.append(Exogenous(f"U_{j}", tuple(probs), (j,)))
            mech[j] = _Mechanism(ctx, j, sources[j], (u_comp, law_of, values, f"U_{j}"))
        graph = CausalGraph(ctx.graph.nodes, ctx.graph.directed, tuple(bidirected))
        return SCM(graph, ctx.domains, exo, mech)


def _dropped_draws(
    ctx: Context, j: str, c: Component, types: np.ndarray
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

    def __init__(self, ctx: Context, j: str, sources: list[tuple[str, np.ndarray, np.ndarray]],
                 dropped: tuple[str | None, np.ndarray, np.ndarray, str]):
        self.parents, self.domains = ctx.parents[j], ctx.domains
        self.sources = sources
        self.u_comp, self.law_of, self.values, self.u_own = dropped

    def __call__(self, pa: Mapping[str, np.ndarray], u: Mapping[str, np.ndarray]) -> np.ndarray:
        e = np.asarray(u[self.u_own])
        flat = np.zeros_like(e) + self.domains.config_index(self.parents, {p: np.asarray(pa[p]) for p in self.parents})
        t = np.asarray(u[self.u_comp]) if self.u_comp is not None else np.zeros_like(e)
        out = self.values[self.law_of[flat, t], e]
        for name, types, col in self.sources:
            c = col[flat]
            out = np.where(c >= 0, types[np.asarray(u[name]), np.maximum(c, 0)], out)
        return out
