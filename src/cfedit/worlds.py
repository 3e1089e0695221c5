"""Ground-truth worlds: Colored MNIST with bars, as exact ASCMs.

Factors: D the digit (0-9), C the colour of the strokes (green, red), B a blue bar across the top three
rows (0, 1). The image is I := f_I(D, C, B, U_I): U_I ~ Uniform[0, 1) picks the real MNIST handwriting
sample number floor(U_I * n_D) of digit D in the writer pool, painted in colour C, with the bar drawn
when B = 1. The same U_I under a counterfactual keeps the "writer slot" and changes what V changes.

In both worlds "large" means D >= 5 and the bar probability is the table

    t(C, large)    small   large
    green           0.8     0.6
    red             0.5     0.2

so that large digits and red digits less often have a bar. Each mechanism is documented where it is
defined below, and the README repeats them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from cfedit.core.domains import Domains
from cfedit.errors import CfeditError
from cfedit.core.graph import CausalGraph
from cfedit.mnist import WriterPools, load_pools
from cfedit.scm import ASCM, SCM, Exogenous, Values

DOMAINS = Domains({"D": [str(d) for d in range(10)], "C": ["green", "red"], "B": ["0", "1"]})
GREEN, RED = 0, 1
BAR_ROWS = 3  # the bar covers rows 0-2 of the 28x28 image
BAR_TABLE = np.array([[0.8, 0.6], [0.5, 0.2]])  # t(C, large): P(B = 1 | C, large digit)
_GRID = 10  # bar noises are uniform on {0..9}; B = 1 iff noise < 10 * t


def _large(d: np.ndarray) -> np.ndarray:
    return (np.asarray(d) >= 5).astype(np.int64)


def _bar(c: np.ndarray, large: np.ndarray, noise_by_cell: Mapping[tuple[int, int], np.ndarray]) -> np.ndarray:
    """B := 1[N_{C,large} < 10 t(C, large)]: each (colour, size) cell reads its own uniform noise."""
    out = np.zeros(np.broadcast(c, large).shape, dtype=np.int64)
    for (ci, li), noise in noise_by_cell.items():
        cell = (c == ci) & (large == li)
        out = np.where(cell, (noise < round(_GRID * BAR_TABLE[ci, li])).astype(np.int64), out)
    return out


# ---------------------------------------------------------------------------------- Backdoor
def backdoor_scm() -> SCM:
    """Backdoor: D <-> C, D -> B, C -> B.

    U_DC = (S, D0): S ~ Bernoulli(0.5) a hidden style; D0 | S=1 is 5-9 w.p. 0.16 each, 0-4 w.p. 0.04 each; S=0 reversed
    U_C ~ Bernoulli(0.1), a flip
    U_B = (N_gs, N_gl, N_rs, N_rl), four independent Uniform{0..9} noises, one per (colour, size) cell
    D := D0
    C := red if S xor U_C else green
    B := 1[N_{C,large(D)} < 10 t(C, large(D))]
    """
    graph = CausalGraph.parse("D <-> C; D -> B; C -> B")
    p_dc = np.zeros(20)  # index s * 10 + d0
    for s in (0, 1):
        for d in range(10):
            p_dc[s * 10 + d] = 0.5 * (0.16 if (d >= 5) == bool(s) else 0.04)
    exo = [
        Exogenous("U_DC", tuple(p_dc), ("D", "C")),
        Exogenous.bernoulli("U_C", 0.1, ("C",)),
        *[Exogenous.uniform(f"U_B{c}{l}", _GRID, ("B",)) for c in (0, 1) for l in (0, 1)],
    ]
    mech = {
        "D": lambda pa, u: u["U_DC"] % 10,
        "C": lambda pa, u: (u["U_DC"] // 10) ^ u["U_C"],
        "B": lambda pa, u: _bar(pa["C"], _large(pa["D"]), {(c, l): u[f"U_B{c}{l}"] for c in (0, 1) for l in (0, 1)}),
    }
    return SCM(graph, DOMAINS, exo, mech)


# ---------------------------------------------------------------------------------- Frontdoor
def frontdoor_scm() -> SCM:
    """Frontdoor: D -> C -> B, D <-> B.

    U_D ~ Uniform{0..9}, shared by D and B (the hidden cause is the writer's digit itself)
    U_C = (N_s ~ Bernoulli(0.3), N_l ~ Bernoulli(0.8)), independent
    U_B = (N_g, N_r), two independent Uniform{0..9} noises, one per colour
    D := U_D
    C := red if N_{large(D)} = 1 else green
    B := 1[N_C < 10 t(C, large(U_D))]
    """
    graph = CausalGraph.parse("D -> C; C -> B; D <-> B")
    exo = [
        Exogenous.uniform("U_D", 10, ("D", "B")),
        Exogenous.bernoulli("U_Cs", 0.3, ("C",)),
        Exogenous.bernoulli("U_Cl", 0.8, ("C",)),
        Exogenous.uniform("U_Bg", _GRID, ("B",)),
        Exogenous.uniform("U_Br", _GRID, ("B",)),
    ]
    mech = {
        "D": lambda pa, u: u["U_D"],
        "C": lambda pa, u: np.where(_large(pa["D"]) == 1, u["U_Cl"], u["U_Cs"]),
        "B": lambda pa, u: _bar(
            pa["C"], _large(u["U_D"]), {(c, l): u["U_Bg" if c == GREEN else "U_Br"] for c in (0, 1) for l in (0, 1)}
        ),
    }
    return SCM(graph, DOMAINS, exo, mech)


# ---------------------------------------------------------------------------------- images
class MnistBars:
    """The image mechanism f_I(D, C, B, U_I) on one writer pool; U_I ~ Uniform[0, 1)."""

    image_shape = (3, 28, 28)

    def __init__(self, images: np.ndarray, labels: np.ndarray):
        order = np.argsort(labels, kind="stable")
        self._gray = images[order].astype(np.float32) / 255.0
        counts = np.bincount(labels, minlength=10)
        if (counts == 0).any():
            raise CfeditError(f"the writer pool has no image of digit(s) {np.flatnonzero(counts == 0).tolist()}")
        self.counts = counts
        self.offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])

    def sample_u(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return rng.random(n)

    def slot(self, d: np.ndarray, u_image: np.ndarray) -> np.ndarray:
        """Index into the pool of the handwriting that U_I picks for digit d."""
        d = np.asarray(d, dtype=np.int64)
        k = np.minimum((np.asarray(u_image) * self.counts[d]).astype(np.int64), self.counts[d] - 1)
        return self.offsets[d] + k

    def render(self, v: Mapping[str, np.ndarray], u_image: np.ndarray) -> np.ndarray:
        """Images (N, 3, 28, 28) float32 in [0, 1]: strokes in the red or green channel, bar in blue."""
        gray = self._gray[self.slot(v["D"], u_image)]
        n = len(gray)
        out = np.zeros((n, 3, 28, 28), dtype=np.float32)
        c = np.asarray(v["C"]).astype(bool)
        out[:, 0] = gray * c[:, None, None]
        out[:, 1] = gray * ~c[:, None, None]
        out[:, 2, :BAR_ROWS] = np.asarray(v["B"], dtype=np.float32)[:, None, None]
        return out


class MnistBarsOracle:
    """Reads C and B exactly from pixels and D with the reference digit classifier."""

    def __init__(self, classifier):
        self.classifier = classifier

    def __call__(self, images: np.ndarray) -> Values:
        images = np.asarray(images, dtype=np.float32)
        if images.ndim != 4 or images.shape[1:] != (3, 28, 28):
            raise CfeditError(f"the oracle reads images of shape (N, 3, 28, 28), got {images.shape}")
        c = (images[:, 0].sum(axis=(1, 2)) > images[:, 1].sum(axis=(1, 2))).astype(np.int64)
        b = (images[:, 2, :BAR_ROWS].mean(axis=(1, 2)) > 0.5).astype(np.int64)
        d = self.classifier.predict(images[:, :2].max(axis=1))
        return {"D": d, "C": c, "B": b}


# ---------------------------------------------------------------------------------- registry
@dataclass(frozen=True)
class World:
    """A ground-truth setting: graph, exact SCM, documented queries, and images on demand."""

    name: str
    description: str
    reference: str
    scm: SCM = field(repr=False)
    queries: tuple[str, ...]
    mechanisms: str = field(default="", repr=False)  # the documented mechanisms, formula and parameters

    @property
    def graph(self) -> CausalGraph:
        return self.scm.graph

    @property
    def domains(self) -> Domains:
        return self.scm.domains

    def ascm(self, split: str = "eval", mnist_dir: str | None = None, oracle: bool = True) -> ASCM:
        """The ASCM rendering handwriting from the ``split`` writer pool ("eval" by default)."""
        pools = load_pools(mnist_dir)
        images, labels = pools.split(split)
        return ASCM(self.scm, MnistBars(images, labels), _oracle(pools) if oracle else None)


_ORACLES: dict[str, MnistBarsOracle] = {}


def _oracle(pools: WriterPools) -> MnistBarsOracle:
    from cfedit.reference import DigitClassifier

    if pools.fingerprint not in _ORACLES:
        _ORACLES[pools.fingerprint] = MnistBarsOracle(DigitClassifier.for_pools(pools, verbose=True))
    return _ORACLES[pools.fingerprint]


_COMMON = (
    "P(B[C=green]=1 | D=7, C=red)",
    "P(B[C=green]=1 | D=7, C=red, B=0)",
    "P(D[C=green]=7 | D=7, C=red)",
)
_KEEP_BAR = ("P(D[B=1]=7, C[B=1]=red | D=7, C=red, B=0)",)


@dataclass(frozen=True)
class _Entry:
    description: str
    reference: str
    build: object
    queries: tuple[str, ...]


_REGISTRY = {
    "backdoor": _Entry(
        "Colored MNIST with bars, Backdoor: D <-> C, D -> B, C -> B",
        "Pan & Bareinboim, Counterfactual Image Editing (ICML 2024), Fig. 1 / Sec. 5",
        backdoor_scm,
        _COMMON + ("P(B[D=2]=1 | D=7, C=red)", "P(B[D=2]=1 | D=7, C=red, B=0)", "P(C[D=2]=red | D=7, C=red)") + _KEEP_BAR,
    ),
    "frontdoor": _Entry(
        "Colored MNIST with bars, Frontdoor: D -> C -> B, D <-> B",
        "Pan & Bareinboim, Counterfactual Image Editing (ICML 2024), Sec. 5",
        frontdoor_scm,
        _COMMON + ("P(C[D=2]=red | D=7)", "P(C[D=2]=red | D=7, C=red)", "P(B[D=2]=1 | D=7, C=red)") + _KEEP_BAR,
    ),
}


def world_names() -> tuple[str, ...]:
    return tuple(_REGISTRY)


_WORLDS: dict[str, World] = {}


def get_world(name: str) -> World:
    """The world called ``name`` (``backdoor`` or ``frontdoor``)."""
    if name not in _REGISTRY:
        raise CfeditError(f"unknown world {name!r}; worlds are {', '.join(_REGISTRY)}")
    if name not in _WORLDS:
        e = _REGISTRY[name]
        doc = "\n".join(line.strip() for line in (e.build.__doc__ or "").strip().splitlines()[2:])
        table = ", ".join(f"t({c}, {s})={BAR_TABLE[i, j]}" for i, c in enumerate(("green", "red"))
                          for j, s in enumerate(("small", "large")))
        doc += f"\nlarge(d) = d >= 5; {table}"
        _WORLDS[name] = World(name, e.description, e.reference, e.build(), e.queries, doc)
    return _WORLDS[name]
