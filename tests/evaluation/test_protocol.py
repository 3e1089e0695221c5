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
    m = results.editors["oracle"]
    assert m.composition_steps == 10 and m.reversibility_factor == "C"
    for k in ("null_edit_error", "composition_error", "reversibility_error", "ground_truth_error", "minimality_excess"):
        assert getattr(m, k).value == 0.0, k
    assert m.preservation.value == 1.0
    assert m.effectiveness.value > 0.995  # the oracle's reader knows the world's handwriting (0.999)
    assert all(q.methods["oracle"].inside for q in results.queries)
    assert results.counts("oracle").untested == 0


def test_an_editor_that_ignores_the_action_is_caught(results):
    m = results.editors["ignore"]
    assert m.null_edit_error.value == 0.0 and m.composition_error.value == 0.0
    assert m.effectiveness.value < 0.6
    assert m.ground_truth_error.value > 0.01
    assert m.minimality_excess.value < 0  # it moves less than the true counterfactual does
    outside = [q.query for q in results.queries if not q.methods["ignore"].inside]
    assert "P(B[C=green]=1 | D=7, C=red)" in outside and "P(B[D=2]=1 | D=7, C=red)" in outside


class MisreadsBarredDigits:
    """The world's oracle, except that it reads the digit of every image with a bar as the next digit."""

    def __init__(self, oracle):
        self.oracle = oracle

    def __call__(self, images):
        read = dict(self.oracle(images))
        bar = np.asarray(read["B"]) == 1
        read["D"] = np.where(bar, (np.asarray(read["D"]) + 1) % 10, read["D"])
        return read


def test_oracle_accuracy_is_measured_on_the_run():
    """The accuracy in the results is the oracle's reading of this run's factual images against the units' true
    factors: an oracle that misreads every barred digit scores D at the share of units without a bar (recounted
    here on the same units), and C and B, which it reads exactly, at 1."""
    w = get_world("backdoor")
    wrong = dataclasses.replace(w, reader=lambda data_dir: MisreadsBarredDigits(w.reader(data_dir)))
    cfg = EvalConfig(n_units=300, n_samples=1, realism=False, composition_steps=0, reversibility="")
    res = evaluate(wrong, {"ignore": IgnoresTheAction()}, cfg)
    acc = res.reader.accuracy
    a = wrong.ascm("eval")
    units = a.units(300, cfg.seed)
    read = a.oracle(a.factual(units))
    assert set(acc) == {"D", "C", "B"} and all(e.n == 300 for e in acc.values())
    assert acc["C"].value == 1.0 and acc["B"].value == 1.0  # read exactly from pixels
    assert acc["D"].value == pytest.approx(float(np.mean(read["D"] == units.v["D"])))
    assert acc["D"].value < 0.8 and abs(acc["D"].value - np.mean(units.v["B"] == 0)) < 0.02  # the barred units' digits
    assert res.reader.misreads["D"].misread >= 1 and res.reader.kind == "oracle" and res.reader.held_out == 300


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
        assert results.reader.misreads[f].upper == pytest.approx(uppers[f])
    n_c = min(int(np.sum(np.asarray(units.v["C"]) == c)) for c in range(w.domains.size("C")))
    assert uppers["C"] == pytest.approx(1 - 0.05 ** (1 / n_c))  # colour is read exactly: 0 misread, the limit of n_c reads
    for q, parsed in zip(results.queries, check_queries(w)):
        eps = min(1.0, sum(uppers[f] for f in {a.var for a in parsed.outcome}))
        assert q.misread_bound == pytest.approx(eps)
        lo, hi = q.reader_aware_band
        assert lo == pytest.approx(q.lower * (1 - eps)) and hi == pytest.approx(q.upper + (1 - q.upper) * eps)
        assert q.methods["oracle"].inside_reader_aware
        assert q.methods["oracle"].inside <= q.methods["oracle"].inside_reader_aware  # only widened
    aware = {q.query: q.methods["ignore"].inside_reader_aware for q in results.queries}
    assert not aware["P(B[C=green]=1 | D=7, C=red)"] and not aware["P(B[D=2]=1 | D=7, C=red)"]


def test_truth_inside_bounds_for_every_documented_query(results):
    for q in results.queries:
        assert q.lower - 1e-9 <= q.truth <= q.upper + 1e-9


def test_realism_oracle_near_floor_noise_far():
    res = evaluate(get_world("backdoor"), {"oracle": Oracle, "noise": Noise()},
                   EvalConfig(n_units=300, realism=True))
    o, n = res.editors["oracle"].realism, res.editors["noise"].realism
    assert o.network == n.network and len(o.network) == 12  # the feature network is named in the results
    assert o.distance.value < 3 * o.floor + 1.0
    assert n.distance.value > 10 * o.distance.value
    for i, j in zip(res.editors["oracle"].interventions, res.editors["noise"].interventions):  # each intervention alone
        assert i.realism.network == o.network and i.realism.distance.n == 300
        assert i.realism.distance.value < 3 * i.realism.floor + 1.0 and j.realism.distance.value > 10 * i.realism.distance.value


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
    oracle, ignore = results.editors["oracle"], results.editors["ignore"]
    for k in ("D", "C", "B"):
        assert ignore.faithfulness[k].value == 1.0  # its images carry the (factual) factors it reports
        assert oracle.faithfulness[k].value > 0.99
    claims = evaluate(get_world("backdoor"), {"claims": ClaimsTheAction()},
                      EvalConfig(n_units=200, n_samples=2, realism=False, composition_steps=0, reversibility=""))
    a = get_world("backdoor").ascm("eval")
    before = a.oracle(a.factual(a.units(200, 1)))  # the readings of its (unchanged) images
    dos = [dict(q.outcome[0].do) for q in check_queries(get_world("backdoor"))]
    dos = [d for i, d in enumerate(dos) if d not in dos[:i]]
    for k in ("D", "C", "B"):  # wrong exactly where it claims a value that the factual image does not carry
        wrong = sum(float(np.mean(before[k] != d[k])) for d in dos if k in d) / len(dos)
        assert 0 < wrong and claims.editors["claims"].faithfulness[k].value == pytest.approx(1 - wrong)


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
