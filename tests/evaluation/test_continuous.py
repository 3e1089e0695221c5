"""The evaluation of editors on the Morpho-MNIST worlds: the oracle scores at the measurement floor, an
editor that changes nothing is caught by every metric that should catch it, and the ctf rows read the
documented queries off measured edits."""

import numpy as np
import pytest
import torch

from cfedit.editors.base import Editor
from cfedit.editors.oracle import Oracle
from cfedit.errors import CfeditError
from cfedit.evaluation.continuous import ContinuousEvalConfig, evaluate_continuous
from cfedit.worlds import get_world


class Unchanged(Editor):
    """Returns the factual image whatever the action (its factors say the action was done)."""

    name = "unchanged"

    def __init__(self, world):
        self.domains, self.image_shape = world.domains, world.image_shape

    def label(self, images):
        raise NotImplementedError

    def abduct(self, images, v, n_samples, generator):
        return {k: t.repeat_interleave(n_samples) for k, t in v.items()}, images.repeat_interleave(n_samples, 0)

    def predict(self, v, images, do):
        return {k: torch.full_like(t, do[k]) if k in do else t for k, t in v.items()}, images


@pytest.fixture(scope="module")
def results():
    pytest.importorskip("skimage")
    w = get_world("morpho-confounded")
    cfg = ContinuousEvalConfig(n_units=8, query_units=8, composition_steps=2, truth_samples=4000)
    return w, evaluate_continuous(w, {"unchanged": Unchanged(w), "oracle": Oracle}, cfg)


@pytest.mark.slow
def test_oracle_scores_at_the_measurement_floor(results):
    w, r = results
    floor, oracle = r.measurement_floor, r.method("oracle")
    assert floor.thickness_mae.value < 0.05 and floor.intensity_mae.value < 0.5
    for a in oracle.actions:
        assert a.thickness_mae.value < 0.05 and a.intensity_mae.value < 0.5
    assert oracle.null_edit_error.value == 0 and oracle.composition_error.value == 0 and oracle.reversibility_error.value == 0
    assert [a.action for a in oracle.actions] == ["T=4", "I=220", "D=2"]  # the world's figure actions


@pytest.mark.slow
def test_an_editor_that_changes_nothing_fails_effectiveness_and_digits(results):
    """Its do(T=4) edits keep each unit's thickness, so the measured MAE is the mean |T - 4| of the units;
    its do(D=2) edits keep the digit, so the reader reads 2 only on units that were 2."""
    w, r = results
    a = w.ascm("eval", oracle=False)
    units = a.units(8, r.config.seed)
    by = {x.action: x for x in r.method("unchanged").actions}
    assert by["T=4"].thickness_mae.value == pytest.approx(np.abs(units.v["T"] - 4).mean(), abs=0.05)
    assert by["I=220"].intensity_mae.value == pytest.approx(np.abs(units.v["I"] - 220).mean(), abs=0.5)
    assert by["D=2"].digit_accuracy.value <= np.mean(units.v["D"] == 2) + 1e-9
    assert r.method("unchanged").composition_error.value == 0  # identity composes exactly: composition alone misses it


@pytest.mark.slow
def test_ctf_rows_read_the_documented_queries(results):
    w, r = results
    rows = {q.query: q for q in r.queries}
    assert set(rows) == {"E[I[T=3] | T=1.8, I=120]", "P(I[T=4] > 200 | T=1.8, I=120)", "P(T[I=200] > 2.5 | T=1.8)",
                         "E[T[D=2] | D=7]"}
    assert [s[0] for s in r.skipped_queries] == ["P(T > 2.5 | D=2)"]  # factual outcome: no edit answers it
    assert all(q.consistent["oracle"] for q in r.queries)
    i_row = rows["E[I[T=3] | T=1.8, I=120]"]
    assert i_row.truth_stderr == 0 and not i_row.consistent["unchanged"]  # it measures I=120, the truth is ~220.7
    assert abs(i_row.estimates["unchanged"].value - 120) < 0.5
    assert rows["P(T[I=200] > 2.5 | T=1.8)"].consistent["unchanged"]  # T is not a descendant of I: kept is right
    js = r.to_json()
    assert js["world"] == "morpho-confounded" and len(js["methods"]) == 2 and js["queries"][0]["tolerance"] >= 0


@pytest.mark.slow
def test_headline_reads_the_results_json(results):
    """The manifest's figures: the same numbers as the typed results, the consistent count out of the tested queries."""
    import json

    from cfedit.evaluation.continuous import headline

    w, r = results
    h = headline(json.loads(json.dumps(r.to_json(), default=float)), "unchanged")
    m = r.method("unchanged")
    assert h["thickness_mae"]["T=4"] == round(m.actions[0].thickness_mae.value, 4)
    assert h["null_edit_mae"] == round(m.null_edit_error.value, 4) and h["units"] == 8
    assert h["queries"] == len(r.queries) == 4 and h["queries_consistent"] == sum(q.consistent["unchanged"] for q in r.queries)
    assert r.headline("oracle")["queries_consistent"] == 4
    with pytest.raises(CfeditError, match="no method 'ancm'"):
        r.headline("ancm")


def test_categorical_worlds_are_refused():
    with pytest.raises(CfeditError, match="not a Morpho-MNIST world"):
        evaluate_continuous(get_world("backdoor"), {"oracle": Oracle})
