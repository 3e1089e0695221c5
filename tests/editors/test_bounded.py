"""Bounded editing: edits at the models attaining a query's lower and upper bound.

The image level here is the Backdoor world's own mechanism (exact abduction of the handwriting), so
that what the world's oracle reads off the edits measures the factor level, the part under test.
"""

import math

import numpy as np
import pytest
import torch

from cfedit.editors.ancm import ANCM
from cfedit.editors.base import CausalEditor
from cfedit.editors.bounded import AtModel, edit_at_extremes
from cfedit.errors import CfeditError, QueryError
from cfedit.evaluation.metrics import ctf_estimate
from cfedit.worlds import get_world

QUERY = "P(B[C=green]=1 | D=7, C=red, B=0)"  # Backdoor: not identified, optimal bounds [0.5, 0.75]


class _WorldImages:
    """The world's true image mechanism, in the torch verbs of a learned one."""

    def __init__(self, mech):
        self.mech = mech

    def abduct(self, images, v):
        return torch.as_tensor(self.mech.abduct(np.asarray(images), {k: np.asarray(t) for k, t in v.items()}))

    def generate(self, v, u_i):
        return torch.as_tensor(self.mech.generate({k: np.asarray(t) for k, t in v.items()}, np.asarray(u_i)))


class _WorldEditor(CausalEditor):
    """An editor over the world's graph whose image mechanism is the world's; it has no labeller."""

    name = "world-images"

    def __init__(self, world):
        self.graph, self.domains, self.image_shape = world.graph, world.domains, world.image_shape
        self.image = _WorldImages(world.ascm("eval", oracle=False).image)
        self.p_v = world.scm.observational()

    def fitted_p_v(self):
        return self.p_v

    label_counts = None
    training_record = None

    def label(self, images):
        raise CfeditError("no labeller: give labels")

    def abduct(self, images, v, n_samples, generator):
        raise NotImplementedError

    def predict(self, u_v, u_i, do):
        raise NotImplementedError


@pytest.fixture(scope="module")
def world():
    return get_world("backdoor")


@pytest.fixture(scope="module")
def evidence_units(world):
    """Held-out units of the world whose factors are the query's evidence D=7, C=red, B=0."""
    a = world.ascm("eval")
    units = a.units(3000, seed=5)
    x = a.factual(units)
    sel = (units.v["D"] == 7) & (units.v["C"] == 1) & (units.v["B"] == 0)
    return a, x[sel], {k: v[sel] for k, v in units.v.items()}


def test_edits_at_each_extremal_model_read_as_its_bound(world, evidence_units):
    a, x, v = evidence_units
    k = 16
    p_v = world.scm.observational()
    out = edit_at_extremes(_WorldEditor(world), x, QUERY, k, p_v=p_v, labels=v, seed=3)
    assert (out.bounds.lower, out.bounds.upper) == pytest.approx((0.5, 0.75))
    for which, bound in (("lower", 0.5), ("upper", 0.75)):
        assert out.attained(which) == pytest.approx(bound)
        # each extremal model reproduces the data's P(V)
        np.testing.assert_allclose(out.models[which].observational(), p_v, atol=1e-12)
        r = out.edits[which]
        read = a.oracle(r.images.reshape(-1, *r.images.shape[2:]))
        read = {f: t.reshape(len(x), k) for f, t in read.items()}
        assert (read["C"] == 0).all()  # the intervened factor reads as set
        assert (read["D"] == 7).mean() > 0.97  # the non-descendant D is kept (the oracle's digit reader errs rarely)
        e = ctf_estimate(out.query, v, read)  # all k * len(x) draws are i.i.d. from the model's posterior
        n = len(x) * k
        assert n >= 1500
        assert abs(e.value - bound) < 4 * math.sqrt(bound * (1 - bound) / n), (which, e)


def test_at_model_reproduces_the_models_counterfactual_law(world, evidence_units):
    """AtModel's factor level is the SCM's: its draws of B' match P_M(B_{C=green} | evidence) exactly in law."""
    _, x, v = evidence_units
    ed = AtModel(_WorldEditor(world), world.scm, "truth")
    r = ed.edit(x, {"C": "green"}, 32, labels=v, seed=0)
    truth = world.scm.probability(_parse(world, QUERY))
    n = r.factors["B"].size
    assert abs(r.factors["B"].mean() - truth) < 4 * math.sqrt(truth * (1 - truth) / n)


def _parse(world, text):
    from cfedit.core.query import parse_query

    return parse_query(text, world.domains)


def test_bad_requests_are_refused(world, evidence_units):
    _, x, v = evidence_units
    ed, p_v = _WorldEditor(world), world.scm.observational()
    with pytest.raises(QueryError, match="edit form"):
        edit_at_extremes(ed, x, "P(B=1 | D=7)", 2, p_v=p_v, labels=v)
    with pytest.raises(QueryError, match="unknown factor"):
        edit_at_extremes(ed, x, "P(Z[C=green]=1 | D=7)", 2, p_v=p_v, labels=v)
    with pytest.raises(QueryError, match="query's evidence is D=2"):  # the images show 7s
        edit_at_extremes(ed, x, "P(B[C=green]=1 | D=2, C=red)", 2, p_v=p_v, labels=v)
    p0 = p_v.copy()
    p0[7, 1, 0] = 0
    with pytest.raises(QueryError, match="probability zero"):  # evidence never seen
        edit_at_extremes(ed, x, QUERY, 2, p_v=p0 / p0.sum(), labels=v)


def test_ancm_edits_at_extremes_from_its_own_p_v(world, evidence_units, tiny_backdoor_run):
    """The API on an ANCM (barely trained: the factor level is the point): P(V) is the NCM's fit."""
    _, x, v = evidence_units
    model = ANCM.load(tiny_backdoor_run)
    out = edit_at_extremes(model, x[:4], QUERY, 3, labels={k: t[:4] for k, t in v.items()})
    table = model.ncm.table()
    for which in ("lower", "upper"):
        np.testing.assert_allclose(out.models[which].observational(), table / table.sum(), atol=1e-9)
        assert out.edits[which].images.shape == (4, 3, *world.image_shape)
        assert (out.edits[which].factors["C"] == 0).all() and (out.edits[which].factors["D"] == 7).all()
    assert out.bounds.lower <= out.attained("lower") + 1e-9 and out.attained("upper") <= out.bounds.upper + 1e-9


@pytest.fixture(scope="module")
def run_without_red_sevens(world, tmp_path_factory, tiny_ancm_config):
    """A tiny ANCM saved to disk, trained on Backdoor units with every (D=7, C=red) unit removed, and those labels."""

    data = world.dataset(500, seed=1)
    keep = np.flatnonzero(~((data.labels["D"] == 7) & (data.labels["C"] == 1)))
    data = data.subset(keep)
    out = tmp_path_factory.mktemp("nored7") / "run"
    ANCM.fit(world.graph, data, tiny_ancm_config, out_dir=out, log=None)
    return out, data.labels


def test_the_run_records_its_training_labels_counts(world, run_without_red_sevens):
    run, labels = run_without_red_sevens
    model = ANCM.load(run)
    counts = model.label_counts
    assert counts.shape == world.domains.shape and counts.sum() == len(labels["D"])
    for d, c, b in [(7, 1, 0), (7, 1, 1), (3, 0, 1), (1, 1, 0)]:
        assert counts[d, c, b] == np.sum((labels["D"] == d) & (labels["C"] == c) & (labels["B"] == b))
    assert counts[7, 1].sum() == 0 and model.ncm.table()[7, 1].min() > 0  # the NCM still puts mass there


def test_bounded_editing_refuses_evidence_the_training_labels_never_show(world, evidence_units, run_without_red_sevens):
    _, x, _ = evidence_units
    run, labels = run_without_red_sevens
    model = ANCM.load(run)
    v = {"D": np.full(2, 7), "C": np.ones(2, int), "B": np.zeros(2, int)}
    with pytest.raises(QueryError, match=r"D=7, C=red, B=0 never occurs in the run's 4\d\d training labels"):
        edit_at_extremes(model, x[:2], QUERY, 2, labels=v)
    with pytest.raises(QueryError, match="D=7, C=red never occurs"):  # partial evidence, summed over B
        edit_at_extremes(model, x[:2], "P(B[C=green]=1 | D=7, C=red)", 2, labels=v)
    # evidence the data has: edited, with the count it rests on
    seen = int(np.sum((labels["D"] == 7) & (labels["C"] == 0) & (labels["B"] == 0)))
    v_green = {**v, "C": np.zeros(2, int)}
    out = edit_at_extremes(model, x[:2], "P(B[C=red]=1 | D=7, C=green, B=0)", 2, labels=v_green)
    assert seen > 0 and f"occurs in {seen:,} of the run's {len(labels['D']):,} training labels" in out.note
    # with the data's own P(V) given, the NCM's support is not consulted and the note is empty
    p_v = world.scm.observational()
    assert edit_at_extremes(model, x[:2], QUERY, 2, p_v=p_v, labels=v).note == ""


def test_runs_without_the_record_are_flagged_and_a_damaged_record_is_refused(world, evidence_units, run_without_red_sevens,
                                                                           tmp_path):
    import json
    import shutil

    from cfedit.errors import CheckpointError

    _, x, v = evidence_units
    run, _ = run_without_red_sevens
    old = tmp_path / "old"
    shutil.copytree(run, old)
    cfg = json.loads((old / "config.json").read_text())
    del cfg["fit"]["label_counts"]  # as a run trained before the record existed
    (old / "config.json").write_text(json.dumps(cfg))
    out = edit_at_extremes(ANCM.load(old), x[:2], QUERY, 2, labels={k: t[:2] for k, t in v.items()})
    assert "records no counts of its training labels" in out.note and "not checked" in out.note
    for bad in ([1, 2, 3], [-1] * 40, "many", [0] * 40):
        cfg["fit"]["label_counts"] = bad
        (old / "config.json").write_text(json.dumps(cfg))
        with pytest.raises(CheckpointError, match="record of its training labels"):
            ANCM.load(old)
