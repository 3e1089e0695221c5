"""The ANCM on a world with continuous factors (Morpho-MNIST: digit, thickness, intensity; grey 28 x 28):
condition vectors, the labeller's regression heads, and a small fit that edits under do(T=4)."""

import numpy as np
import pytest
import torch

from cfedit.core.domains import Continuous, Domains
from cfedit.errors import DataError
from cfedit.imaging import Labeller, cond_dim, one_hot_factors
from cfedit.imaging.vae import ConditionalVAE, VAEConfig

DOM = Domains({"D": [str(d) for d in range(10)], "T": Continuous(1.5, 6.5), "I": Continuous(64, 255)})
V = {"D": torch.tensor([0, 7]), "T": torch.tensor([1.5, 4.0]), "I": torch.tensor([255.0, 159.5])}


def test_condition_vector_holds_one_hot_codes_and_standardised_values():
    y = one_hot_factors(DOM, V)
    assert y.shape == (2, cond_dim(DOM)) == (2, 12)
    assert y[1, 7] == 1 and y[1, :10].sum() == 1
    assert torch.allclose(y[:, 10:], torch.tensor([[-1.0, 1.0], [0.0, 0.0]]))  # lo -> -1, hi -> 1, midpoints -> 0


def test_vae_on_grey_images_conditions_on_continuous_values():
    torch.manual_seed(0)
    vae = ConditionalVAE(DOM, (1, 28, 28), VAEConfig(latent_dim=4, width=8))
    u = vae.prior(2, torch.Generator().manual_seed(0))
    a = vae.generate(V, u)
    b = vae.generate({**V, "T": torch.tensor([6.5, 4.0])}, u)
    assert a.shape == (2, 1, 28, 28) and float(a.min()) >= 0 and float(a.max()) <= 1
    assert not torch.allclose(a[0], b[0]) and torch.allclose(a[1], b[1])  # the thickness enters, row by row
    vae.loss(a, V).backward()
    assert all(p.grad is not None for p in vae.parameters())


def test_labeller_regression_heads_read_inside_the_interval_and_learn():
    torch.manual_seed(0)
    lab = Labeller(DOM, (1, 28, 28))
    x = torch.stack([torch.zeros(1, 28, 28), torch.ones(1, 28, 28)])
    read = lab.predict(x)
    assert read["D"].dtype == torch.long and read["T"].dtype == torch.float32
    assert ((read["T"] >= 1.5) & (read["T"] <= 6.5)).all() and ((read["I"] >= 64) & (read["I"] <= 255)).all()
    opt = torch.optim.Adam(lab.parameters(), lr=1e-2)
    first, miss = float(lab.loss(x, V).detach()), (read["T"] - V["T"]).abs()
    for _ in range(100):
        opt.zero_grad()
        lab.loss(x, V).backward()
        opt.step()
    assert float(lab.loss(x, V).detach()) < first - 1.0
    assert (lab.predict(x)["T"] - V["T"]).abs().sum() < 0.5 * miss.sum()  # the means move to the targets


def test_continuous_labels_must_be_floats_in_range():
    from cfedit.data import LabelledImages

    x = np.zeros((2, 1, 28, 28), np.float32)
    ok = {"D": np.array([0, 1]), "T": np.array([2.0, 3.0]), "I": np.array([100.0, 200.0])}
    LabelledImages(x, ok, DOM)
    with pytest.raises(DataError, match=r"floats in \[64, 255\]"):
        LabelledImages(x, {**ok, "I": np.array([100.0, 300.0])}, DOM)


@pytest.fixture(scope="module")
def morpho_data():
    pytest.importorskip("skimage")
    from cfedit.worlds import get_world

    w = get_world("morpho")
    return w, w.dataset(160, seed=0, split="train")


def test_world_dataset_keeps_continuous_values(morpho_data):
    w, data = morpho_data
    assert data.images.shape == (160, 1, 28, 28) and data.labels["T"].dtype == np.float64
    v = w.scm.sample(160, seed=0)  # the same units (the dataset draws u first from the same seed)
    assert np.allclose(data.labels["T"], v["T"]) and np.allclose(data.labels["I"], v["I"])


@pytest.mark.slow
def test_ancm_fits_and_edits_a_continuous_factor(morpho_data, tmp_path):
    """A few steps on 160 units: the edit under do(T=4) has the image shape, T = 4 in every sample, the
    digit kept, and I moved the way the fitted NCM's mechanism says (I rises with T in the data); it
    saves and loads to the same edits. Smoke level: nothing here says the edits look right."""
    from cfedit.editors.ancm import ANCM, ANCMConfig
    from cfedit.editors.baselines import Associational, NonCausal, markovian
    from cfedit.imaging import LabellerConfig
    from cfedit.ncm import NCMConfig

    w, data = morpho_data
    cfg = ANCMConfig(ncm=NCMConfig(steps=150), image=VAEConfig(latent_dim=4, width=8), labeller=LabellerConfig(width=8),
                     steps=20, batch_size=32, seed=0)
    model = ANCM.fit(w.graph, data, cfg, out_dir=tmp_path / "run", log=None)
    x, v = data.images[:4], {k: a[:4] for k, a in data.labels.items()}
    r = model.edit(x, {"T": 4.0}, n_samples=3, labels=v, seed=1)
    assert r.images.shape == (4, 3, 1, 28, 28) and np.all(r.factors["T"] == 4.0)
    assert np.array_equal(r.factors["D"], np.repeat(v["D"][:, None], 3, axis=1))
    thin = v["T"] < 3.0  # the fitted I-mechanism rises with T as the data's does: a thin stroke made thick brightens
    assert np.all(r.factors["I"][thin] > v["I"][thin, None])
    again = ANCM.load(tmp_path / "run").edit(x, {"T": 4.0}, n_samples=3, labels=v, seed=1)
    assert np.allclose(again.images, r.images, atol=1e-6) and np.allclose(again.factors["I"], r.factors["I"])
    read = model.edit(x, {"D": "3"}, n_samples=1, seed=1)  # the labeller's reading as v
    assert ((read.factual["T"] >= 1.5) & (read.factual["T"] <= 6.5)).all() and np.all(read.factors["D"] == 3)
    assert NonCausal(model).edit(x, {"T": 4.0}, labels=v).factors["I"][:, 0].tolist() == pytest.approx(v["I"].tolist())
    assert markovian(model, data.labels).graph == w.graph  # already Markovian: the baseline refits over the same diagram
    assoc = Associational(model).edit(x, {"T": 4.0}, n_samples=3, labels=v, seed=1)
    assert np.all(assoc.factors["T"] == 4.0) and assoc.images.shape == (4, 3, 1, 28, 28)
    assert not np.array_equal(assoc.factors["D"], r.factors["D"])  # the digit is resampled from P(D | T=4), not kept
    from cfedit.runs import QueryBounds

    assert QueryBounds.for_editor(model, w).domains == w.binned.domains  # bounded over the world's declared bins
    assert "belongs to no world" in QueryBounds.for_editor(model).unavailable  # no binned law without a world


def test_counterfactual_term_of_a_continuous_factor_does_not_grow_with_the_labellers_confidence():
    """The ctf term reads a continuous factor by the squared error of the labeller's mean in half-interval
    units: a labeller that has learnt a tiny scale (here forced: the log-scale outputs pushed to -20) leaves
    the term as it was. Its own likelihood would grow as 1 / scale^2 and swamp the image loss."""
    from cfedit.editors.training import ImageStage

    torch.manual_seed(0)
    vae, lab = ConditionalVAE(DOM, (1, 28, 28), VAEConfig(latent_dim=4, width=8)), Labeller(DOM, (1, 28, 28))
    stage = ImageStage(vae, lab, ctf_weight=1.0)
    x = torch.rand(8, 1, 28, 28)
    v = {"D": torch.arange(8), "T": torch.linspace(1.6, 6.0, 8), "I": torch.linspace(70, 250, 8)}
    torch.manual_seed(1)
    before = float(stage.counterfactual_loss(x, v).detach())
    with torch.no_grad():
        lab.head.bias[[11, 13]] = -20.0  # the log-scale outputs of T and I (after the 10 digit logits and each mean)
    torch.manual_seed(1)
    after = float(stage.counterfactual_loss(x, v).detach())
    assert after == pytest.approx(before, rel=1e-4) and after < 20
