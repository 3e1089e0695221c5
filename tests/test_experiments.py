"""The evaluation suite on editors with known answers: the oracle (ideal everywhere) and an editor that
ignores the intervention (ideal on null edits, wrong wherever the action should change something)."""

import numpy as np
import pytest

from cfedit.ancm import EditResult
from cfedit.errors import CfeditError
from cfedit.experiments import EvalConfig, check_queries, evaluate
from cfedit.worlds import World, get_world


class IgnoresTheAction:
    """Returns the factual image and factors whatever the intervention."""

    def edit(self, images, do, n_samples=1, labels=None, seed=0):
        rep = lambda a: np.repeat(np.asarray(a)[:, None], n_samples, axis=1)  # noqa: E731
        return EditResult(rep(images), {k: rep(v) for k, v in labels.items()}, dict(labels))


class Noise(IgnoresTheAction):
    def edit(self, images, do, n_samples=1, labels=None, seed=0):
        r = super().edit(images, do, n_samples, labels, seed)
        noise = np.random.default_rng(seed).random(r.images.shape).astype(np.float32)
        return EditResult(noise, r.factors, r.factual)


@pytest.fixture(scope="module")
def results():
    return evaluate(get_world("backdoor"), {"oracle": "oracle", "ignore": IgnoresTheAction()},
                    EvalConfig(n_units=400, realism=False), log=lambda s: None)


def test_oracle_scores_ideal_values(results):
    m = results["metrics"]["oracle"]
    for k in ("null-edit error", "composition error (10 null edits)", "reversibility error (C)",
              "ground-truth error", "minimality excess"):
        assert m[k]["value"] == 0.0, k
    assert m["preservation"]["value"] == 1.0
    assert m["effectiveness"]["value"] > 0.995  # the oracle's reader knows the world's handwriting (0.999)
    assert all(q["methods"]["oracle"]["inside"] for q in results["queries"])


def test_an_editor_that_ignores_the_action_is_caught(results):
    m = results["metrics"]["ignore"]
    assert m["null-edit error"]["value"] == 0.0 and m["composition error (10 null edits)"]["value"] == 0.0
    assert m["effectiveness"]["value"] < 0.6
    assert m["ground-truth error"]["value"] > 0.01
    assert m["minimality excess"]["value"] < 0  # it moves less than the true counterfactual does
    outside = [q["query"] for q in results["queries"] if not q["methods"]["ignore"]["inside"]]
    assert "P(B[C=green]=1 | D=7, C=red)" in outside and "P(B[D=2]=1 | D=7, C=red)" in outside


def test_truth_inside_bounds_for_every_documented_query(results):
    for q in results["queries"]:
        assert q["lower"] - 1e-9 <= q["truth"] <= q["upper"] + 1e-9


def test_realism_oracle_near_floor_noise_far():
    res = evaluate(get_world("backdoor"), {"oracle": "oracle", "noise": Noise()},
                   EvalConfig(n_units=300, realism=True), log=lambda s: None)
    o, n = res["metrics"]["oracle"]["realism FD"], res["metrics"]["noise"]["realism FD"]
    assert o["value"] < 3 * o["floor"] + 1.0
    assert n["value"] > 10 * o["value"]


def test_world_without_queries_is_refused():
    w = get_world("backdoor")
    empty = World(w.name, w.description, w.reference, w.scm, ())
    with pytest.raises(CfeditError, match="documents no queries"):
        check_queries(empty)
