"""The diffusion backend beyond the conformance test: the inversion solves the sampler's steps, guidance,
EMA weights, padding, AMP only on CUDA, configs and the presets."""

from pathlib import Path

import pytest
import torch

from cfedit.editors.ancm import ANCMConfig
from cfedit.errors import CfeditError
from cfedit.imaging import build_mechanism, edits_differentiably, image_config
from cfedit.imaging.diffusion import DiffusionConfig, DiffusionMechanism, autocast_dtype
from cfedit.worlds.colored_mnist import DOMAINS

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
TOY = {"channels": (8, 16)}


def _v(n, shift=0):
    return {"D": (torch.arange(n) + shift) % 10, "C": (torch.arange(n) + shift) % 2, "B": (torch.arange(n) // 2) % 2}


def _mech(shape=(3, 28, 28), **settings):
    torch.manual_seed(0)
    return DiffusionMechanism(DOMAINS, shape, DiffusionConfig(**{**TOY, **settings})).eval()


def _null_error(mech, n=8):
    x = torch.rand(n, *mech.image_shape, generator=torch.Generator().manual_seed(1))
    x = (x > 0.7).float()  # sharp strokes on black, like the worlds' images
    return (mech.generate(_v(n), mech.abduct(x, _v(n))) - x).abs().mean().item()


def test_fixed_point_iterations_make_the_inversion_solve_the_sampler():
    """Whatever the network (here an untrained one), each refined inversion step solves the sampler's step for
    its input, so the null edit approaches the image as the iterations grow; plain DDIM inversion does not."""
    errors = [_null_error(_mech(steps=8, inversion_iters=k)) for k in (0, 1, 4)]  # 0.19, 0.06, 0.003
    assert errors[2] < 0.01 and errors[2] < errors[1] < errors[0], errors


def test_partial_inversion_stops_at_t0_and_generates_below_it(monkeypatch):
    """invert_to = 0.5 of 8 steps: abduction inverts 4 steps (x_t0), generation runs the 4 below t0, and the
    null edit still reproduces the image; the prior carries x_T down to t0 with the unconditional model."""
    assert _null_error(_mech(steps=8, inversion_iters=4, invert_to=0.5)) < 0.01
    calls = []
    real = DiffusionMechanism._eps
    def counted(self, x, t, y, weights):
        calls.append((int(t), float(y.abs().sum())))
        return real(self, x, t, y, weights)

    monkeypatch.setattr(DiffusionMechanism, "_eps", counted)
    m = _mech(steps=8, inversion_iters=1, invert_to=0.5)
    x = (torch.rand(2, 3, 28, 28, generator=torch.Generator().manual_seed(0)) > 0.7).float()
    u = m.abduct(x, _v(2))
    assert [t for t, _ in calls] == [0, 124, 124, 249, 249, 374, 374, 499]  # each step: a guess at t_lo, one refinement at t_hi
    calls.clear()
    m.generate(_v(2), u)
    assert [t for t, _ in calls] == [499, 374, 249, 124]
    calls.clear()
    prior = m.prior(2, torch.Generator().manual_seed(0))
    assert [t for t, _ in calls] == [999, 874, 749, 624] and all(y == 0 for _, y in calls)
    full = _mech(steps=8, inversion_iters=1).prior(2, torch.Generator().manual_seed(0))
    assert prior.shape == full.shape and not torch.allclose(prior, full)  # x_t0, not the x_T it started from


def test_partial_inversion_leaves_less_to_the_new_factors():
    """The edit runs only the steps below t0 under v': with a quarter of the steps, changing the factors moves the
    images less from the null edit than with the full inversion (the same network, the same images)."""
    x = (torch.rand(8, 3, 28, 28, generator=torch.Generator().manual_seed(0)) > 0.7).float()
    moved = []
    for share in (0.25, 1.0):
        m = _mech(steps=8, inversion_iters=2, invert_to=share)
        u = m.abduct(x, _v(8))
        moved.append((m.generate(_v(8, shift=1), u) - m.generate(_v(8), u)).abs().mean().item())
    assert moved[0] < 0.6 * moved[1], moved  # 0.0077 vs 0.0165


def test_guidance_zero_ignores_the_factors_and_one_costs_one_evaluation(monkeypatch):
    m = _mech(steps=2, guidance=0.0)
    u = m.prior(4, torch.Generator().manual_seed(0))
    assert torch.allclose(m.generate(_v(4), u), m.generate(_v(4, shift=1), u), atol=1e-6)
    m1 = _mech(steps=2, inversion_iters=0)
    assert not torch.allclose(m1.generate(_v(4), u), m1.generate(_v(4, shift=1), u), atol=1e-4)
    sizes = []
    real = DiffusionMechanism._eps
    monkeypatch.setattr(DiffusionMechanism, "_eps", lambda self, x, *a: sizes.append(len(x)) or real(self, x, *a))
    m1.generate(_v(4), u)
    _mech(steps=2, guidance=3.0).generate(_v(4), u)
    assert sizes == [4, 4, 8, 8]  # guidance: conditional and unconditional in one batch of twice the size


def _trained_params(m):
    return [p for p in m.parameters() if p.requires_grad]


def test_ema_weights_are_used_for_inference_once_updated():
    m = _mech(steps=2, ema_decay=0.9).train()
    u, v = m.prior(3, torch.Generator().manual_seed(0)), _v(3)
    before = m.eval().generate(v, u)
    m.after_step()  # the EMA's first average copies the live weights
    assert m.ema_updates == 1 and torch.allclose(m.generate(v, u), before, atol=1e-5)
    with torch.no_grad():
        for p in _trained_params(m):
            p.add_(0.05 * torch.randn_like(p))
    assert torch.allclose(m.generate(v, u), before, atol=1e-5)  # eval: EMA weights, not the perturbed live ones
    assert not torch.allclose(m.train().generate(v, u), before, atol=1e-4)  # training: the live weights
    m.eval().after_step()
    assert not torch.allclose(m.generate(v, u), before, atol=1e-4)  # the EMA moved towards the live weights
    live = _mech(steps=2, ema_decay=0.0)
    live.after_step()
    assert live.ema_updates == 0 and live._weights()["net"] is live.net


def test_the_ema_is_an_averaged_model_with_a_warmed_up_decay():
    """After the first average (a copy), the n-th moves each EMA weight by 1 - min(decay, (1 + n) / (10 + n)) of its
    distance to the live weight (diffusers' EMAModel warm-up); the EMA's copies are frozen, the live weights not."""
    m = _mech(steps=2, ema_decay=0.5)
    assert isinstance(m.ema, torch.optim.swa_utils.AveragedModel)
    assert not any(p.requires_grad for p in m.ema.parameters())
    assert all(p.requires_grad for p in (*m.net.parameters(), *m.embed.parameters()))
    m.after_step()
    w = m.embed.weight
    expected = w.detach().clone()
    for n in (1, 2, 3):
        with torch.no_grad():
            w.add_(1.0)
        d = min(0.5, (1 + n) / (10 + n))  # 0.18, 0.25, 0.31: below the decay until n = 8
        expected = expected + (1 - d) * (w.detach() - expected)
        m.after_step()
        torch.testing.assert_close(m.ema.module["embed"].weight, expected)
    assert m.ema_updates == 4


def test_checkpoints_with_the_former_ema_buffers_still_load(tmp_path):
    """Editors saved before the EMA was an AveragedModel named its tensors ema__<name> and ema_updates."""
    m = _mech(steps=2, ema_decay=0.9)
    m.after_step()
    with torch.no_grad():
        m.ema.module["embed"].weight.add_(1.0)  # an EMA apart from the live weights
    old = {}
    for k, t in m.state_dict().items():
        if k.startswith("ema.module."):
            old["ema__" + k[len("ema.module."):].replace(".", "__")] = t.clone()
        elif k == "ema.n_averaged":
            old["ema_updates"] = t.clone()
        else:
            old[k] = t.clone()
    assert "ema__embed__weight" in old and "ema__net__conv_in__weight" in old
    again = _mech(steps=2, ema_decay=0.9)
    again.load_state_dict(old)  # strict: every former name is mapped
    assert again.ema_updates == 1
    torch.testing.assert_close(again.ema.module["embed"].weight, m.ema.module["embed"].weight)
    u, v = m.prior(2, torch.Generator().manual_seed(0)), _v(2)
    torch.testing.assert_close(again.generate(v, u), m.generate(v, u))


def test_images_padded_to_the_network_multiple_and_cropped_back():
    m = _mech(shape=(3, 30, 26), channels=(8, 8, 16), steps=2)
    assert m.padded == (3, 32, 28)
    u = m.prior(2, torch.Generator().manual_seed(0))
    assert u.shape == (2, 3, 32, 28)
    x = m.generate(_v(2), u)
    assert x.shape == (2, 3, 30, 26) and x.min() >= 0 and x.max() <= 1
    assert m.abduct(x, _v(2)).shape == u.shape
    with pytest.raises(CfeditError, match="U_I of shape"):
        m.generate(_v(2), torch.zeros(2, 3, 30, 26))


def test_autocast_only_on_cuda():
    assert autocast_dtype(torch.device("cpu"), True) is None
    assert autocast_dtype(torch.device("cuda", 0), True) is torch.bfloat16
    assert autocast_dtype(torch.device("cuda", 0), False) is None


@pytest.mark.parametrize("bad, message", [
    ({"prediction": "x0"}, "prediction must be one of"), ({"channels": ()}, "channels"), ({"steps": 0}, "steps"),
    ({"guidance": 2.0, "cond_dropout": 0.0}, "needs cond_dropout"), ({"schedule": "cosine"}, "schedule"),
    ({"invert_to": 0.0}, "invert_to must be above 0"), ({"invert_to": 1.5}, "invert_to must be a number from 0 to 1"),
])
def test_bad_settings_are_refused(bad, message):
    with pytest.raises(CfeditError, match=message):
        image_config("diffusion", **bad)


def test_ctf_term_is_off_for_diffusion_and_refused_when_asked():
    assert not edits_differentiably("diffusion") and edits_differentiably("vae")
    assert ANCMConfig().ctf_weight == 0.1
    assert ANCMConfig().updated(mechanism="diffusion").ctf_weight == 0.0
    assert ANCMConfig(image=DiffusionConfig()).ctf_weight == 0.0
    assert ANCMConfig.from_dict({"image": {"kind": "diffusion"}}).ctf_weight == 0.0
    with pytest.raises(CfeditError, match="cannot edit differentiably"):
        ANCMConfig(image=DiffusionConfig(), ctf_weight=0.1)


def test_presets_load_and_build():
    cpu = ANCMConfig.from_toml(CONFIGS / "diffusion-cpu.toml")
    assert cpu.image.kind == "diffusion" and cpu.ctf_weight == 0.0 and cpu.image.channels == (32, 64, 64)
    m = build_mechanism(cpu.image, DOMAINS, (3, 28, 28))
    assert 0.5e6 < sum(p.numel() for p in _trained_params(m)) < 2e6
    gpu = ANCMConfig.from_toml(CONFIGS / "diffusion-gpu.toml")
    assert gpu.image.amp and gpu.image.attention and len(gpu.image.channels) == 4
    big = build_mechanism(gpu.image, DOMAINS, (3, 64, 64))
    assert big.padded == (3, 64, 64)
    assert ANCMConfig.from_dict(gpu.to_dict()) == gpu  # the JSON round trip of a saved config
