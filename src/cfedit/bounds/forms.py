"""Events as polynomial forms in the laws of the C-components.

An event is enumerated as branches (:class:`Branches`): joint values of the variables it involves,
each requiring given slots to take given values, so P(event) = sum over branches of prod_C q_C(the
requirements on C's slots). :class:`Poly` holds such a sum as a multilinear form over the reduced
components (:mod:`cfedit.bounds.canonical`), and contracts the components whose law does not matter.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from cfedit.bounds.canonical import Component, Reads
from cfedit.bounds.context import Context
from cfedit.bounds.events import world_plans
from cfedit.core.query import Atom
from cfedit.errors import QueryError

__all__ = ["Branches", "Poly"]

_MAX_BRANCHES = 500_000  # joint values of a query's variables that are enumerated


class Branches:
    """The joint values of an event's variables, one row per branch, and the slots each branch reads.

    A variable is V_j in world do(x), identified with V_j in any world whose action agrees with x on
    An(V_j). A branch fixes every variable the event needs (pinned ones to their value); it requires, for
    each variable, the slot r_j(pa) at the parents' values in that branch to take the variable's value.
    So P(event) = sum over branches of prod_C q_C(the requirements on C's slots).
    """

    def __init__(self, ctx: Context, atoms: Sequence[Atom]):
        plans = world_plans(ctx, atoms)
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
                             "pin more factors, or use cfedit.bounds.neural")
        choices = [np.asarray(sorted(a), dtype=np.int64) for a in allowed]
        grid = (np.stack([ch[i] for ch, i in zip(choices, np.indices(sizes).reshape(len(sizes), -1))], axis=1)
                if sizes else np.zeros((1, 0), dtype=np.int64))
        self.n = len(grid)
        self.reads: Reads = []  # (factor, parent configuration, value) per branch
        seen: set[int] = set()
        for w, j, c in evals:
            if c in seen:  # the same variable evaluated in an equivalent world reads the same slot
                continue
            seen.add(c)
            x = plans[w][0]
            pa = {p: (x[p] if p in x else grid[:, cell(w, p)]) for p in ctx.parents[j]}
            self.reads.append((j, np.zeros(self.n, dtype=np.int64) + ctx.flat(j, pa), grid[:, c]))

    def touched(self, out: dict[str, set[int]]) -> None:
        for j, flat, _ in self.reads:
            out.setdefault(j, set()).update(np.unique(flat).tolist())


def _unique_rows(M: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct rows of M (numbered in order of first appearance) and each row's number; by hashing,
    not sorting (a lexicographic sort of 1,024 rows of 1,024 columns takes a third of a second)."""
    index: dict[bytes, int] = {}
    inv = np.fromiter((index.setdefault(row.tobytes(), len(index)) for row in M), dtype=np.int64, count=len(M))
    rep = np.zeros(len(index), dtype=np.int64)
    rep[inv] = np.arange(len(M))  # any row of a class represents it: they are equal
    return M[rep], inv


class Poly:
    """sum_t coef_t prod_v mu_v(event_{t,v}): a multilinear form in the laws of the virtual components.

    ``masks[v]`` holds the distinct events of component v (0/1 rows over the coordinates of its law) and
    ``idx[t, v]`` the row term t uses; a contracted component has ``masks[v] = None``. ``sure[v]`` is the
    row of the sure event (``Component.norm``; all ones unless the law is lifted).
    """

    def __init__(self, coef: np.ndarray, idx: np.ndarray, masks: list[np.ndarray | None],
                 sure: list[np.ndarray] | None = None):
        self.coef, self.idx, self.masks = coef, idx, masks
        self.sure = sure
        self._merge()

    @classmethod
    def of(cls, comps: Sequence[Component], terms: Sequence[tuple[float, Branches]]) -> Poly:
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
                    rows[v].append(c.event((int(cc), int(val)) for val, cc in zip(row[: len(reads)], row[len(reads):])
                                           if cc >= 0))
                idx[:, v] = offsets[v] + inv.reshape(-1)
                offsets[v] += len(uniq)
            coefs.append(np.full(br.n, a))
            idxs.append(idx)
        sure = [c.norm for c in comps]
        if not coefs:
            return cls(np.zeros(0), np.zeros((0, m), dtype=np.int64), [c.norm[None] for c in comps], sure)
        return cls(np.concatenate(coefs), np.concatenate(idxs),
                   [np.asarray(r) if r else c.norm[None] for r, c in zip(rows, comps)], sure)

    def _merge(self) -> None:
        """Sum the coefficients of terms with the same events; drop zero terms, terms with an impossible
        event (0 under every law: e.g. branches whose slot values contradict each other) and duplicate
        events."""
        self.__dict__.pop("_triv", None)
        possible = np.ones(len(self.coef), dtype=bool)
        for v, M in enumerate(self.masks):
            if M is not None and len(M) > 1:
                uniq, inv = _unique_rows(M)
                self.masks[v] = uniq
                self.idx[:, v] = inv[self.idx[:, v]]
            if M is not None:
                possible &= self.masks[v].any(axis=1)[self.idx[:, v]]
        self.coef, self.idx = self.coef[possible], self.idx[possible]
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
    def constant(cls, value: float, m: int) -> Poly:
        return cls(np.asarray([value], dtype=float), np.zeros((1, m), dtype=np.int64), [None] * m)

    def involved(self, t: int, free: Sequence[int]) -> list[int]:
        """The free components whose event in term t is not the sure event."""
        return [v for v in free if self.masks[v] is not None and not self._trivial(v)[self.idx[t, v]]]

    def _trivial(self, v: int) -> np.ndarray:
        cache = self.__dict__.setdefault("_triv", {})
        if v not in cache:
            cache[v] = (self.masks[v] == (1.0 if self.sure is None else self.sure[v])).all(axis=1)
        return cache[v]

    def by_cluster(self, clusters: Sequence[Sequence[int]], comps: Sequence[Component],
                   skip: Sequence[Sequence[int]] = ()) -> tuple[float, list[np.ndarray]]:
        """The form as a constant plus one dense tensor per cluster (each term lies in one cluster); the
        terms of the clusters in ``skip`` are left out."""
        free = [v for K in (*clusters, *skip) for v in K]
        const = 0.0
        dense = [np.zeros([comps[v].n for v in K]) for K in clusters]
        where = {v: i for i, K in enumerate(clusters) for v in K}
        for t in range(len(self.coef)):
            inv = self.involved(t, free)
            if not inv:
                const += self.coef[t]
                continue
            if inv[0] not in where:
                continue
            k = where[inv[0]]
            term = np.asarray(self.coef[t])
            for v in clusters[k]:
                M = self.masks[v]
                term = np.multiply.outer(term, comps[v].norm if M is None else M[self.idx[t, v]])
            dense[k] = dense[k] + term
        return const, dense

    def cluster_terms(self, K: Sequence[int], free: Sequence[int]) -> dict[tuple[bytes, ...], float]:
        """The terms that involve cluster K: coefficient per tuple of events (mask rows) of K's members.

        A member contracted in this form (free in the other) enters its terms as the sure event: its
        expectation is already in the coefficient."""
        out: dict[tuple[bytes, ...], float] = {}
        for t in range(len(self.coef)):
            inv = self.involved(t, free)
            if inv and inv[0] in K:
                key = tuple((self.sure[v] if self.masks[v] is None else self.masks[v][self.idx[t, v]]).tobytes()
                            for v in K)
                out[key] = out.get(key, 0.0) + self.coef[t]
        return out

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
