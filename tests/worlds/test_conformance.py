"""Every registered world keeps the promises generic code relies on (a new world is tested by registering it):
its figure actions and documented queries are valid, each query's truth lies inside its optimal bounds, the
null counterfactual is the factual image, its oracle reads its renders at the accuracy the world states, and
its mechanisms are described by data that survives ``python -OO`` (that check also runs over the worlds with
continuous factors; the others need an exact table: see tests/worlds/test_morpho.py for those worlds' own checks)."""

import subprocess
import sys

import numpy as np
import pytest

from cfedit.bounds import optimal_bounds
from cfedit.core.query import parse_query
from cfedit.evaluation.metrics import wilson
from cfedit.evaluation.protocol import check_queries
from cfedit.worlds import continuous_world_names, get_world, world_names

N_UNITS = 200  # units per check: renders of 64x64 faces are the slowest part (about 1 ms each)


@pytest.fixture(scope="module", params=world_names())
def world(request):
    return get_world(request.param)


def test_figure_actions_and_the_reversibility_factor_are_valid(world):
    assert len(world.figure_actions) >= 2
    a = world.ascm("eval", oracle=False)
    units = a.units(8, seed=0)
    for action in world.figure_actions:
        do = world.domains.encode(action)  # names and values exist
        v_cf, images = a.counterfactual(units, do)
        for k, x in do.items():
            assert (v_cf[k] == x).all()  # the action is set in every unit
        assert images.shape == (8, *world.image_shape)
    assert world.reversibility == "" or world.reversibility in world.domains.names


def test_documented_queries_have_the_edit_form_and_their_truth_inside_the_optimal_bounds(world):
    """check_queries is what the evaluation reads: one intervened world in the outcome, factual evidence. The
    bounds use the world's exact P(V), so they must hold its true value."""
    assert check_queries(world)
    p_v = world.scm.observational()
    assert p_v.shape == world.domains.shape and p_v.sum() == pytest.approx(1.0)
    for text in world.queries:
        q = parse_query(text, world.domains)
        b = optimal_bounds(q, world.graph, world.domains, p_v)
        truth = world.scm.probability(q)
        assert b.lower - 1e-9 <= truth <= b.upper + 1e-9, (text, b.lower, truth, b.upper)


def test_the_null_counterfactual_is_the_factual_image(world):
    a = world.ascm("eval", oracle=False)
    units = a.units(24, seed=1)
    factual = a.factual(units)
    v, images = a.counterfactual(units, {})
    assert factual.shape == (24, *world.image_shape) and factual.dtype == np.float32
    assert 0 <= factual.min() and factual.max() <= 1
    np.testing.assert_array_equal(images, factual)
    for k in world.domains.names:
        np.testing.assert_array_equal(v[k], units.v[k])


@pytest.mark.slow  # trains the world's oracle reader the first time (cached after: minutes for the faces world)
def test_the_oracle_reads_renders_at_the_stated_accuracy(world):
    """On units of the evaluation split (identities or handwriting slots no editor trained on), factual images and
    the counterfactual images of every figure action: per factor, the Wilson 95% interval of the share read right
    must reach the accuracy the world states (a stated 1 needs every read right)."""
    assert set(world.stated_accuracy) == set(world.domains.names)
    a = world.ascm("eval")
    units = a.units(N_UNITS, seed=2)
    sets = [(units.v, a.factual(units))] + [a.counterfactual(units, world.domains.encode(d)) for d in world.figure_actions]
    hits = {k: 0 for k in world.domains.names}
    for v, images in sets:
        read = a.oracle(images)
        for k in hits:
            hits[k] += int(np.sum(np.asarray(read[k]) == np.asarray(v[k])))
    n = N_UNITS * len(sets)
    for k, stated in world.stated_accuracy.items():
        e = wilson(hits[k], n)
        assert e.upper >= stated, f"{world.name}: the oracle reads {k} right on {hits[k]}/{n} renders, below {stated}"


@pytest.mark.parametrize("name", world_names() + continuous_world_names())
def test_the_mechanisms_are_described_under_python_OO(name):
    """``python -OO`` drops docstrings: a world's mechanism text must not come from one."""
    code = ("import sys; from cfedit.worlds import get_world; w = get_world(sys.argv[1]); "
            "assert __doc__ is None and get_world.__doc__ is None; print(w.mechanisms)")
    out = subprocess.run([sys.executable, "-OO", "-c", code, name], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    text = out.stdout.strip()
    assert text == get_world(name).mechanisms.strip()
    assigned = {line.split(":=")[0].strip() for line in text.splitlines() if ":=" in line}
    assert assigned == set(get_world(name).domains.names)  # a structural equation for every factor
