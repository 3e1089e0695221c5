"""Morpho-MNIST morphometrics: measure and set the stroke thickness and intensity of a digit image.

Measurement follows Morpho-MNIST (Castro et al., JMLR 2019) and deepscm's synthetic set (Pawlowski et al.,
NeurIPS 2020), so that effectiveness figures are comparable with the peers':

* thickness: the image (as 8-bit grey levels) is upsampled ``scale`` times (``pyramid_expand``, cubic),
  binarised at half its range, and its medial axis computed with the distance map; the thickness is
  2 x the mean distance along the medial axis, divided by ``scale`` (28 x 28 pixel units);
* intensity: the median grey level (0-255) of the pixels at or above half the image's range.

Rendering sets both exactly instead of approximately: the handwriting's skeleton is drawn at ``scale``
times the resolution as a tube of radius r around the skeleton (an anti-aliased edge of one fine pixel),
block-averaged down to 28 x 28, scaled so that its measured intensity is the target, and r is searched
(Brent's method) until the *measured* thickness of the final image is the target. Thin targets are bounded
below by what a 28 x 28 stroke can show (about 1.5 pixels for every MNIST digit); see
:data:`THICKNESS_RANGE`.

Images are float32 in [0, 1], shape (N, 28, 28) here; the world adds the channel axis. scikit-image is
imported when a function needs it (the ``edit`` extra), so importing this module needs only numpy/scipy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from cfedit.errors import CfeditError, DataError

SCALE = 4  # upsampling factor of measurement and rendering (Morpho-MNIST measures at 4x)
THRESHOLD = 0.5  # binarisation at half the image's range (Morpho-MNIST, deepscm)
THICKNESS_RANGE = (1.5, 6.5)  # thicknesses every MNIST handwriting can be rendered at (28 x 28 pixel units)
INTENSITY_RANGE = (64.0, 255.0)  # deepscm's intensity range (grey levels)


@dataclass(frozen=True)
class Morphometrics:
    """Measured stroke thickness (pixels) and intensity (grey levels, 0-255), one entry per image."""

    thickness: np.ndarray
    intensity: np.ndarray

    def to_json(self) -> dict[str, list[float]]:
        return {"thickness": self.thickness.tolist(), "intensity": self.intensity.tolist()}


def _skimage():
    try:
        from skimage import morphology, transform
    except ImportError:
        raise DataError("measuring and rendering Morpho-MNIST strokes needs scikit-image (pip install 'cfedit[edit]')") from None
    return morphology, transform


def _gray(images: np.ndarray) -> np.ndarray:
    """(N, 28, 28) float from (N, H, W) or (N, 1, H, W) images in [0, 1]."""
    a = np.asarray(images, dtype=np.float64)
    if a.ndim == 4 and a.shape[1] == 1:
        a = a[:, 0]
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3:
        raise CfeditError(f"morphometrics read grey images (N, H, W) or (N, 1, H, W), got shape {np.shape(images)}")
    return a


def _binary(image: np.ndarray) -> np.ndarray:
    lo, hi = image.min(), image.max()
    return image >= lo + (hi - lo) * THRESHOLD


def upsampled_binary(image01: np.ndarray) -> np.ndarray:
    """Morpho-MNIST's high-resolution binary image of one [0, 1] image, read as 8-bit grey levels."""
    _, transform = _skimage()
    u8 = np.round(np.clip(image01, 0, 1) * 255).astype(np.uint8)
    up = transform.pyramid_expand(u8, upscale=SCALE, order=3)
    return _binary((255.0 * up).astype(np.uint8))


def thickness_of(image01: np.ndarray) -> float:
    """Mean stroke thickness of one image (28 x 28 pixel units): 2 x mean medial-axis distance / scale."""
    skel, dist = medial_axis(crop_to_stroke(upsampled_binary(image01)))
    if not skel.any():
        return 0.0
    return float(2.0 * dist[skel].mean() / SCALE)


def medial_axis(binary: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """scikit-image's ``medial_axis(binary, return_distance=True, rng=0)`` (seeded tie-breaking).

    scikit-image rebuilds its two 512-entry neighbourhood tables on every call (about 20 ms, most of a
    measurement); here they are built once and its thinning loop is called directly. Where its private
    names are missing (another scikit-image version), the public function is used.
    """
    tables = _medial_tables()
    if tables is None:
        morphology, _ = _skimage()
        return morphology.medial_axis(binary, return_distance=True, rng=0)
    keep, cornerness, loop, lookup = tables
    image = np.asarray(binary, dtype=bool)
    distance = ndimage.distance_transform_edt(image)
    corner = lookup(image, cornerness)
    i, j = np.mgrid[0:image.shape[0], 0:image.shape[1]]
    d = distance[image]
    tiebreak = np.random.default_rng(0).permutation(np.arange(int(image.sum())))
    order = np.ascontiguousarray(np.lexsort((tiebreak, corner[image], d)), dtype=np.int32)
    result = np.ascontiguousarray(image, np.uint8)
    loop(result, np.ascontiguousarray(i[image], dtype=np.intp), np.ascontiguousarray(j[image], dtype=np.intp), order, keep)
    return result.astype(bool), distance


_TABLES: list = []


def _medial_tables():
    """(keep table, cornerness table, thinning loop, table lookup), or None without scikit-image's private names."""
    if not _TABLES:
        _skimage()
        try:
            from skimage.morphology._skeletonize import _skeletonize_loop, _table_lookup
        except ImportError:
            _TABLES.append(None)
            return None
        eight = ndimage.generate_binary_structure(2, 2)
        patterns = [((index >> np.arange(9)) & 1).astype(bool).reshape(3, 3) for index in range(512)]

        def components(p: np.ndarray) -> int:
            return ndimage.label(p, eight)[1]

        centre = np.array([p[1, 1] for p in patterns])
        changes = np.array([components(p) != components(_without_centre(p)) for p in patterns])
        sparse = np.array([p.sum() < 3 for p in patterns])
        keep = np.ascontiguousarray(centre & (changes | sparse), dtype=np.uint8)
        cornerness = np.array([9 - p.sum() for p in patterns])
        _TABLES.append((keep, cornerness, _skeletonize_loop, _table_lookup))
    return _TABLES[0]


def _without_centre(p: np.ndarray) -> np.ndarray:
    q = p.copy()
    q[1, 1] = False
    return q


def crop_to_stroke(binary: np.ndarray, margin: int = 2) -> np.ndarray:
    """The foreground's bounding box with a background margin (the medial axis is the same, and faster)."""
    rows, cols = np.flatnonzero(binary.any(axis=1)), np.flatnonzero(binary.any(axis=0))
    if not len(rows):
        return binary
    return np.pad(binary[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1], margin)


def intensity_of(image01: np.ndarray) -> float:
    """Median grey level (0-255) of the pixels at or above half the image's range (deepscm)."""
    g = 255.0 * np.asarray(image01, dtype=np.float64)
    return float(np.median(g[_binary(g)]))


def measure(images: np.ndarray) -> Morphometrics:
    """Thickness and intensity of every image (N, H, W) or (N, 1, H, W) in [0, 1]."""
    g = _gray(images)
    return Morphometrics(np.array([thickness_of(x) for x in g]), np.array([intensity_of(x) for x in g]))


@dataclass(frozen=True)
class RenderConfig:
    """How closely :class:`StrokeRenderer` meets its targets."""

    thickness_tol: float = 0.01  # stop searching the tube radius once the measured thickness is this close (pixels)
    max_measurements: int = 24  # measurements per image at most; the closest radius met is kept
    intensity_steps: int = 3  # fixed-point rescalings that bring the measured intensity to the target


class StrokeRenderer:
    """Renders handwritings (uint8 (N, 28, 28)) at a target thickness and intensity, as measured by
    :func:`measure`. Each handwriting's skeleton distance map is computed once, on first use."""

    def __init__(self, digits: np.ndarray, config: RenderConfig = RenderConfig()):
        digits = np.asarray(digits)
        if digits.ndim != 3:
            raise CfeditError(f"handwritings must be (N, H, W), got shape {digits.shape}")
        self.digits, self.config = digits, config
        self._distance: dict[int, np.ndarray] = {}

    def distance(self, index: int) -> np.ndarray:
        """Distance (fine pixels) of every fine pixel to the skeleton of handwriting ``index``."""
        if index not in self._distance:
            morphology, _ = _skimage()
            skel = morphology.skeletonize(upsampled_binary(self.digits[index] / 255.0))
            if not skel.any():
                raise DataError(f"handwriting {index} has no strokes")
            self._distance[index] = ndimage.distance_transform_edt(~skel)
        return self._distance[index]

    @staticmethod
    def _tube(distance: np.ndarray, radius: float) -> np.ndarray:
        """The stroke of radius ``radius`` around the skeleton, block-averaged to the coarse grid, in [0, 1]."""
        fine = np.clip(radius + 0.5 - distance, 0.0, 1.0)
        h, w = fine.shape
        return fine.reshape(h // SCALE, SCALE, w // SCALE, SCALE).mean(axis=(1, 3))

    def _at_intensity(self, image: np.ndarray, intensity: float) -> np.ndarray:
        out = image
        gain = 1.0
        for _ in range(self.config.intensity_steps):
            gain *= intensity / max(intensity_of(out), 1e-6)
            out = np.clip(image * gain, 0.0, 1.0)
        return out

    def render_one(self, index: int, thickness: float, intensity: float) -> np.ndarray:
        """Handwriting ``index`` at ``thickness`` (pixels) and ``intensity`` (grey levels), float (28, 28)."""
        d = self.distance(index)

        def miss(r: float) -> float:
            return thickness_of(self._at_intensity(self._tube(d, r), intensity)) - thickness

        r = _solve(miss, 2.0 * (thickness - 0.2), self.config.thickness_tol, float(SCALE * 2 * THICKNESS_RANGE[1]),
                   self.config.max_measurements)
        return self._at_intensity(self._tube(d, r), intensity)

    def render(self, indices: Sequence[int], thickness: Sequence[float], intensity: Sequence[float]) -> np.ndarray:
        """Float32 images (N, 28, 28) in [0, 1], one per (handwriting, thickness, intensity)."""
        idx, t, i = (np.atleast_1d(np.asarray(a)) for a in (indices, thickness, intensity))
        if not len(idx) == len(t) == len(i):
            raise CfeditError(f"render needs as many thicknesses and intensities as handwritings ({len(idx)}, {len(t)}, {len(i)})")
        h, w = self.digits.shape[1:]
        out = np.empty((len(idx), h, w), dtype=np.float32)
        for n, (k, tk, ik) in enumerate(zip(idx.tolist(), t.tolist(), i.tolist())):
            out[n] = self.render_one(int(k), float(tk), float(ik))
        return out


def _solve(miss, guess: float, tol: float, rmax: float, max_evals: int) -> float:
    """A radius r in [0, rmax] with |miss(r)| <= tol, else the closest one met.

    Secant steps (slope 0.5 pixel of thickness per fine pixel of radius) until the root is bracketed, then
    false position with a bisection every third step. ``miss`` rises with r but is not strictly monotone
    (strokes merge), so the latest point of each sign is the bracket: every new point lies inside it.
    """
    lo = hi = None
    best_r, best_f = guess, np.inf
    r = min(max(guess, 0.0), rmax)
    for k in range(max_evals):
        f = miss(r)
        if abs(f) < abs(best_f):
            best_r, best_f = r, f
        if abs(f) <= tol:
            break
        if f < 0:
            lo = (r, f)
        else:
            hi = (r, f)
        if lo is not None and hi is not None:
            if abs(hi[0] - lo[0]) < 1e-4:
                break
            step = (lo[0] + hi[0]) / 2 if k % 3 == 2 else lo[0] - lo[1] * (hi[0] - lo[0]) / (hi[1] - lo[1])
        else:
            step = min(max(r - f / 0.5, 0.0), rmax)
            if step == r:  # pinned at an end: the target is out of reach
                break
        r = step
    return best_r


@dataclass(frozen=True)
class Effectiveness:
    """How well images show the factor values an edit intended: mean absolute errors of the *measured*
    thickness (pixels) and intensity (grey levels), the peers' effectiveness figures for Morpho-MNIST."""

    thickness_mae: float
    intensity_mae: float
    n: int

    def to_json(self) -> dict[str, float | int]:
        return {"thickness_mae": self.thickness_mae, "intensity_mae": self.intensity_mae, "n": self.n}


def effectiveness(images: np.ndarray, thickness: Sequence[float], intensity: Sequence[float]) -> Effectiveness:
    """MAE between the intended thickness and intensity of each image and what :func:`measure` reads."""
    m = measure(images)
    t, i = np.asarray(thickness, dtype=float), np.asarray(intensity, dtype=float)
    if t.shape != m.thickness.shape or i.shape != m.intensity.shape:
        raise CfeditError(f"{len(m.thickness)} images need as many intended thicknesses and intensities ({t.shape}, {i.shape})")
    return Effectiveness(float(np.abs(m.thickness - t).mean()), float(np.abs(m.intensity - i).mean()), len(t))
