"""Morpho-MNIST morphometrics: the measurement (thickness, intensity) and rendering at set values."""

import numpy as np
import pytest

pytest.importorskip("skimage")

from cfedit.data.mnist import load_pools  # noqa: E402
from cfedit.errors import CfeditError  # noqa: E402
from cfedit.worlds import morphometrics as mm  # noqa: E402


@pytest.fixture(scope="module")
def digits():
    return load_pools().eval_images[:40]


def test_fast_medial_axis_is_scikit_images(digits):
    """The cached-table medial axis returns exactly scikit-image's (same skeleton, same distance map)."""
    from skimage import morphology

    for g in digits[:12]:
        binary = mm.crop_to_stroke(mm.upsampled_binary(g / 255.0))
        skel, dist = mm.medial_axis(binary)
        ref_skel, ref_dist = morphology.medial_axis(binary, return_distance=True, rng=0)
        assert np.array_equal(skel, ref_skel) and np.array_equal(dist, ref_dist)


@pytest.mark.parametrize("width", [2, 3, 4])
def test_thickness_of_a_long_bar_is_its_width(width):
    """A 22-pixel bar ``width`` pixels tall, sharp edges: the medial axis runs along its middle at
    distance width/2 (the short branches to its corners pull the mean down a little)."""
    img = np.zeros((28, 28))
    img[12:12 + width, 3:25] = 1.0
    assert mm.thickness_of(img) == pytest.approx(width, abs=0.2)


def test_intensity_is_the_median_of_the_bright_half():
    img = np.zeros((28, 28))
    img[5:20, 10:14] = 0.6
    img[5:8, 10:14] = 0.9  # a fifth of the strokes brighter: the median stays 0.6
    assert mm.intensity_of(img) == pytest.approx(0.6 * 255)
    assert mm.measure(img[None, None]).intensity[0] == pytest.approx(153.0)


def test_measure_refuses_colour_images():
    with pytest.raises(CfeditError, match="grey images"):
        mm.measure(np.zeros((2, 3, 28, 28)))


def test_renders_meet_thickness_and_intensity(digits):
    """The acceptance figures: on true renders, thickness MAE below 0.1 pixel and every intensity within
    2 grey levels of the target, over the whole range (both ends included)."""
    rng = np.random.default_rng(0)
    n = len(digits)
    t = rng.uniform(*mm.THICKNESS_RANGE, n)
    t[:4] = [mm.THICKNESS_RANGE[0], mm.THICKNESS_RANGE[0], mm.THICKNESS_RANGE[1], mm.THICKNESS_RANGE[1]]
    i = rng.uniform(*mm.INTENSITY_RANGE, n)
    images = mm.StrokeRenderer(digits).render(np.arange(n), t, i)
    assert images.shape == (n, 28, 28) and images.dtype == np.float32
    assert images.min() >= 0 and images.max() <= 1
    got = mm.measure(images)
    eff = mm.effectiveness(images, t, i)
    assert eff.thickness_mae == pytest.approx(np.abs(got.thickness - t).mean()) and eff.n == n
    assert eff.thickness_mae < 0.1 and eff.intensity_mae < 1.0
    assert mm.effectiveness(images, t + 0.5, i).thickness_mae > 0.4  # the metric sees a miss
    assert np.abs(got.thickness - t).mean() < 0.1
    assert np.abs(got.thickness - t).max() < 0.25
    assert np.abs(got.intensity - i).max() < 2.0


def test_render_keeps_the_handwriting_and_is_deterministic(digits):
    """Thin and thick renders of one handwriting overlap (same skeleton); renders repeat exactly."""
    r = mm.StrokeRenderer(digits)
    thin, thick = r.render([5, 5], [2.0, 5.0], [200.0, 200.0])
    assert ((thin > 0.5) & ~(thick > 0.25)).sum() == 0  # every thin stroke pixel lies inside the thick stroke
    assert (thick > 0.5).sum() > 1.8 * (thin > 0.5).sum()
    assert np.array_equal(r.render([5], [3.0], [150.0]), mm.StrokeRenderer(digits).render([5], [3.0], [150.0]))


def test_effectiveness_checks_lengths(digits):
    with pytest.raises(CfeditError, match="as many intended"):
        mm.effectiveness(np.zeros((2, 28, 28)), [2.0], [100.0, 100.0])


def test_render_checks_its_arguments(digits):
    with pytest.raises(CfeditError, match="as many"):
        mm.StrokeRenderer(digits).render([0, 1], [2.0], [100.0, 100.0])
