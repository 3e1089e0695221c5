"""The ANCM with the diffusion image mechanism: the training loop updates its EMA, checkpoints round-trip,
training resumes and runs under DDP (toy sizes; quality lives in benchmarks/bench_diffusion.py)."""


import numpy as np
import pytest
import torch

from cfedit.editors.ancm import ANCM, ANCMConfig
from cfedit.imaging.diffusion import DiffusionConfig
from cfedit.ncm import NCMConfig
from cfedit.worlds import get_world

TOY = ANCMConfig(steps=12, batch_size=16, log_every=4, checkpoint_every=6, ncm=NCMConfig(steps=50, latent_size=8),
                 image=DiffusionConfig(channels=(8, 16), steps=2, inversion_iters=1))


@pytest.fixture(scope="module")
def world():
    return get_world("backdoor")


@pytest.fixture(scope="module")
def data(world):
    return world.dataset(200, seed=0)


@pytest.fixture(scope="module")
def fitted(world, data, tmp_path_factory):
    out = tmp_path_factory.mktemp("diffusion-run")
    return ANCM.fit(world.graph, data, TOY, out_dir=out, log=None), out


def test_training_loop_updates_the_ema_and_the_ctf_term_is_off(fitted):
    model, _ = fitted
    assert model.config.ctf_weight == 0.0 and model.image.kind == "diffusion"
    assert model.image.ema_updates == TOY.steps
    ema = model.image._weights()
    assert ema is model.image.ema.module and not torch.equal(ema["embed"].weight, model.image.embed.weight)


def test_save_load_round_trip_gives_the_same_edits(fitted, data):
    model, out = fitted
    loaded = ANCM.load(out)
    assert loaded.config == model.config and loaded.config.image == TOY.image
    x, v = data.images[:6], {k: a[:6] for k, a in data.labels.items()}
    a, b = model.edit(x, {"C": "green"}, 2, labels=v, seed=3), loaded.edit(x, {"C": "green"}, 2, labels=v, seed=3)
    np.testing.assert_array_equal(a.images, b.images)
    assert a.images.shape == (6, 2, 3, 28, 28) and (a.factors["C"] == 0).all()


@pytest.mark.slow
def test_resume_after_interruption(world, data, tmp_path):
    class Stop(Exception):
        pass

    def stop_at_8(line: str) -> None:
        if "image step 8/" in line:
            raise Stop

    with pytest.raises(Stop):
        ANCM.fit(world.graph, data, TOY, out_dir=tmp_path, log=stop_at_8)
    lines: list[str] = []
    model = ANCM.fit(world.graph, data, TOY, out_dir=tmp_path, log=lines.append)
    assert any("resuming" in s and "step 6/12" in s for s in lines)
    assert int(model.image.ema_updates) == TOY.steps  # the EMA counter travelled with the training state


@pytest.mark.slow
def test_ddp_training_with_two_gloo_processes(torchrun_fit):
    out = torchrun_fit("from cfedit.imaging.diffusion import DiffusionConfig", "DiffusionConfig(channels=(8, 16), steps=2)",
                       steps=4, units=100, ncm_steps=20)
    m = ANCM.load(out)
    assert m.fit_report["processes"] == 2 and m.fit_report["mechanism"] == "diffusion"
    assert int(m.image.ema_updates) == 4


@pytest.mark.slow
def test_the_diffusion_mechanism_is_conditioned_on_a_continuous_value(tmp_path):
    """On a Morpho-MNIST world the network reads T as a number: T is set in every sample, the digit (not a
    descendant of T) is kept, and edits of the same units from the same seed that differ in T alone (I kept) differ."""
    pytest.importorskip("skimage")
    w = get_world("morpho")
    data = w.dataset(64, seed=0)
    model = ANCM.fit(w.graph, data, TOY, out_dir=tmp_path / "run", log=None)
    x, v = data.images[:4], {k: a[:4] for k, a in data.labels.items()}
    thin, thick = (model.edit(x, {"T": t}, 2, labels=v, seed=5) for t in (2.0, 6.0))
    assert thin.images.shape == (4, 2, 1, 28, 28) and (thin.factors["T"] == 2.0).all() and (thick.factors["T"] == 6.0).all()
    assert (thin.factors["D"] == v["D"][:, None]).all()
    from cfedit.editors.baselines import NonCausal  # keeps I, so only the number T differs between the two edits

    a, b = (NonCausal(model).edit(x, {"T": t}, 2, labels=v, seed=5) for t in (2.0, 6.0))
    assert (a.factors["I"] == b.factors["I"]).all() and np.abs(a.images - b.images).mean() > 1e-4
