"""Baselines share the ANCM's image mechanism; only their assumptions about the factors differ."""

import numpy as np
import pytest

from cfedit.core.graph import CausalGraph
from cfedit.editors.ancm import ANCM, ANCMConfig
from cfedit.editors.base import Editor
from cfedit.editors.baselines import BASELINES, Associational, Independent, NonCausal, markovian, markovian_graph
from cfedit.editors.oracle import Oracle
from cfedit.errors import CfeditError
from cfedit.imaging.vae import VAEConfig
from cfedit.ncm import NCMConfig
from cfedit.worlds import get_world

TINY = ANCMConfig(steps=20, batch_size=32, log_every=10, ncm=NCMConfig(steps=300, latent_size=16),
                  image=VAEConfig(width=8, latent_dim=4))


@pytest.fixture(scope="module")
def setup():
    w = get_world("backdoor")
    data = w.dataset(2000, seed=0)
    return w, data, ANCM.fit(w.graph, data, TINY, log=None)


def test_markovian_graph_orients_bidirected_edges():
    assert markovian_graph(CausalGraph.parse("D <-> C; D -> B; C -> B")) == CausalGraph.parse("D -> C; D -> B; C -> B")
    assert markovian_graph(CausalGraph.parse("D -> C; C -> B; D <-> B")) == CausalGraph.parse("D -> C; C -> B; D -> B")


def test_non_causal_and_independent_keep_every_other_factor(setup):
    w, data, ancm = setup
    x, v = data.images[:50], {k: a[:50] for k, a in data.labels.items()}
    for editor in (NonCausal(ancm), Independent(ancm)):
        r = editor.edit(x, {"D": 2}, 3, labels=v)
        assert r.images.shape == (50, 3, 3, 28, 28)
        assert (r.factors["D"] == 2).all()
        assert (r.factors["C"] == v["C"][:, None]).all() and (r.factors["B"] == v["B"][:, None]).all()
    a = NonCausal(ancm).edit(x, {}, 1, labels=v).images
    b = Independent(ancm).edit(x, {}, 1, labels=v).images
    assert np.abs(a - b).mean() > 1e-3  # fresh image noise instead of abduction


def test_associational_resamples_from_the_conditional(setup):
    w, data, ancm = setup
    n = 4000
    x = np.repeat(data.images[:1], n, axis=0)
    v = {k: np.repeat(a[:1], n) for k, a in data.labels.items()}
    r = Associational(ancm).edit(x, {"C": 0}, 1, labels=v, seed=3)
    assert (r.factors["C"] == 0).all()
    t = ancm.ncm.table()
    p_d = t[:, 0, :].sum(axis=1) / t[:, 0, :].sum()
    freq = np.bincount(r.factors["D"][:, 0], minlength=10) / n
    assert np.abs(freq - p_d).max() < 5 * np.sqrt(0.25 / n)


def test_associational_conditions_a_continuous_factor_on_its_nearest_units():
    """With a continuous factor the conditional P(V | T = t) is read from the NCM's sample: units nearest t. In a
    pool where I = 100 + 20 T and D = [T > 3] exactly, do(T=4) must give I near 180 and D = 1, do(T=2) I near 140
    and D = 0; a categorical intervention conditions exactly. The neighbours are within the pool's spacing of t."""
    from types import SimpleNamespace

    import torch

    from cfedit.core.domains import Continuous, Domains

    dom = Domains({"D": ["0", "1"], "T": Continuous(1.5, 6.5), "I": Continuous(0, 255)})
    t = np.random.default_rng(0).uniform(1.5, 6.5, Associational.POOL)
    pool = {"D": (t > 3).astype(np.int64), "T": t, "I": 100 + 20 * t}
    fake = SimpleNamespace(domains=dom, image_shape=(1, 28, 28), device="cpu", config=SimpleNamespace(seed=0),
                           ncm=SimpleNamespace(sample=lambda n, seed: pool))
    a = Associational(fake)
    v = {"D": torch.zeros(500, dtype=torch.long), "T": torch.full((500,), 2.0, dtype=torch.float64),
         "I": torch.full((500,), 140.0, dtype=torch.float64)}
    u = torch.rand(500, generator=torch.Generator().manual_seed(1))
    for target, i_mean, d in ((4.0, 180.0, 1), (2.0, 140.0, 0)):
        f = a.factors(v, u, {"T": target})
        assert (f["T"] == target).all() and (f["D"] == d).all()
        assert abs(float(f["I"].mean()) - i_mean) < 0.2 and float((f["I"] - i_mean).abs().max()) < 20 * 0.01
        assert len(set(f["I"].tolist())) > 50  # drawn among many neighbours, not one unit
    f = a.factors(v, u, {"D": 1})
    assert (f["D"] == 1).all() and float(f["T"].min()) > 3 and abs(float(f["T"].mean()) - 4.75) < 0.1


@pytest.mark.parametrize("from_labels", [True, False])
def test_markovian_baseline_lets_do_digit_change_colour(setup, from_labels):
    w, data, ancm = setup
    m = markovian(ancm, data.labels if from_labels else None)  # None: fitted to the ANCM's own P(V)
    assert m.graph.bidirected == () and ("D", "C") in m.graph.directed
    assert 0.5 * np.abs(m.ncm.table() - ancm.ncm.table()).sum() < 0.02  # same observational law
    red7 = (data.labels["D"] == 7) & (data.labels["C"] == 1)
    x = data.images[red7]
    v = {k: a[red7] for k, a in data.labels.items()}
    changed = (m.edit(x, {"D": 2}, 4, labels=v).factors["C"] != 1).mean()
    kept = (ancm.edit(x, {"D": 2}, 4, labels=v).factors["C"] != 1).mean()
    assert kept == 0 and changed > 0.3  # ANCM: C is no descendant of D; Markovian: D -> C


def test_oracle_returns_the_worlds_counterfactual():
    w = get_world("backdoor")
    a = w.ascm("eval", oracle=False)
    u = a.units(20, seed=0)
    oracle = Oracle(a, u)
    assert isinstance(oracle, Editor)
    r = oracle.edit(a.factual(u), {"C": "green"}, 2)
    v_cf, img = a.counterfactual(u, {"C": 0})
    assert np.array_equal(r.images[:, 1], img) and (r.factors["D"][:, 0] == v_cf["D"]).all()
    with pytest.raises(CfeditError, match="holds 20 units"):
        oracle.edit(a.factual(u)[:5], {"C": "green"})


def test_every_baseline_is_an_editor(setup):
    """Each registered baseline builds an Editor under its own name, and the evaluation compares every one of them
    (the editor conformance test runs each through the edit loop)."""
    from cfedit.evaluation.protocol import editors_for

    _, _, ancm = setup
    for name, build in BASELINES.items():
        editor = build(ancm)
        assert isinstance(editor, Editor) and editor.name == name and editor is not ancm
    eds = editors_for(ancm)
    assert list(eds) == ["ancm", *BASELINES, "oracle"]
    assert all(isinstance(eds[n], Editor) and eds[n].name == n for n in BASELINES)
