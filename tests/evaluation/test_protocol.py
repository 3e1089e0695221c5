"""The evaluation suite on editors with known answers: the oracle (ideal everywhere) and an editor that
ignores the intervention (ideal on null edits, wrong wherever the action should change something)."""

import dataclasses

import numpy as np
import pytest
import torch

from cfedit.editors.base import Editor
from cfedit.editors.oracle import Oracle
from cfedit.errors import CfeditError
from cfedit.evaluation.protocol import EvalConfig, check_queries, evaluate, read_distinct
from cfedit.worlds import get_world


class IgnoresTheAction(Editor):
    """Returns the factual image and factors whatever the intervention (labels must be given)."""

    def __init__(self):
        self.domains, self.image_shape = get_world("backdoor").domains, (3, 28, 28)

    def label(self, images):
        raise AssertionError("the protocol gives every editor the oracle's reading")

    def abduct(self, images, v, n_samples, generator):
        return {k: t.repeat_interleave(n_samples) for k, t in v.items()}, images.repeat_interleave(n_samples, 0)

    def predict(self, u_v, u_i, do):
        return u_v, u_i


class Noise(IgnoresTheAction):
    def predict(self, u_v, u_i, do):
        return u_v, torch.rand(u_i.shape, generator=torch.Generator().manual_seed(len(u_i)))


@pytest.fixture(scope="module")
def results():
    return evaluate(get_world("backdoor"), {"oracle": Oracle, "ignore": IgnoresTheAction()},
                    EvalConfig(n_units=400, realism=False))


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


def test_oracle_accuracy_is_measured_on_the_run(results):
    acc = results["oracle accuracy"]
    assert set(acc) == {"D", "C", "B"} and all(a["n"] == 400 for a in acc.values())
    assert acc["C"]["value"] == 1.0 and acc["B"]["value"] == 1.0  # read exactly from pixels
    assert 0.98 < acc["D"]["value"] <= 1.0  # the reference CNN knows the world's handwriting


def test_reader_aware_band_is_the_bounds_widened_by_the_oracles_worst_class(results):
    """The world protocol's reader-aware verdict: eps from the oracle's misreads of these same factual images,
    recounted here by hand (worst class by its one-sided Clopper-Pearson upper limit), and the band [l(1-eps),
    u+(1-u)eps]; a broken editor stays outside it where it misses by more than misreads could explain."""
    from scipy.stats import beta

    w = get_world("backdoor")
    a = w.ascm("eval")
    units = a.units(400, EvalConfig().seed)
    read = a.oracle(a.factual(units))
    uppers = {}
    for f in w.domains.names:
        limits = []
        for c in range(w.domains.size(f)):
            mask = np.asarray(units.v[f]) == c
            k, n = int(np.sum(np.asarray(read[f])[mask] != c)), int(mask.sum())
            limits.append(1.0 if n == 0 or k == n else beta.ppf(0.95, k + 1, n - k))
        uppers[f] = max(limits)
        assert results["oracle misreads"][f]["upper"] == pytest.approx(uppers[f])
    n_c = min(int(np.sum(np.asarray(units.v["C"]) == c)) for c in range(w.domains.size("C")))
    assert uppers["C"] == pytest.approx(1 - 0.05 ** (1 / n_c))  # colour is read exactly: 0 misread, the limit of n_c reads
    for q, parsed in zip(results["queries"], check_queries(w)):
        eps = min(1.0, sum(uppers[f] for f in {a.var for a in parsed.outcome}))
        assert q["misread bound"] == pytest.approx(eps)
        lo, hi = q["reader-aware band"]
        assert lo == pytest.approx(q["lower"] * (1 - eps)) and hi == pytest.approx(q["upper"] + (1 - q["upper"]) * eps)
        assert q["methods"]["oracle"]["inside (reader-aware)"]
        assert q["methods"]["oracle"]["inside"] <= q["methods"]["oracle"]["inside (reader-aware)"]  # only widened
    aware = {q["query"]: q["methods"]["ignore"]["inside (reader-aware)"] for q in results["queries"]}
    assert not aware["P(B[C=green]=1 | D=7, C=red)"] and not aware["P(B[D=2]=1 | D=7, C=red)"]


def test_truth_inside_bounds_for_every_documented_query(results):
    for q in results["queries"]:
        assert q["lower"] - 1e-9 <= q["truth"] <= q["upper"] + 1e-9


def test_realism_oracle_near_floor_noise_far():
    res = evaluate(get_world("backdoor"), {"oracle": Oracle, "noise": Noise()},
                   EvalConfig(n_units=300, realism=True))
    o, n = res["metrics"]["oracle"]["realism FD"], res["metrics"]["noise"]["realism FD"]
    assert o["network"] == n["network"] and len(o["network"]) == 12  # the feature network is named in the results
    assert o["value"] < 3 * o["floor"] + 1.0
    assert n["value"] > 10 * o["value"]


def test_world_without_queries_is_refused():
    w = get_world("backdoor")
    empty = dataclasses.replace(w, queries=())
    with pytest.raises(CfeditError, match="documents no queries"):
        check_queries(empty)


class ClaimsTheAction(IgnoresTheAction):
    """Says it set the intervened factors but returns the factual images: what faithfulness must catch."""

    def predict(self, u_v, u_i, do):
        return {k: torch.full_like(t, do[k]) if k in do else t for k, t in u_v.items()}, u_i


def test_faithfulness_compares_the_reading_of_an_edit_with_the_editors_own_factors(results):
    oracle, ignore = results["metrics"]["oracle"], results["metrics"]["ignore"]
    for k in ("D", "C", "B"):
        assert ignore[f"faithfulness ({k})"]["value"] == 1.0  # its images carry the (factual) factors it reports
        assert oracle[f"faithfulness ({k})"]["value"] > 0.99
    claims = evaluate(get_world("backdoor"), {"claims": ClaimsTheAction()},
                      EvalConfig(n_units=200, n_samples=2, realism=False, composition_steps=0, reversibility=""))
    a = get_world("backdoor").ascm("eval")
    before = a.oracle(a.factual(a.units(200, 1)))  # the readings of its (unchanged) images
    dos = [dict(q.outcome[0].do) for q in check_queries(get_world("backdoor"))]
    dos = [d for i, d in enumerate(dos) if d not in dos[:i]]
    for k in ("D", "C", "B"):  # wrong exactly where it claims a value that the factual image does not carry
        wrong = sum(float(np.mean(before[k] != d[k])) for d in dos if k in d) / len(dos)
        assert 0 < wrong and claims["metrics"]["claims"][f"faithfulness ({k})"]["value"] == pytest.approx(1 - wrong)


def test_read_distinct_reads_each_distinct_image_once():
    rng = np.random.default_rng(0)
    base = rng.random((4, 3, 5, 5)).astype(np.float32)
    pick = np.array([2, 0, 2, 3, 0, 0, 1, 3])
    images = base[pick]
    images[4, 0, 0, 0] += 1e-3  # a one-pixel difference makes this repeat of image 0 another image
    seen = []

    def reader(x):
        seen.append(len(x))
        return {"A": x.reshape(len(x), -1).sum(axis=1), "B": (x[:, 0, 0, 0] > 0.5).astype(int)}

    out = read_distinct(reader, images)
    assert seen == [5]
    full = reader(images)
    for k in full:
        np.testing.assert_array_equal(out[k], full[k])
    seen.clear()
    read_distinct(reader, base)
    assert seen == [4]
