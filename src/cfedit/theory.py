"""The two impossibility results of Pan & Bareinboim (2024), made executable.

1. **Without a diagram** (:func:`diagram_witness`). From one world's P(V) we build ASCMs with different
   diagrams over (D, C) -- D -> C, C -> D and D <-> C, each with B <- {D, C} -- that reproduce P(V)
   exactly and share the world's image mechanism, so P(V, I) is identical. They disagree on the image
   counterfactual: under C -> D, do(C = x') changes the digit; under the other two it cannot.
2. **With the diagram** (:func:`handwriting_witness`). M' has f'_I(v, u) = f_I(v, tau_v(u)) with tau_v a
   v-dependent cyclic shift of the handwriting pool of each digit, which preserves the (uniform) law of the
   slot. P(V, I) is identical -- exactly, since each P(I | v) is uniform over the same finite pool -- but
   the counterfactual image gets other handwriting whenever tau_v and tau_{v'} differ.

Every SCM built here is exact: conditionals are encoded with the inverse-CDF (comonotone) coupling on an
exogenous variable whose values are the intervals between all the conditional CDFs' breakpoints.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from cfedit.core.graph import CausalGraph
from cfedit.core.query import parse_query
from cfedit.scm import ASCM, SCM, Exogenous, Units
from cfedit.worlds import MnistBars, World


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
    graph: CausalGraph
    scm: SCM
    kept: float  # P(D_{C=x'} = D | evidence): the probability that the edit keeps the digit


def diagram_witness(world: World, evidence: str = "C=red", action: str = "C=green") -> list[DiagramModel]:
    """Three SCMs over (D, C, B) with diagrams D -> C, C -> D, D <-> C that fit ``world``'s P(V) exactly."""
    dom = world.domains
    p = world.scm.observational()  # axes D, C, B
    p_dc = p.sum(axis=2)
    p_b = p / p.sum(axis=2, keepdims=True)  # P(B | D, C)
    nd, nc = p_dc.shape
    u_b, b_of = inverse_cdf("U_B", p_b.reshape(nd * nc, -1), ("B",))
    bar = lambda pa, u: b_of[pa["D"] * nc + pa["C"], u["U_B"]]  # noqa: E731
    models: list[tuple[str, list[Exogenous], dict]] = []

    u_d, d_of = inverse_cdf("U_D", p_dc.sum(axis=1), ("D",))
    u_c, c_of = inverse_cdf("U_C", p_dc / p_dc.sum(axis=1, keepdims=True), ("C",))
    models.append(("D -> C; D -> B; C -> B", [u_d, u_c, u_b],
                   {"D": lambda pa, u: d_of[0, u["U_D"]], "C": lambda pa, u: c_of[pa["D"], u["U_C"]], "B": bar}))

    u_c2, c2_of = inverse_cdf("U_C", p_dc.sum(axis=0), ("C",))
    u_d2, d2_of = inverse_cdf("U_D", (p_dc / p_dc.sum(axis=0, keepdims=True)).T, ("D",))
    models.append(("C -> D; D -> B; C -> B", [u_c2, u_d2, u_b],
                   {"C": lambda pa, u: c2_of[0, u["U_C"]], "D": lambda pa, u: d2_of[pa["C"], u["U_D"]], "B": bar}))

    u_dc, dc_of = inverse_cdf("U_DC", p_dc.reshape(1, -1), ("D", "C"))
    models.append(("D <-> C; D -> B; C -> B", [u_dc, u_b],
                   {"D": lambda pa, u: dc_of[0, u["U_DC"]] // nc, "C": lambda pa, u: dc_of[0, u["U_DC"]] % nc, "B": bar}))

    ev = dom.parse_assignments(evidence)
    act = dom.format(dom.parse_assignments(action)).replace(" ", "")
    out = []
    for text, exo, mech in models:
        scm = SCM(CausalGraph.parse(text), dom, exo, mech)
        kept = sum(
            scm.probability(parse_query(f"P(D[{act}]={d} | D={d}, {dom.format(ev)})", dom)) * _p_d_given(p_dc, d, ev)
            for d in range(nd)
        )
        out.append(DiagramModel(scm.graph, scm, kept))
    return out


def _p_d_given(p_dc: np.ndarray, d: int, ev: Mapping[str, int]) -> float:
    col = p_dc[:, ev["C"]] if "C" in ev else p_dc.sum(axis=1)
    return float(col[d] / col.sum())


def posterior_units(scm: SCM, image: MnistBars, v: Mapping[str, int], u_image: float, n: int, seed: int) -> Units:
    """n exact posterior draws of u given V = v (by enumeration), with a fixed handwriting u_I."""
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
class ShiftedHandwriting:
    """f'_I(v, u) = f_I(v, tau_v(u)): tau_v shifts the slot of digit d cyclically by s(v) = 1 + 7 D + 3 C + 5 B."""

    image_shape = (3, 28, 28)

    def __init__(self, base: MnistBars):
        self.base = base

    def shift(self, v: Mapping[str, np.ndarray]) -> np.ndarray:
        return 1 + 7 * np.asarray(v["D"]) + 3 * np.asarray(v["C"]) + 5 * np.asarray(v["B"])

    def sample_u(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return self.base.sample_u(n, rng)

    def tau(self, v: Mapping[str, np.ndarray], u_image: np.ndarray) -> np.ndarray:
        """The shifted U_I: slot k of digit d becomes slot (k + s(v)) mod n_d; uniform stays uniform."""
        n_d = self.base.counts[np.asarray(v["D"])]
        k = np.minimum((np.asarray(u_image) * n_d).astype(np.int64), n_d - 1)
        frac = np.asarray(u_image) * n_d - k
        return ((k + self.shift(v)) % n_d + frac) / n_d

    def render(self, v: Mapping[str, np.ndarray], u_image: np.ndarray) -> np.ndarray:
        return self.base.render(v, self.tau(v, u_image))


@dataclass
class HandwritingWitness:
    factual: np.ndarray  # the factual images, the same under M and M'
    counterfactual_m: np.ndarray  # the counterfactual images under M
    counterfactual_m2: np.ndarray  # the counterfactual images under M'
    share_different: float  # share of units whose counterfactual images differ between M and M'
    share_different_changed: float  # the same share among units whose factors the action changes
    law_identical: bool  # P(I | v) identical under M and M' for every v (checked exactly over the pool)


def handwriting_witness(
    ascm: ASCM, do: Mapping[str, int], n: int = 2000, seed: int = 0, units: Units | None = None
) -> HandwritingWitness:
    """Impossibility 2 on ``ascm``: the same factual images, counterfactuals under M and M'.

    A factual image i = f_I(v, u) under M is produced under M' by u' = tau_v^{-1}(u); the counterfactual
    images f_I(v', u) and f_I(v', tau_{v'}(tau_v^{-1}(u))) are compared pixel by pixel.
    """
    base = ascm.image
    if not isinstance(base, MnistBars):
        raise TypeError("the handwriting witness needs a world whose image mechanism is MnistBars")
    m2 = ShiftedHandwriting(base)
    units = ascm.units(n, seed) if units is None else units
    n = len(units)
    factual = ascm.factual(units)
    v_cf, cf_m = ascm.counterfactual(units, do)
    # u' with tau_v(u') = u: shift back by s(v)
    n_d = base.counts[units.v["D"]]
    k = np.minimum((units.u_image * n_d).astype(np.int64), n_d - 1)
    frac = units.u_image * n_d - k
    u_prime = ((k - m2.shift(units.v)) % n_d + frac) / n_d
    assert np.array_equal(m2.render(units.v, u_prime), factual)
    cf_m2 = m2.render(v_cf, u_prime)
    differ = np.abs(cf_m - cf_m2).reshape(n, -1).max(axis=1) > 0
    changed = np.any([v_cf[k] != units.v[k] for k in units.v], axis=0)
    share_changed = float(differ[changed].mean()) if changed.any() else 0.0
    return HandwritingWitness(factual, cf_m, cf_m2, float(differ.mean()), share_changed, _same_law(base, m2))


def _same_law(base: MnistBars, m2: ShiftedHandwriting) -> bool:
    """P(I | v) under M and M': both are uniform over slot images; compare the slot multisets exactly."""
    for d in range(10):
        n_d = int(base.counts[d])
        centres = (np.arange(n_d) + 0.5) / n_d  # one u per slot, each of probability 1 / n_d
        for c in (0, 1):
            for b in (0, 1):
                v = {"D": np.full(n_d, d), "C": np.full(n_d, c), "B": np.full(n_d, b)}
                s1 = np.sort(base.slot(v["D"], centres))
                s2 = np.sort(base.slot(v["D"], m2.tau(v, centres)))
                if not np.array_equal(s1, s2):
                    return False
    return True
