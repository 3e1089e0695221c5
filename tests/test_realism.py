import numpy as np
import pytest

from cfedit.realism import frechet_distance


def test_zero_on_identical_sets(rng):
    x = rng.normal(size=(500, 6))
    assert frechet_distance(x, x) == pytest.approx(0, abs=1e-8)


def test_closed_form_for_gaussians(rng):
    """Diagonal Gaussians: FD = |mu_a - mu_b|^2 + sum (s_a - s_b)^2 (s standard deviations)."""
    n = 200_000
    a = rng.normal(0.0, 1.0, size=(n, 3))
    b = rng.normal(1.0, 2.0, size=(n, 3))
    expected = 3 * 1.0**2 + 3 * (2.0 - 1.0) ** 2
    assert frechet_distance(a, b) == pytest.approx(expected, rel=0.02)


def test_grows_with_the_shift(rng):
    a = rng.normal(size=(2000, 4))
    d = [frechet_distance(a, rng.normal(size=(2000, 4)) + s) for s in (0.0, 0.5, 1.0)]
    assert d[0] < d[1] < d[2]
