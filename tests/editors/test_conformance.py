"""Every editor keeps the promises of the edit loop (a baseline added to ``BASELINES`` is tested here by being
registered): edits have the stated shapes and range, the same seed gives the same edits, the intervened factors
take their values, and an editor that claims to keep the non-descendants of X keeps them. The ANCM and the
baselines built on it are barely trained (their factors are the point); the oracle's images are read by the
world's oracle reader, at its stated accuracy."""

import math

import numpy as np
import pytest

from cfedit.editors.ancm import ANCM
from cfedit.editors.base import Editor
from cfedit.editors.baselines import BASELINES
from cfedit.editors.oracle import Oracle
from cfedit.runs import PRETRAINED_PREFIX, Run, list_pretrained
from cfedit.worlds import get_world

N, K = 12, 2  # held-out units and samples per unit
EDITORS = ("ancm", *BASELINES, "oracle")
SHIPPED = tuple(PRETRAINED_PREFIX + a.name for a in list_pretrained())  # the package's trained editors, on their own worlds


@pytest.fixture(scope="module")
def world():
    return get_world("backdoor")


def _units(world):
    a = world.ascm("eval")
    u = a.units(N, seed=3)
    return a, u, a.factual(u)


@pytest.fixture(scope="module")
def ancm(tiny_backdoor_run):
    return ANCM.load(tiny_backdoor_run)


@pytest.fixture(scope="module", params=EDITORS + SHIPPED)
def case(request, ancm):
    """(editor, its world, (ascm, units, factual images)) for each editor: the tiny ANCM, each baseline built on
    it and the oracle on Backdoor; each shipped editor on the world it was trained on."""
    if request.param in SHIPPED:
        run = Run.load(request.param)
        return run.editor, run.world, _units(run.world)
    world = get_world("backdoor")
    a, u, x = units = _units(world)
    if request.param == "ancm":
        return ancm, world, units
    if request.param == "oracle":
        return Oracle(a, u), world, units
    return BASELINES[request.param](ancm), world, units


def _actions(world):
    return [{}] + [world.domains.encode(d) for d in world.figure_actions]


def test_edits_have_the_stated_shapes_range_and_codes(case):
    editor, world, (_, u, x) = case
    assert isinstance(editor, Editor) and editor.domains == world.domains
    for do in _actions(world):
        r = editor.edit(x, do, K, labels=u.v, seed=0)
        assert r.images.shape == (N, K, *world.image_shape) and r.images.dtype == np.float32
        assert 0 <= r.images.min() and r.images.max() <= 1 and np.isfinite(r.images).all()
        assert set(r.factors) == set(world.domains.names)
        for k in world.domains.names:
            if world.domains.is_continuous(k):  # a real value inside the factor's interval
                c = world.domains.continuous(k)
                assert r.factors[k].shape == (N, K) and ((c.lo <= r.factors[k]) & (r.factors[k] <= c.hi)).all()
            else:
                assert r.factors[k].shape == (N, K) and ((0 <= r.factors[k]) & (r.factors[k] < world.domains.size(k))).all()
            np.testing.assert_array_equal(r.factual[k], u.v[k])  # the labels given are the v it edited from


def test_the_same_seed_gives_the_same_edits(case):
    editor, world, (_, u, x) = case
    do = world.domains.encode(world.figure_actions[0])
    first, again = (editor.edit(x, do, K, labels=u.v, seed=7) for _ in range(2))
    np.testing.assert_array_equal(first.images, again.images)
    for k in world.domains.names:
        np.testing.assert_array_equal(first.factors[k], again.factors[k])


def _allowed(world, factor: str, n: int) -> int:
    """Misreads of n images the world's oracle may make at its stated accuracy s: n (1 - s) + 3 sd, rounded down."""
    s = world.stated_accuracy[factor]
    return math.floor(n * (1 - s) + 3 * math.sqrt(n * s * (1 - s)))


def test_intervened_factors_are_set_and_claimed_non_descendants_kept(case):
    """Off the factors each edit reports, and for the oracle (whose images are the world's renders) also off its
    images as the world's oracle reads them."""
    editor, world, (a, u, x) = case
    for do in _actions(world)[1:]:
        r = editor.edit(x, do, K, labels=u.v, seed=1)
        kept = world.graph.non_descendants(do) if editor.keeps_non_descendants else ()
        read = a.oracle(r.images.reshape(-1, *world.image_shape)) if isinstance(editor, Oracle) else None
        for k, value in do.items():
            assert (r.factors[k] == value).all(), (editor.name, do, k)
            if read is not None:
                assert np.sum(read[k] != value) <= _allowed(world, k, N * K), (do, k)
        for k in kept:
            factual = np.repeat(np.asarray(u.v[k])[:, None], K, axis=1)
            if world.domains.is_continuous(k):  # kept up to the float32 the networks compute in
                np.testing.assert_allclose(r.factors[k], factual, rtol=1e-6, err_msg=f"{editor.name} under {do} changed {k}")
            else:
                np.testing.assert_array_equal(r.factors[k], factual, err_msg=f"{editor.name} under {do} changed {k}")
            if read is not None:
                assert np.sum(read[k] != factual.reshape(-1)) <= _allowed(world, k, N * K), (do, k)


def test_editors_that_do_not_claim_to_keep_non_descendants_change_some(ancm, world):
    """The claim is honest both ways: the Markovian and associational baselines change a non-descendant of the
    diagram (C under do(D), D <-> C read as D -> C; any factor, resampled from P(V | x')), so they must not claim."""
    a = world.ascm("eval", oracle=False)
    u = a.units(400, seed=4)
    x = a.factual(u)
    for name, build in BASELINES.items():
        e = build(ancm)
        changed = any((e.edit(x, world.domains.encode(d), 1, labels=u.v, seed=0).factors[k][:, 0] != u.v[k]).any()
                      for d in world.figure_actions for k in world.graph.non_descendants(world.domains.encode(d)))
        assert changed != e.keeps_non_descendants, name
