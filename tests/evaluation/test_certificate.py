"""The per-image certificate: its bounds are the optimal bounds of the implied queries, its estimates the
Wilson proportions of the edits' readings, its verdicts the evaluation's overlap test.

A scripted editor writes the factors it generates into three pixels and its labeller reads them back, so
each test knows exactly what the k edits show."""

from collections.abc import Mapping

import numpy as np
import pytest
import torch

from cfedit.bounds import optimal_bounds
from cfedit.core.domains import Domains
from cfedit.core.query import parse_query
from cfedit.editors.base import CausalEditor, Editor, TrainingRecord
from cfedit.errors import CfeditError, DomainError
from cfedit.evaluation.certificate import certify
from cfedit.evaluation.metrics import wilson
from cfedit.runs import QueryBounds, Run, matching_world
from cfedit.worlds import get_world

W = get_world("backdoor")  # D <-> C, D -> B, C -> B


class Plain(Editor):
    """An editor with no causal model of its own (as the baselines)."""

    name = "plain"

    def __init__(self):
        self.domains, self.image_shape = W.domains, (3, 28, 28)

    label = abduct = predict = None


class Scripted(CausalEditor):
    """Keeps every factor it is not told to change; ``change[F] = (code, m)``: the first m of the k samples
    of each image get F = code. The factors are written into pixel (0, 0) of each channel."""

    name = "scripted"

    def __init__(self, change: Mapping[str, tuple[int, int]] | None = None, counts: np.ndarray | None = None):
        self.domains, self.image_shape, self.change = W.domains, (3, 28, 28), dict(change or {})
        self.graph, self.counts = W.graph, counts

    def fitted_p_v(self):
        return W.scm.observational()  # positive everywhere, as a fitted NCM's

    @property
    def label_counts(self):
        return self.counts

    @property
    def training_record(self):
        return TrainingRecord(config={}, report={})

    @staticmethod
    def draw(v: Mapping[str, torch.Tensor]) -> torch.Tensor:
        x = torch.zeros(len(v["D"]), 3, 28, 28)
        for c, f in enumerate("DCB"):
            x[:, c, 0, 0] = v[f].float() / 10
        return x

    def label(self, images):
        return {f: torch.round(images[:, c, 0, 0] * 10).long() for c, f in enumerate("DCB")}

    def abduct(self, images, v, n_samples, generator):
        return {f: t.repeat_interleave(n_samples) for f, t in v.items()}, n_samples

    def predict(self, u_v, k, do):
        v = {f: t.clone() for f, t in u_v.items()}
        sample = torch.arange(len(v["D"])) % k
        for f, (code, m) in self.change.items():
            v[f][sample < m] = code
        for f, c in do.items():
            v[f][:] = c
        return v, self.draw(v)


@pytest.fixture(scope="module")
def bounds():
    return QueryBounds.for_editor(Scripted(), W)


def image(d=7, c="red", b="0"):
    v = W.domains.encode({"D": d, "C": c, "B": b})
    return Scripted.draw({f: torch.tensor([x]) for f, x in v.items()})[0].numpy()


def test_non_descendants_are_kept_with_bounds_one(bounds):
    """do(B=1): D and C are non-descendants of B, so P(D[B=1]=7 | v) and P(C[B=1]=red | v) are identified
    as 1; an editor that keeps them is consistent, and their other values are left out (bounds [0, 0])."""
    cert = certify(Scripted(), image(), {"B": "1"}, 8, 0, bounds)
    assert cert.factual == {"D": 7, "C": 1, "B": 0} and cert.do == {"B": 1}
    assert [(r.factor, r.value) for r in cert.rows] == [("D", 7), ("C", 1)]
    for r in cert.rows:
        assert r.kept and r.bounds.identified and r.bounds.lower == pytest.approx(1) and r.bounds.upper == pytest.approx(1)
        assert r.estimate.value == 1 and r.consistent
    assert cert.omitted == 9 + 1  # D's nine other digits, C's other colour
    assert cert.distributions["B"].tolist() == [0, 1]  # the intervened factor reads as set


def test_an_editor_that_changes_a_non_descendant_is_caught(bounds):
    """Half of the edits turn the colour green under do(B=1): the 'kept' row's estimate is 4/8 with the
    Wilson interval of 4 in 8, which misses [1, 1]; the row C=green (bounds [0, 0]) is shown and fails too."""
    cert = certify(Scripted({"C": (0, 4)}), image(), {"B": "1"}, 8, 0, bounds)
    rows = {(r.factor, r.value): r for r in cert.rows}
    kept, moved = rows[("C", 1)], rows[("C", 0)]
    assert kept.estimate == wilson(4, 8) and not kept.consistent
    assert moved.bounds.upper == pytest.approx(0) and moved.estimate.value == 0.5 and not moved.consistent
    assert cert.distributions["C"].tolist() == [0.5, 0.5]
    assert rows[("D", 7)].consistent


def test_bounds_are_the_optimal_bounds_of_each_query(bounds):
    """do(C=green) on (D=7, C=red, B=0): B is a descendant; every row's bounds equal optimal_bounds on the
    query text it shows, and the truth is the world's value, inside them."""
    cert = certify(Scripted({"B": (1, 3)}), image(), {"C": "green"}, 8, 1, bounds)
    assert {(r.factor, r.value) for r in cert.rows} == {("D", 7), ("B", 0), ("B", 1)}
    p_v = W.scm.observational()
    for r in cert.rows:
        text = r.query.format(W.domains)
        direct = optimal_bounds(parse_query(text, W.domains), W.graph, W.domains, p_v)
        assert (r.bounds.lower, r.bounds.upper) == pytest.approx((direct.lower, direct.upper))
        assert r.truth == pytest.approx(W.scm.probability(r.query)) and r.bounds.contains(r.truth, 1e-6)
        hits = int(np.sum(cert.readings[r.factor] == r.value))
        assert r.estimate == wilson(hits, 8)
        assert r.consistent == (r.estimate.upper >= r.bounds.lower - 1e-9 and r.estimate.lower <= r.bounds.upper + 1e-9)
    b = {r.value: r for r in cert.rows if r.factor == "B"}
    assert not b[1].bounds.identified and b[1].bounds.lower < b[1].bounds.upper  # the bar's counterfactual is not identified
    assert b[0].bounds.lower == pytest.approx(1 - b[1].bounds.upper)  # the two values' bounds mirror each other
    assert b[1].estimate.value == pytest.approx(3 / 8)


def test_an_identified_query_collapses_and_labels_given_replace_the_reading(bounds):
    """Several factors at once, with labels given (D=3, C=green, B=1) as v instead of the image's pixels.
    do(D=3, C=green) sets B's parents to their factual values, so P(B[D=3, C=green] = 1 | v) is identified
    (= 1, by consistency): its bounds collapse. do(D=2, C=green) leaves B's own noise free: not identified,
    and the truth lies inside."""
    cert = certify(Scripted(), image(), {"D": "3", "C": "green"}, 4, 0, bounds, labels={"D": "3", "C": "green", "B": "1"})
    assert cert.factual == {"D": 3, "C": 0, "B": 1}
    [r] = cert.rows
    assert (r.factor, r.value) == ("B", 1) and r.bounds.identified and r.bounds.lower == pytest.approx(1) == r.bounds.upper
    other = certify(Scripted(), image(), {"D": "2", "C": "green"}, 4, 0, bounds, labels={"D": "3", "C": "green", "B": "1"})
    [r] = other.rows
    assert not r.bounds.identified and r.bounds.lower < r.truth <= r.bounds.upper + 1e-9


def test_json_form_and_refusals(bounds):
    cert = certify(Scripted(), image(), {"B": 1}, 5, 0, bounds)
    d = cert.to_dict(W.domains)
    assert d["do"] == {"B": "1"} and d["factual"] == {"D": "7", "C": "red", "B": "0"} and d["k"] == 5
    assert d["queries"][0]["query"] == "P(D[B=1]=7 | D=7, C=red, B=0)" and d["queries"][0]["consistent"] is True
    assert d["distributions"]["C"] == {"green": 0.0, "red": 1.0} and "world backdoor" in d["p_v"]
    with pytest.raises(CfeditError, match="intervention"):
        certify(Scripted(), image(), {}, 4, 0, bounds)
    with pytest.raises(DomainError, match="blue"):
        certify(Scripted(), image(), {"C": "blue"}, 4, 0, bounds)


def test_bounds_source_and_world_matching():
    """A run of the world's graph and factors is matched to it; a foreign editor without a diagram and P(V)
    is refused with a message."""
    assert matching_world(Scripted()) is W
    plain = Plain()
    plain.domains = Domains({**W.domains.as_dict(), "B": ["0", "1", "2"]})
    assert matching_world(plain) is None
    with pytest.raises(CfeditError, match="no causal diagram"):
        QueryBounds.for_editor(plain)
    with pytest.raises(CfeditError, match="trained on the graph"):
        QueryBounds.for_editor(Scripted(), get_world("frontdoor"))


def test_bounds_from_the_runs_own_p_v_refuse_evidence_its_training_labels_never_show():
    """Without a world, P(V) is the editor's NCM; a reading the training labels never show gets no bounds
    (the NCM's mass there is its extrapolation), with the reason, while seen evidence is certified."""

    counts = np.ones(W.domains.shape, dtype=np.int64)
    counts[7, 1] = 0  # no red 7 in the training labels
    ed = Scripted(counts=counts)
    own = QueryBounds.for_editor(ed)
    assert own.source.startswith("the editor's NCM")
    cert = certify(ed, image(), {"C": "green"}, 4, 0, own)  # the image reads D=7, C=red, B=0
    assert cert.rows == () and "no bounds" in cert.note and "D=7, C=red, B=0 never occurs in the run's 38 training labels" in cert.note
    seen = certify(ed, image(), {"C": "red"}, 4, 0, own, labels={"D": "7", "C": "green", "B": "0"})
    assert seen.rows and not seen.note
    # a run: the world named, else the matching one, else the run's NCM
    assert Run.of(Scripted()).world is W and Run.of(Scripted()).bounds.world is W
    with pytest.raises(CfeditError, match="trained on the graph"):
        Run.of(Scripted(), "frontdoor")
