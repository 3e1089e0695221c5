"""The model context: G, the factor domains and the validated table P(V), with cached marginals.

Part of the package's internal API (with :mod:`cfedit.bounds.events`): what the exact programme and
the neural bounds (:mod:`cfedit.bounds.neural`) both start from.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from cfedit.core.domains import Domains
from cfedit.core.graph import CausalGraph
from cfedit.errors import DataError, GraphError

__all__ = ["Context"]


class Context:
    """G, the domains and the validated table P(V) (``p``, axes in ``domains.names`` order).

    Raises :class:`GraphError` when the domains and G name different factors, :class:`DataError` for a
    table of the wrong shape, with negative or non-finite entries, or not summing to one.
    """

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
        self.memo: dict | None = None  # when a dict: what the queries on this table share (reduced components)
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
        """The number of parent configurations of ``node``."""
        return self.domains.n_configs(self.parents[node])

    def flat(self, node: str, values: Mapping[str, object]):
        """Index of the parent configuration of ``node`` read from ``values`` (ints, or arrays of them)."""
        return self.domains.config_index(self.parents[node], values)

    def key_vars(self, members: Sequence[str]) -> tuple[str, ...]:
        """K_t for the last of ``members`` (a topologically ordered prefix of a C-component)."""
        last = members[-1]
        ks = set(members[:-1]).union(*(self.parents[m] for m in members)) - {last}
        return tuple(sorted(ks, key=self.rank.__getitem__))

    def pooled(self) -> np.ndarray:
        """prod_i P(v_i | K_i), K_i the key of V_i in its C-component (:mod:`cfedit.bounds`, constraints from
        P(V)): the table of the pooled conditionals that the bounds' constraints read (0 where a key has
        probability zero). It equals P(V) when some model over G produces P(V)."""
        names = self.domains.names
        comp = {m: c for c in self.graph.c_components() for m in c}
        out = np.ones(self.domains.shape)
        for v in self.graph.topological_order():
            prefix = sorted((m for m in comp[v] if self.rank[m] <= self.rank[v]), key=self.rank.__getitem__)
            keys = self.key_vars(prefix)
            joint = self.marginal((*keys, v))
            den = joint.sum(axis=-1, keepdims=True)
            cond = np.divide(joint, den, out=np.zeros_like(joint), where=den > 0)
            axes = (*keys, v)
            cond = np.transpose(cond, np.argsort([self.axis[a] for a in axes]))
            out = out * cond.reshape([self.domains.size(n) if n in axes else 1 for n in names])
        return out
