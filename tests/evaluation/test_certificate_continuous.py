"""The certificate of a run with continuous factors (Morpho-MNIST): its rows are the binned queries, their
bounds the optimal bounds of those queries over the world's exact binned law; without a world there are no
rows, and the note says why.

A scripted editor writes the factors it generates into three pixels (D / 10 and the positions of T and I in
their intervals) and its labeller reads them back, so each test knows exactly what the k edits show."""

from collections.abc import Mapping

import numpy as np
import pytest
import torch

from cfedit.bounds import optimal_bounds
from cfedit.core.query import parse_query
from cfedit.editors.base import CausalEditor, TrainingRecord
from cfedit.errors import CfeditError
from cfedit.evaluation.certificate import certify
from cfedit.evaluation.metrics import wilson
from cfedit.runs import QueryBounds, Run, matching_world
from cfedit.worlds import get_world
from cfedit.worlds.morpho import Binning, binned_table

W = get_world("morpho-confounded")  # D <-> T, T -> I
DOM = W.domains


class Scripted(CausalEditor):
    """Keeps every factor it is not told to change; ``change[F] = (value, m)``: the first m of the k samples
    get F = value. A continuous factor is written as its position in its interval."""

    name = "scripted"

    def __init__(self, change: Mapping[str, tuple[float, int]] | None = None, graph=W.graph):
        self.domains, self.image_shape, self.change, self.graph = DOM, (1, 28, 28), dict(change or {}), graph

    def fitted_p_v(self):
        raise CfeditError("a continuous NCM has no table of P(V)")

    label_counts = None

    @property
    def training_record(self):
        return TrainingRecord(config={}, report={})

    @staticmethod
    def draw(v: Mapping[str, torch.Tensor]) -> torch.Tensor:
        x = torch.zeros(len(v["D"]), 1, 28, 28, dtype=torch.float64)
        x[:, 0, 0, 0] = v["D"].double() / 10
        for j, f in ((1, "T"), (2, "I")):
            c = DOM.continuous(f)
            x[:, 0, 0, j] = (v[f].double() - c.lo) / (c.hi - c.lo)
        return x

    def label(self, images):
        x = images.double()
        out = {"D": torch.round(x[:, 0, 0, 0] * 10).long()}
        for j, f in ((1, "T"), (2, "I")):
            c = DOM.continuous(f)
            out[f] = c.lo + x[:, 0, 0, j] * (c.hi - c.lo)
        return out

    def abduct(self, images, v, n_samples, generator):
        return {f: t.repeat_interleave(n_samples) for f, t in v.items()}, n_samples

    def predict(self, u_v, k, do):
        v = {f: t.clone() for f, t in u_v.items()}
        sample = torch.arange(len(v["D"])) % k
        for f, (value, m) in self.change.items():
            v[f][sample < m] = value
        for f, c in do.items():
            v[f][:] = c
        return v, self.draw(v).float()


def image(d=7, t=1.8, i=120.0):
    return Scripted.draw({"D": torch.tensor([d]), "T": torch.tensor([t], dtype=torch.float64),
                          "I": torch.tensor([i], dtype=torch.float64)})[0].float().numpy()


@pytest.fixture(scope="module")
def bounds():
    return QueryBounds.for_editor(Scripted(), W)


def test_a_continuous_run_is_bounded_over_its_worlds_declared_bins(bounds):
    assert matching_world(Scripted()) is W and matching_world(Scripted(graph=get_world("morpho").graph)) is get_world("morpho")
    assert bounds.binned and bounds.domains == Binning().domains and "declared bins of T, I" in bounds.source
    assert np.allclose(bounds.p_v, binned_table(True, Binning()))


def test_rows_are_the_binned_queries_with_their_optimal_bounds(bounds):
    """do(T=4) on (D=7, T=1.8, I=120): the action is do(T in 3.5-6.5), the evidence (D=7, T in 1.5-2, I in
    100-150). Three of the eight edits move I to 230, the rest keep it; every row's bounds equal
    optimal_bounds on the binned query it names, over binned_table, and its estimate is the Wilson share of
    the edits read in its bin."""
    cert = certify(Scripted({"I": (230.0, 3)}), image(), {"T": 4.0}, 8, 0, bounds)
    assert cert.do == {"T": 4.0} and cert.factual["D"] == 7 and cert.factual["T"] == pytest.approx(1.8, abs=1e-5)
    assert cert.readings["T"] == pytest.approx([4.0] * 8) and cert.readings["I"][:3] == pytest.approx([230.0] * 3, abs=1e-3)
    d = cert.to_dict(DOM)
    assert d["do"] == {"T": "4"} and d["binned_do"] == {"T": "3.5-6.5"} and d["binned_factual"] == {"T": "1.5-2", "I": "100-150"}
    assert "declared bins" in d["binning"] and "do(T=4) is taken as the binned action do(T in 3.5-6.5)" in d["binning"]
    assert d["distributions"]["I"] == {"64-100": 0.0, "100-150": 5 / 8, "150-200": 0.0, "200-255": 3 / 8}
    binned = Binning().domains
    table = binned_table(True, Binning())
    shown = {(r.factor, r.value) for r in cert.rows}
    assert ("D", 7) in shown and {("I", 1), ("I", 3)} <= shown
    for r, row in zip(cert.rows, d["queries"]):
        text = row["query"]
        assert text.startswith(f"P({r.factor}[T=3.5-6.5]=") and text.endswith("| D=7, T=1.5-2, I=100-150)")
        direct = optimal_bounds(parse_query(text, binned), W.graph, binned, table)
        assert (r.bounds.lower, r.bounds.upper) == pytest.approx((direct.lower, direct.upper), abs=1e-9)
        hits = int(np.sum(binned.codes(r.factor, [row["value"]])[0] == (DOM.bin(r.factor, cert.readings[r.factor]) if
                                                                         r.factor != "D" else cert.readings["D"])))
        assert r.estimate == wilson(hits, 8)
        assert r.truth is not None and r.bounds.contains(r.truth, 0.02)  # the binned law's truth, sampled
    rows = {(r.factor, r.value): r for r in cert.rows}
    assert rows[("D", 7)].bounds.identified and rows[("D", 7)].consistent  # D is no descendant of T
    # a thin faint stroke made thick brightens: staying in 100-150 is (nearly) impossible, and the editor that
    # keeps I in five edits of eight is caught
    kept = rows[("I", 1)]
    assert kept.kept and kept.bounds.upper < 0.05 and not kept.consistent


def test_several_factors_and_labels_given(bounds):
    """do(D=2, I=220) with the labels given as numbers: only T's rows remain, over T's five bins."""
    cert = certify(Scripted(), image(), {"D": "2", "I": 220}, 4, 0, bounds, labels={"D": "7", "T": 2.7, "I": "160"})
    assert cert.factual == {"D": 7, "T": 2.7, "I": 160.0}
    assert {r.factor for r in cert.rows} == {"T"} and cert.to_dict(DOM)["binned_do"] == {"I": "200-255"}
    [r] = cert.rows  # T is no descendant of D or I (the style links D and T, not their actions): kept, [1, 1]
    assert r.value == 2 and r.kept and r.bounds.lower == pytest.approx(1) and r.consistent


def test_a_continuous_run_without_a_world_has_no_certificate_and_says_why():
    own = QueryBounds.for_editor(Scripted())
    assert own.p_v is None and "no optimal bounds" in own.unavailable and "belongs to no world" in own.unavailable
    cert = certify(Scripted(), image(), {"T": 4.0}, 4, 0, own)
    assert cert.rows == () and cert.note == own.unavailable
    assert cert.distributions["T"].tolist() == [0, 0, 0, 0, 1]  # the readings are still shown, over the declared bins
    with pytest.raises(CfeditError, match="belongs to no world"):
        own(parse_query("P(I[T=3.5-6.5]=200-255 | T=1.5-2)", own.domains))
    assert Run(Scripted(), None, "test").bounds.unavailable == own.unavailable
