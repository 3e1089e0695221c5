"""The faces world: the paper's diagram, its exact queries against closed forms, and the renderer."""

import numpy as np
import pytest

from cfedit.bounds import optimal_bounds
from cfedit.core.query import parse_query
from cfedit.errors import CfeditError
from cfedit.worlds import get_world
from cfedit.worlds.faces import N_IDENTITY, FaceRenderer, FacesOracle


@pytest.fixture(scope="module")
def world():
    return get_world("faces")


def test_exactly_the_papers_diagram(world):
    g = world.graph
    assert set(g.nodes) == {"Gender", "Age", "GrayHair"}
    assert {tuple(e) for e in g.directed} == {("Age", "GrayHair")}
    assert [set(e) for e in g.bidirected] == [{"Gender", "Age"}]


def test_old_faces_more_often_male_and_gray_hair_follows_age(world):
    p = world.scm.observational()  # axes Gender, Age, GrayHair
    # by hand: P(S)=0.5, P(male | S) = 0.3, 0.8, P(old | S) = 0.2, 0.6
    p_male = 0.5 * 0.3 + 0.5 * 0.8
    assert p[1].sum() == pytest.approx(p_male)
    assert p[1, 1].sum() / p[1].sum() == pytest.approx((0.5 * 0.8 * 0.6 + 0.5 * 0.3 * 0.2) / p_male)
    assert p[0, 1].sum() / p[0].sum() == pytest.approx((0.5 * 0.2 * 0.6 + 0.5 * 0.7 * 0.2) / (1 - p_male))
    gray = p.sum(axis=0)  # Age, GrayHair
    assert gray[1, 1] / gray[1].sum() == pytest.approx(0.7) and gray[0, 1] / gray[0].sum() == pytest.approx(0.1)


def test_documented_queries_truths_and_bounds(world):
    """Kept queries are 1 with bounds [1, 1]; gray hair under do(Age=old) is P(GrayHair=1 | old) = 0.7 when
    identified; with GrayHair=0 in the evidence the coupling of the two ages' noises is free (Frechet:
    [(0.7 - 0.1) / 0.9, 0.7 / 0.9]) and the truth (independent noises) is 0.7, strictly inside."""
    p_v = world.scm.observational()
    expect = {
        "P(Gender[Age=old]=female | Gender=female, Age=young)": (1.0, 1.0, 1.0),
        "P(Age[Gender=male]=young, GrayHair[Gender=male]=0 | Gender=female, Age=young, GrayHair=0)": (1.0, 1.0, 1.0),
        "P(Gender[GrayHair=1]=female, Age[GrayHair=1]=young | Gender=female, Age=young, GrayHair=0)": (1.0, 1.0, 1.0),
        "P(GrayHair[Age=old]=1 | Gender=female, Age=young)": (0.7, 0.7, 0.7),
        "P(GrayHair[Age=old]=1 | Gender=female, Age=young, GrayHair=0)": (0.7, 0.6 / 0.9, 0.7 / 0.9),
    }
    assert set(world.queries) == set(expect)
    for text, (truth, lo, hi) in expect.items():
        q = parse_query(text, world.domains)
        b = optimal_bounds(q, world.graph, world.domains, p_v)
        assert world.scm.probability(q) == pytest.approx(truth), text
        assert (b.lower, b.upper) == pytest.approx((lo, hi), abs=1e-6), text
    q = parse_query("P(GrayHair[Age=old]=1 | Gender=female, Age=young, GrayHair=0)", world.domains)
    b = optimal_bounds(q, world.graph, world.domains, p_v)
    assert 0 < b.lower < world.scm.probability(q) < b.upper < 1 and not b.identified


def _units(world, n=24, split="eval", seed=0):
    a = world.ascm(split, oracle=False)
    return a, a.units(n, seed)


def test_images_are_64x64_rgb_and_deterministic(world):
    a, u = _units(world)
    x = a.factual(u)
    assert x.shape == (24, 3, 64, 64) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
    np.testing.assert_array_equal(x, a.factual(u))
    assert x.std(axis=0).mean() > 0.05  # faces differ from one another
    # a repeated (identity, factors) row is drawn once and copied: same images as drawn one by one
    rep = {k: np.repeat(v[:3], 2) for k, v in u.v.items()}
    np.testing.assert_array_equal(a.image.generate(rep, np.repeat(u.u_image[:3], 2, axis=0)), np.repeat(x[:3], 2, axis=0))


def test_counterfactual_keeps_identity_and_each_factor_shows(world):
    a, u = _units(world)
    x = a.factual(u)
    corner = (slice(None), slice(None), slice(0, 6), slice(0, 6))  # background: identity only
    for k in world.domains.names:
        flipped = {n: (1 - v if n == k else v) for n, v in u.v.items()}
        y = a.image.generate(flipped, u.u_image)
        np.testing.assert_array_equal(y[corner], x[corner])
        changed = np.abs(y - x).reshape(len(x), -1).max(axis=1)
        assert (changed > 0.15).all(), k  # every face shows the factor somewhere
        assert np.abs(y - x).mean() < 0.1  # and the rest of the face stays
    v_cf, cf = a.counterfactual(u, {"Age": 1})
    np.testing.assert_array_equal(v_cf["Gender"], u.v["Gender"])
    same = v_cf["Age"] == u.v["Age"]
    same &= v_cf["GrayHair"] == u.v["GrayHair"]
    np.testing.assert_array_equal(cf[same], x[same])  # units the action does not change keep their image exactly


def test_gray_hair_is_grey(world):
    """GrayHair=1 turns the hair grey: the top of the head (hair in every style) loses colour saturation."""
    a, u = _units(world, 64)
    top = (slice(None), slice(None), slice(6, 12), slice(28, 36))
    sat = {}
    for g in (0, 1):
        x = a.image.generate({**u.v, "GrayHair": np.full(64, g)}, u.u_image)[top]
        sat[g] = (x.max(axis=1) - x.min(axis=1)).mean(axis=(1, 2))
    assert (sat[1] < sat[0]).mean() > 0.8


def test_identity_splits_differ_for_one_seed(world):
    _, tr = _units(world, 8, "train")
    _, ev = _units(world, 8, "eval")
    assert tr.u_image.shape == (8, N_IDENTITY)
    assert not np.isclose(tr.u_image[:, None], ev.u_image[None]).all(axis=2).any()
    for k in tr.u:
        np.testing.assert_array_equal(tr.u[k], ev.u[k])  # the factors' noise is the same; only identities differ


def test_bad_inputs_are_refused(world):
    with pytest.raises(CfeditError, match="renders its own images"):
        world.ascm("eval", data_dir="/tmp")
    with pytest.raises(CfeditError, match="unknown split"):
        FaceRenderer("test")
    with pytest.raises(CfeditError, match=r"identities must be \(N, 25\)"):
        FaceRenderer().generate({k: np.zeros(2, int) for k in world.domains.names}, np.zeros(2))
    with pytest.raises(CfeditError, match=r"\(N, 3, 64, 64\)"):
        FacesOracle(None)(np.zeros((1, 3, 28, 28)))
