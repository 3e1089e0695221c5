"""World ``faces``: procedural 64x64 RGB faces with the paper's CelebA-HQ diagram Gender <-> Age, Age -> GrayHair.

Factors: Gender (female, male), Age (young, old), GrayHair (0, 1). A hidden common cause S (which photo
collection a face comes from) makes old faces more often male, as in CelebA; gray hair is much more
common among old faces, each age reading its own independent noise (so that P(GrayHair[Age=old] | Age=young,
GrayHair=0) is not identified).

The image is I := f_I(V, U_I). U_I is a face's identity: a vector of N_IDENTITY independent Uniform[0, 1)
draws that set head shape and size, jaw, skin tone, eye colour and spacing, nose, mouth, eyebrows,
hairstyle and base hair colour, background and clothing colour, a small pose shift and the lighting.
f_I draws the face at 128x128 with Pillow and averages 2x2 blocks down to 64x64 (anti-aliasing). The
factors act on the drawing only where the paper's edits say: Gender sets hair length and style, the jaw,
the eyebrows, the lips and facial hair; Age adds wrinkles, eye bags and paler, less saturated skin;
GrayHair turns hair, brows and beard grey or white. The same U_I under a counterfactual keeps the
identity, so the world renders exact counterfactual images.

Identities are split: each split ("train" for editors, "eval" for evaluation, and the oracle reader's own)
derives its draws from the caller's generator and its own salt, so that the same seed never gives two
splits the same faces.
"""

from __future__ import annotations

import colorsys
from collections.abc import Callable, Mapping

import numpy as np

from cfedit.core.domains import Domains
from cfedit.core.graph import CausalGraph
from cfedit.errors import CfeditError
from cfedit.scm import SCM, Exogenous, Values
from cfedit.worlds.base import World
from cfedit.worlds.reference import ClassifierConfig, ReferenceNet

DOMAINS = Domains({"Gender": ["female", "male"], "Age": ["young", "old"], "GrayHair": ["0", "1"]})
IMAGE_SHAPE = (3, 64, 64)
_S = 128  # drawing size; the image is its 2x2 block average
_GRID = 10  # noises are uniform on {0..9}; a factor is 1 iff its noise < 10 * its probability
P_COLLECTION = 0.5  # P(S = 1): the face comes from the older, more male collection
P_MALE = (0.3, 0.8)  # P(Gender = male | S = 0, 1)
P_OLD = (0.2, 0.6)  # P(Age = old | S = 0, 1)
P_GRAY = (0.1, 0.7)  # P(GrayHair = 1 | Age = young, old)
SPLITS = {"train": 1, "eval": 2, "oracle": 3}  # salts of the identity draws per split


MECHANISMS = """\
S ~ Bernoulli(0.5), the photo collection, read by Gender and Age (the bidirected edge)
U_G, U_A ~ Uniform{0..9}, independent
U_H = (N_young, N_old), two independent Uniform{0..9} noises, one per age
Gender := male iff U_G < 10 P_MALE[S], P_MALE = (0.3, 0.8)
Age := old iff U_A < 10 P_OLD[S], P_OLD = (0.2, 0.6)
GrayHair := 1 iff N_Age < 10 P_GRAY[Age], P_GRAY = (young 0.1, old 0.7)"""


def faces_scm() -> SCM:
    """Faces: Gender <-> Age, Age -> GrayHair, with the mechanisms of :data:`MECHANISMS`."""
    graph = CausalGraph.parse("Gender <-> Age; Age -> GrayHair")
    exo = [
        Exogenous.bernoulli("S", P_COLLECTION, ("Gender", "Age")),
        Exogenous.uniform("U_G", _GRID, ("Gender",)),
        Exogenous.uniform("U_A", _GRID, ("Age",)),
        Exogenous.uniform("U_Hyoung", _GRID, ("GrayHair",)),
        Exogenous.uniform("U_Hold", _GRID, ("GrayHair",)),
    ]

    def threshold(table: tuple[float, float], index: np.ndarray) -> np.ndarray:
        return np.round(_GRID * np.asarray(table))[np.asarray(index, dtype=np.int64)]

    mech = {
        "Gender": lambda pa, u: (u["U_G"] < threshold(P_MALE, u["S"])).astype(np.int64),
        "Age": lambda pa, u: (u["U_A"] < threshold(P_OLD, u["S"])).astype(np.int64),
        "GrayHair": lambda pa, u: (np.where(pa["Age"] == 1, u["U_Hold"], u["U_Hyoung"])
                                   < threshold(P_GRAY, pa["Age"])).astype(np.int64),
    }
    return SCM(graph, DOMAINS, exo, mech)


# ---------------------------------------------------------------------------------- the identity U_I
IDENTITY = (
    "dx", "dy", "head_size", "head_ratio", "jaw", "skin", "eye_colour", "eye_spacing", "eye_height", "nose_length",
    "nose_width", "mouth_width", "mouth_height", "brow_tilt", "hair_volume", "hair_length", "fringe", "part",
    "hair_colour", "gray_level", "beard_style", "background", "clothing", "light_dir", "light_level",
)
N_IDENTITY = len(IDENTITY)
_HAIR = np.array([[0.08, 0.07, 0.07], [0.22, 0.14, 0.09], [0.38, 0.24, 0.13], [0.50, 0.22, 0.10], [0.72, 0.55, 0.27]])
_EYES = np.array([[0.35, 0.20, 0.10], [0.20, 0.35, 0.60], [0.25, 0.45, 0.25], [0.40, 0.42, 0.45], [0.15, 0.10, 0.05]])
_SKIN = (np.array([0.97, 0.82, 0.71]), np.array([0.42, 0.28, 0.19]))  # lightest, darkest


def _rgb(c: np.ndarray, alpha: float = 1.0) -> tuple[int, ...]:
    col = tuple(min(255, max(0, int(255 * float(x) + 0.5))) for x in c)
    return col if alpha >= 1 else (*col, int(round(255 * alpha)))


class FaceRenderer:
    """f_I(Gender, Age, GrayHair, U_I) on one split of identities; U_I ~ Uniform[0, 1)^N_IDENTITY."""

    image_shape = IMAGE_SHAPE

    def __init__(self, split: str = "eval"):
        if split not in SPLITS:
            raise CfeditError(f"unknown split of faces {split!r}; splits are {', '.join(SPLITS)}")
        self.split = split

    def prior(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """n identities: the caller's generator seeds a stream salted by the split."""
        seed = int(rng.integers(0, 2**62))
        return np.random.default_rng([seed, SPLITS[self.split]]).random((n, N_IDENTITY))

    def generate(self, v: Mapping[str, np.ndarray], u_image: np.ndarray) -> np.ndarray:
        """Images (N, 3, 64, 64) float32 in [0, 1]. Repeated (identity, factors) rows are drawn once."""
        u = np.asarray(u_image, dtype=np.float64)
        if u.ndim != 2 or u.shape[1] != N_IDENTITY:
            raise CfeditError(f"face identities must be (N, {N_IDENTITY}), got {u.shape}")
        codes = np.stack([np.asarray(v[k], dtype=np.float64) for k in DOMAINS.names], axis=1)
        rows, inverse = np.unique(np.concatenate([u, codes], axis=1), axis=0, return_inverse=True)
        small = np.empty((len(rows), 64, 64, 3), dtype=np.uint8)
        for i, row in enumerate(rows):
            small[i] = _draw(row[:N_IDENTITY], *(int(c) for c in row[N_IDENTITY:]))
        # lighting: a brightness level and a left-right gradient
        p = dict(zip(IDENTITY, rows[:, :N_IDENTITY].T))
        ramp = np.linspace(-1, 1, 64)
        light = (0.9 + 0.2 * p["light_level"])[:, None] * (1 + 0.15 * (2 * p["light_dir"] - 1)[:, None] * ramp[None]) / 255
        out = small.transpose(0, 3, 1, 2).astype(np.float32, order="C")
        out *= light[:, None, None, :].astype(np.float32)
        np.minimum(out, 1, out=out)
        return out if len(rows) == len(u) and np.array_equal(np.ravel(inverse), np.arange(len(u))) else out[np.ravel(inverse)]


def _draw(u: np.ndarray, male: int, old: int, gray: int) -> np.ndarray:
    """One face drawn at 128x128 and averaged over 2x2 blocks to 64x64 (uint8 HWC)."""
    from PIL import Image, ImageDraw

    p = dict(zip(IDENTITY, u))
    bg = colorsys.hsv_to_rgb(p["background"], 0.15 + 0.3 * p["light_dir"], 0.55 + 0.35 * p["part"])
    img = Image.new("RGB", (_S, _S), _rgb(np.array(bg)))
    d = ImageDraw.Draw(img, "RGBA")
    cx, cy = 64 + 10 * (p["dx"] - 0.5), 58 + 8 * (p["dy"] - 0.5)
    a = 25 + 6 * p["head_size"]
    b = a * (1.18 + 0.15 * p["head_ratio"])
    jw = a * ((0.95 + 0.12 * p["jaw"]) if male else (0.72 + 0.12 * p["jaw"]))
    skin = _SKIN[0] + (_SKIN[1] - _SKIN[0]) * p["skin"] ** 1.5
    if old:  # paler, less saturated skin
        skin = 0.65 * skin + 0.35 * skin.mean() + 0.04
    base = _HAIR[min(int(p["hair_colour"] * len(_HAIR)), len(_HAIR) - 1)] * (0.85 + 0.3 * p["gray_level"])
    grey = np.full(3, 0.70 + 0.27 * p["gray_level"])
    hair = 0.1 * base + 0.9 * grey if gray else base
    brow = (0.4 * base + 0.6 * grey if gray else base * 0.9)
    cloth = np.array(colorsys.hsv_to_rgb(p["clothing"], 0.5, 0.35 + 0.5 * p["eye_height"]))
    vol = 2 + 6 * p["hair_volume"]
    top = cy - b - vol
    # long hair behind the head (female)
    if not male:
        bottom = cy + b * 0.8 + 8 + 30 * p["hair_length"]
        d.rounded_rectangle((cx - a - vol, top, cx + a + vol, bottom), radius=int(a), fill=_rgb(hair))
    # shoulders and neck
    d.ellipse((cx - 62, cy + b + 4, cx + 62, cy + b + 80), fill=_rgb(cloth))
    d.rectangle((cx - 0.42 * a, cy + 0.5 * b, cx + 0.42 * a, cy + b + 12), fill=_rgb(skin * 0.88))
    # ears, head and jaw
    ear_y = cy + 0.05 * b
    d.ellipse((cx - a - 5, ear_y - 8, cx - a + 5, ear_y + 8), fill=_rgb(skin * 0.93))
    d.ellipse((cx + a - 5, ear_y - 8, cx + a + 5, ear_y + 8), fill=_rgb(skin * 0.93))
    d.ellipse((cx - a, cy - b, cx + a, cy + 0.75 * b), fill=_rgb(skin))
    d.ellipse((cx - jw, cy - 0.3 * b, cx + jw, cy + b), fill=_rgb(skin))
    ey = cy - 0.05 * b + 6 * (p["eye_height"] - 0.5)
    es = a * (0.34 + 0.12 * p["eye_spacing"])
    my = cy + 0.52 * b + 4 * (p["mouth_height"] - 0.5)
    mw = 6 + 5 * p["mouth_width"]
    # age: wrinkles on the forehead, crow's feet, eye bags, nasolabial folds, lines at the mouth corners
    if old:
        line = _rgb(skin * 0.5, 0.9)
        for k in range(3):
            yk = ey - 14 - 5 * k
            d.arc((cx - 0.6 * a, yk - 4, cx + 0.6 * a, yk + 6), 200, 340, fill=line, width=3)
        for s in (-1, 1):
            ex = cx + s * es
            d.arc((ex - 7, ey + 1, ex + 7, ey + 8), 10, 170, fill=_rgb(skin * 0.5, 0.9), width=3)
            for t in (-3, 0, 3):
                d.line((ex + s * 9, ey + t * 0.6, ex + s * 14, ey + t * 1.6), fill=line, width=1)
            d.line((cx + s * 6, ey + 0.3 * b, cx + s * (mw + 4), my + 2), fill=line, width=3)
            d.line((cx + s * (mw + 1), my + 3, cx + s * (mw + 3), my + 10), fill=line, width=2)
    # hair on top: a short cap (male), a fuller cap with a fringe and side locks (female)
    fringe = b * ((0.22 + 0.15 * p["fringe"]) if male else (0.2 + 0.18 * p["fringe"]))
    shift = 10 * (p["part"] - 0.5)
    d.chord((cx - a - vol * (0.5 if male else 1), top, cx + a + vol * (0.5 if male else 1), cy - b + 2 * fringe + 2),
            180, 360, fill=_rgb(hair))
    d.ellipse((cx - a - 1 + shift, top + 2, cx + a + 1 + shift, cy - b + 2 * fringe), fill=_rgb(hair))
    if male:
        for s in (-1, 1):  # sideburns
            d.rectangle((cx + s * a - 3 * (s > 0) - 1, cy - b + fringe, cx + s * a + 3 * (s < 0) + 1, ear_y - 2), fill=_rgb(hair))
    else:
        for s in (-1, 1):  # side locks over the face's edge
            x0, x1 = sorted((cx + s * (a + vol), cx + s * (a - 5)))
            d.rectangle((x0, cy - b + fringe, x1, cy + 0.6 * b + 20 * p["hair_length"]), fill=_rgb(hair))
    # eyes, brows, nose, mouth
    iris = _EYES[min(int(p["eye_colour"] * len(_EYES)), len(_EYES) - 1)]
    for s in (-1, 1):
        ex = cx + s * es
        d.ellipse((ex - 6, ey - 3.5, ex + 6, ey + 3.5), fill=(245, 245, 240))
        d.ellipse((ex - 3, ey - 3, ex + 3, ey + 3), fill=_rgb(iris))
        d.ellipse((ex - 1.3, ey - 1.3, ex + 1.3, ey + 1.3), fill=(10, 10, 10))
        tilt = 4 * (p["brow_tilt"] - 0.5)
        inner, outer = (ex - s * 6, ey - 8 - (0 if male else 1)), (ex + s * 7, ey - 8 - tilt - (0 if male else 2))
        d.line((*inner, *outer), fill=_rgb(brow), width=4 if male else 2)
    nl, nw = 0.2 * b + 6 * p["nose_length"], 3 + 3 * p["nose_width"]
    d.line((cx, ey + 3, cx - nw * 0.4, ey + nl), fill=_rgb(skin * 0.78), width=2)
    d.line((cx - nw, ey + nl + 1, cx + nw, ey + nl + 1), fill=_rgb(skin * 0.7), width=2)
    lips = np.array([0.75, 0.25, 0.30]) if not male else skin * np.array([0.8, 0.6, 0.6])
    d.ellipse((cx - mw, my - 2.5, cx + mw, my + 2.5), fill=_rgb(lips))
    d.line((cx - mw + 1, my, cx + mw - 1, my), fill=_rgb(lips * 0.5), width=1)
    # facial hair (male): stubble or a full beard, and a moustache for some
    if male:
        full = p["beard_style"] > 0.5
        alpha = 0.85 if full else 0.45
        d.chord((cx - jw, cy - 0.3 * b, cx + jw, cy + b + 1), 20 if full else 35, 160 if full else 145, fill=_rgb(hair, alpha))
        d.ellipse((cx - mw - 2, my - 6, cx + mw + 2, my - 1), fill=_rgb(hair, alpha))
        d.ellipse((cx - mw, my - 2.5, cx + mw, my + 2.5), fill=_rgb(lips))
    return np.asarray(img.reduce(2))


# ---------------------------------------------------------------------------------- the oracle reader
ORACLE_UNITS = 16_000  # faces of the oracle's own identities it trains on (every joint value, balanced)
ORACLE_CONFIG = ClassifierConfig(epochs=5)


def oracle_training_set(n: int, split: str = "oracle", seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n faces of ``split``'s identities, their factors drawn uniformly over the 8 joint values (a reader
    should see every combination as often), and their joint class."""
    rng = np.random.default_rng([seed, SPLITS[split], 99])
    joint = rng.integers(0, int(np.prod(DOMAINS.shape)), n)
    cells = np.unravel_index(joint, DOMAINS.shape)
    v = {k: cells[i] for i, k in enumerate(DOMAINS.names)}
    images = FaceRenderer(split).generate(v, FaceRenderer(split).prior(n, rng))
    return images, joint


class FacesOracle:
    """Reads Gender, Age and GrayHair with a reference network trained on the oracle's own identities."""

    def __init__(self, net: ReferenceNet):
        self.net = net

    def __call__(self, images: np.ndarray) -> Values:
        images = np.asarray(images, dtype=np.float32)
        if images.ndim != 4 or images.shape[1:] != IMAGE_SHAPE:
            raise CfeditError(f"the faces oracle reads images of shape (N, 3, 64, 64), got {images.shape}")
        cells = np.unravel_index(self.net.predict(images), DOMAINS.shape)
        return {k: cells[i].astype(np.int64) for i, k in enumerate(DOMAINS.names)}


_ORACLE: list[FacesOracle] = []


def faces_oracle(verbose: bool = True) -> FacesOracle:
    """The oracle reader, trained once on ORACLE_UNITS faces of its own identities and cached on disk."""
    if not _ORACLE:
        images, joint = oracle_training_set(ORACLE_UNITS)
        _ORACLE.append(FacesOracle(ReferenceNet.fit_cached("faces-oracle", images, joint, len(np.unique(joint)),
                                                           ORACLE_CONFIG, verbose)))
    return _ORACLE[0]


# ---------------------------------------------------------------------------------- the world
def _images(split: str, data_dir: str | None) -> FaceRenderer:
    if data_dir is not None:
        raise CfeditError("the faces world renders its own images and reads no data folder")
    return FaceRenderer(split)


def _reader(data_dir: str | None) -> FacesOracle:
    return faces_oracle()


QUERIES = (
    # the paper's three edits (Fig. 1): what each must keep
    "P(Gender[Age=old]=female | Gender=female, Age=young)",
    "P(Age[Gender=male]=young, GrayHair[Gender=male]=0 | Gender=female, Age=young, GrayHair=0)",
    "P(Gender[GrayHair=1]=female, Age[GrayHair=1]=young | Gender=female, Age=young, GrayHair=0)",
    # gray hair under do(Age): identified without GrayHair in the evidence, not identified with it
    "P(GrayHair[Age=old]=1 | Gender=female, Age=young)",
    "P(GrayHair[Age=old]=1 | Gender=female, Age=young, GrayHair=0)",
)

# The ANCM's defaults on this world: a VAE of depth 4 (64x64 -> 4x4, channels 32..256) carries gender, age and gray
# hair through an edit, which the two-stage MNIST network does not; GroupNorm reaches a given error in fewer steps;
# the residual latent keeps the pixels the decoder cannot draw (the identity), so an edit changes only what the
# decoder has learnt the factors do; with it a counterfactual-consistency weight of 0.1 collapses the code z (the
# edits become one overlay per action) and 0.01 does not; what an edit adds for one factor can change how another
# reads (an aged young woman read as a man), so the term also counts the kept factors (ctf_keep); batches of 64.
# The figures are in docs/results/faces.md (from `cfedit reproduce --world faces` and `benchmarks/faces_probe.py`).
EDITOR_SETTINGS = {"image": {"kind": "vae", "latent_dim": 16, "width": 32, "depth": 4, "norm": "group", "residual": True},
                   "batch_size": 64, "steps": 1200, "ctf_weight": 0.01, "ctf_keep": 1.0}

WORLDS: dict[str, Callable[[], World]] = {
    "faces": lambda: World(
        "faces", "Procedural faces, CelebA-HQ diagram: Gender <-> Age, Age -> GrayHair",
        "Pan & Bareinboim, Counterfactual Image Editing (ICML 2024), Fig. 1 / Sec. 5 (CelebA-HQ)", faces_scm(), QUERIES,
        MECHANISMS, IMAGE_SHAPE, _images, _reader,
        figure_actions=({"Age": "old"}, {"Gender": "male"}, {"GrayHair": "1"}), reversibility="Gender",
        data_note="U_I is a face's identity (25 uniform draws), rendered procedurally: no data to download",
        editor_settings=EDITOR_SETTINGS,
        stated_accuracy={"Gender": 0.995, "Age": 0.995, "GrayHair": 0.995}),  # 0.9998, 0.9998, 1.0 measured (README)
}
