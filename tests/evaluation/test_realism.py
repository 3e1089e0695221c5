import numpy as np
import pytest

from cfedit.evaluation.realism import frechet_distance, realism_parts


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


def test_jackknife_interval_matches_the_sampling_spread(rng):
    """Over 40 fresh samples of a shifted Gaussian, the FD's empirical spread agrees with the delete-half
    jackknife's standard error (the interval's half-width / 1.96), and each interval holds its estimate."""
    from cfedit.evaluation.realism import fd_interval

    b = rng.normal(size=(2000, 4))
    values, ses = [], []
    for i in range(40):
        a = rng.normal(size=(400, 4)) + 0.5
        v, lo, hi = fd_interval(a, b, n_sub=20, seed=i)
        assert lo <= v <= hi
        values.append(v)
        ses.append((hi - v) / 1.959963984540054)
    ratio = np.mean(ses) / np.std(values, ddof=1)
    assert 0.6 < ratio < 1.6, ratio


def test_interval_of_a_tiny_set_is_undefined(rng):
    from cfedit.evaluation.realism import fd_interval

    v, lo, hi = fd_interval(rng.normal(size=(3, 2)), rng.normal(size=(50, 2)))
    assert np.isfinite(v) and np.isnan(lo) and np.isnan(hi)


class _Identity:
    """A 'feature network' whose features are the numbers themselves."""

    def features(self, x):
        return np.asarray(x, dtype=np.float64)


def test_parts_pool_and_split_the_distance(rng):
    """realism_parts: the pooled FD is the FD of the concatenated sets; each part's is its own (closed form for
    Gaussians: a part shifted by 1 in 3 dimensions is at 3, an unshifted one near 0), each with its own floor."""
    n = 20_000
    real = [rng.normal(size=(n, 3)), rng.normal(size=(n, 3))]
    other = [rng.normal(size=(n, 3)), rng.normal(size=(n, 3))]
    edits = [rng.normal(size=(n, 3)) + 1.0, rng.normal(size=(n, 3))]
    pooled, parts = realism_parts(_Identity(), edits, real, other, n_sub=4)
    assert pooled.value == pytest.approx(frechet_distance(np.concatenate(edits), np.concatenate(real)))
    assert pooled.floor == pytest.approx(frechet_distance(np.concatenate(other), np.concatenate(real)))
    assert parts[0].value == pytest.approx(3.0, rel=0.05) and parts[1].value < 0.01
    assert parts[1].floor == pytest.approx(frechet_distance(other[1], real[1])) and parts[0].n == n
