"""Realism: a Frechet distance between image sets in the feature space of a reference network.

This is *not* Inception FID: the features are the 128-d penultimate layer of a small CNN trained to
recognise the world's factors jointly on images the world renders from its training split
(:func:`feature_net`). Edits under do(x') are compared with the world's own images under do(x') (true
counterfactual images of other units, i.e. samples of P(I_{x'})); the distance between two such sets of
the world's images is the floor an editor can be compared with (:func:`realism_parts` reports both).

    FD(a, b) = |mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^{1/2})
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import linalg

from cfedit.evaluation.metrics import Z95
from cfedit.worlds.reference import ClassifierConfig, ReferenceNet

FEATURE_CONFIG = ClassifierConfig(epochs=4)  # a feature extractor, not an oracle: a short training suffices


def feature_net(world, n: int = 6000, seed: int = 0, verbose: bool = False) -> ReferenceNet:
    """The realism feature network of ``world``: trained on n images of its training split, cached on disk."""
    a = world.ascm("train", oracle=False)
    units = a.units(n, seed)
    sizes = world.domains.shape
    joint = np.ravel_multi_index(tuple(units.v[k] for k in world.domains.names), sizes)
    return ReferenceNet.fit_cached(f"realism-{world.name}", a.factual(units), joint, int(np.prod(sizes)),
                                   FEATURE_CONFIG, verbose=verbose)


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to feature sets a (N, F) and b (M, F)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if len(a) < 2 or len(b) < 2:
        raise ValueError("the Frechet distance needs at least two feature vectors per set")
    mu = a.mean(0) - b.mean(0)
    eye = 1e-6 * np.eye(a.shape[1])  # dead ReLU features make covariances singular
    sa, sb = np.cov(a, rowvar=False) + eye, np.cov(b, rowvar=False) + eye
    covmean = linalg.sqrtm(sa @ sb)
    if np.iscomplexobj(covmean):
        covmean = covmean.real
    return float(max(0.0, mu @ mu + np.trace(sa) + np.trace(sb) - 2 * np.trace(covmean)))


@dataclass(frozen=True)
class Realism:
    """FD of edited images to real ones, its 95% interval, and the real-vs-real floor."""

    value: float
    low: float
    high: float
    floor: float
    n: int


def fd_interval(a: np.ndarray, b: np.ndarray, n_sub: int = 20, seed: int = 0) -> tuple[float, float, float]:
    """FD(a, b) with a 95% normal interval whose standard error is the delete-half jackknife's: the spread
    of FD over ``n_sub`` random halves of ``a`` drawn without replacement (for d = n/2 deleted the
    jackknife's variance factor (n - d) / d is 1). Unlike a bootstrap, no half holds a duplicate, which
    would shrink the covariance and bias every replicate upward."""
    value = frechet_distance(a, b)
    half = len(a) // 2
    if half < 2 or n_sub < 2:
        return value, float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    subs = [frechet_distance(a[rng.choice(len(a), half, replace=False)], b) for _ in range(n_sub)]
    se = float(np.std(subs, ddof=1))
    return value, max(0.0, value - Z95 * se), value + Z95 * se


def realism_parts(net: ReferenceNet, images: list[np.ndarray], real: list[np.ndarray], real_other: list[np.ndarray],
                  n_sub: int = 20, seed: int = 0) -> tuple[Realism, list[Realism]]:
    """FD(images, real) with a jackknife interval (:func:`fd_interval`) and the floor FD(real_other, real) (same sizes
    advised), of the parts pooled (e.g. the edits under every intervention against the real images under the same
    ones) and of each part alone (its own floor), each image's features computed once."""
    feats = [[net.features(a) for a in group] for group in (images, real, real_other)]

    def one(fa: np.ndarray, fr: np.ndarray, fo: np.ndarray) -> Realism:
        value, lo, hi = fd_interval(fa, fr, n_sub, seed)
        return Realism(value, lo, hi, frechet_distance(fo, fr), len(fa))

    pooled = one(*(np.concatenate(f) for f in feats))
    return pooled, [one(fa, fr, fo) for fa, fr, fo in zip(*feats)]
