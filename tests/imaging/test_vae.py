"""Image mechanism protocol and labeller: shapes, range, abduction, gradients reach every parameter."""

import json

import pytest
import torch
import torch.nn.functional as F

from cfedit.errors import CfeditError, DataError
from cfedit.imaging import ImageMechanism, Labeller
from cfedit.imaging.base import cond_dim
from cfedit.imaging.vae import ConditionalVAE, VAEConfig, transport_residual
from cfedit.worlds.colored_mnist import DOMAINS


@pytest.fixture
def vae():
    torch.manual_seed(0)
    return ConditionalVAE(DOMAINS, (3, 28, 28), VAEConfig(width=8, latent_dim=4))


def _v(n):
    return {"D": torch.arange(n) % 10, "C": torch.arange(n) % 2, "B": (torch.arange(n) // 2) % 2}


def test_protocol_and_shapes(vae):
    assert isinstance(vae, ImageMechanism)
    u = vae.prior(6, torch.Generator().manual_seed(0))
    x = vae.generate(_v(6), u)
    assert x.shape == (6, 3, 28, 28) and 0 <= x.min() and x.max() <= 1
    assert vae.abduct(x, _v(6)).shape == (6, 4)


def test_gradients_reach_every_parameter(vae):
    x = torch.rand(4, 3, 28, 28)
    vae.loss(x, _v(4)).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in vae.parameters())
    lab = Labeller(DOMAINS, (3, 28, 28))
    lab.loss(x, _v(4)).backward()
    assert all(p.grad is not None for p in lab.parameters())


def test_a_few_steps_reduce_the_loss(vae):
    torch.manual_seed(1)
    x = (torch.rand(16, 3, 28, 28) > 0.8).float()
    opt = torch.optim.Adam(vae.parameters(), 3e-3)
    first = vae.loss(x, _v(16)).item()
    for _ in range(15):
        opt.zero_grad()
        vae.loss(x, _v(16)).backward()
        opt.step()
    assert vae.loss(x, _v(16)).item() < first


def test_wrong_images_are_refused(vae):
    with pytest.raises(DataError, match="shape"):
        vae.abduct(torch.zeros(2, 3, 14, 14), _v(2))
    with pytest.raises(DataError, match="float"):
        vae.abduct(torch.zeros(2, 3, 28, 28, dtype=torch.uint8), _v(2))
    with pytest.raises(DataError, match="multiples of 4"):
        ConditionalVAE(DOMAINS, (3, 30, 30))


# ---------------------------------------------------------------------------------- depth and residual blocks
def _original_decoder(vae, v, u):
    """The two-stage decoder as it was written before ``depth`` existed, applied with ``vae``'s weights."""
    y = vae.cond(v)
    h = vae.dec_in(torch.cat([u, y], 1)).reshape(len(u), 2 * vae.config.width, 7, 7)
    h = F.leaky_relu(F.conv_transpose2d(torch.cat([h, y[:, :, None, None].expand(-1, -1, 7, 7)], 1),
                                        vae.up1.weight, vae.up1.bias, 2, 1), 0.1)
    return F.conv_transpose2d(torch.cat([h, y[:, :, None, None].expand(-1, -1, 14, 14)], 1), vae.up2.weight, vae.up2.bias, 2, 1)


def test_the_default_depth_is_the_original_network():
    """depth 2, no blocks: the MNIST worlds' VAE parameter for parameter (names, shapes, count) and function."""
    torch.manual_seed(0)
    vae = ConditionalVAE(DOMAINS, (3, 28, 28), VAEConfig())
    k = 10 + 2 + 2  # one-hot width of D, C, B
    expected = {"enc.0.weight": (32, 3 + k, 4, 4), "enc.0.bias": (32,), "enc.2.weight": (64, 32, 4, 4), "enc.2.bias": (64,),
                "enc_head.0.weight": (256, 64 * 7 * 7 + k), "enc_head.0.bias": (256,), "enc_head.2.weight": (16, 256),
                "enc_head.2.bias": (16,), "dec_in.0.weight": (256, 8 + k), "dec_in.0.bias": (256,),
                "dec_in.2.weight": (64 * 7 * 7, 256), "dec_in.2.bias": (64 * 7 * 7,), "up1.weight": (64 + k, 32, 4, 4),
                "up1.bias": (32,), "up2.weight": (32 + k, 3, 4, 4), "up2.bias": (3,)}
    assert {n: tuple(t.shape) for n, t in vae.state_dict().items()} == expected
    assert sum(p.numel() for p in vae.parameters()) == 1_706_355
    u = vae.prior(5, torch.Generator().manual_seed(1))
    torch.testing.assert_close(vae.decode_logits(_v(5), u), _original_decoder(vae, _v(5), u))


@pytest.mark.parametrize("depth, blocks", [(3, 0), (4, 1)])
def test_deeper_vaes_keep_the_protocol_and_train_every_parameter(depth, blocks):
    torch.manual_seed(0)
    vae = ConditionalVAE(DOMAINS, (3, 32, 32), VAEConfig(width=4, latent_dim=3, depth=depth, blocks=blocks))
    assert vae.enc_head[0].in_features == 4 * 2 ** (depth - 1) * (32 // 2**depth) ** 2 + 14
    assert sum(name.startswith("res") for name, _ in vae.named_children()) == (depth - 1 if blocks else 0)
    x = vae.generate(_v(4), vae.prior(4, torch.Generator().manual_seed(0)))
    assert x.shape == (4, 3, 32, 32) and 0 <= x.min() and x.max() <= 1
    assert vae.abduct(x, _v(4)).shape == (4, 3)
    vae.loss(torch.rand(4, 3, 32, 32), _v(4)).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in vae.parameters())


def test_the_factors_enter_every_decoder_stage():
    """Changing only v changes the logits even when the first layer's v weights are zeroed (it enters again later)."""
    torch.manual_seed(0)
    vae = ConditionalVAE(DOMAINS, (3, 32, 32), VAEConfig(width=4, latent_dim=3, depth=3))
    for i in (1, 2, 3):
        assert getattr(vae, f"up{i}").in_channels == (4 * 2 ** (3 - i)) + 14
    with torch.no_grad():
        vae.dec_in[0].weight[:, 3:] = 0  # v no longer reaches the grid through the linear layer
    u = vae.prior(1, torch.Generator().manual_seed(0))
    a = vae.decode_logits({"D": torch.tensor([1]), "C": torch.tensor([0]), "B": torch.tensor([0])}, u)
    b = vae.decode_logits({"D": torch.tensor([1]), "C": torch.tensor([1]), "B": torch.tensor([0])}, u)
    assert (a - b).abs().max() > 1e-4


def test_image_sides_must_be_divisible_by_two_to_the_depth():
    with pytest.raises(DataError, match="multiples of 16 for a VAE of depth 4, got 24x24"):
        ConditionalVAE(DOMAINS, (3, 24, 24), VAEConfig(depth=4))
    ConditionalVAE(DOMAINS, (3, 24, 24), VAEConfig(depth=3, width=2, latent_dim=2))  # 24 = 3 * 8 is fine
    for bad in ({"depth": 0}, {"depth": 9}, {"blocks": -1}, {"depth": 2.5}):
        with pytest.raises(CfeditError, match="VAEConfig"):
            VAEConfig(**bad)


def test_checkpoints_record_the_depth_and_old_ones_load(tmp_path):
    from cfedit.editors import checkpoint
    from cfedit.editors.ancm import ANCM, ANCMConfig
    from cfedit.worlds import get_world

    world = get_world("backdoor")
    deep = ANCM(world.graph, world.domains, (3, 32, 32), ANCMConfig(image=VAEConfig(width=4, latent_dim=2, depth=3, blocks=1)))
    deep.save(tmp_path / "deep")
    saved = json.loads((tmp_path / "deep" / "config.json").read_text())["config"]["image"]
    assert (saved["depth"], saved["blocks"]) == (3, 1)
    back = ANCM.load(tmp_path / "deep")
    assert back.config.image == deep.config.image
    u = deep.image.prior(2, torch.Generator().manual_seed(0))
    torch.testing.assert_close(back.image.generate(_v(2), u), deep.image.generate(_v(2), u))
    # a checkpoint written before depth and blocks existed: its config.json names neither
    old = ANCM(world.graph, world.domains, world.image_shape, ANCMConfig(image=VAEConfig(width=4, latent_dim=2)))
    cfg = {"format": "cfedit-ancm", "version": 2, "domains": old.domains.as_dict(), "image_shape": list(old.image_shape),
           "config": old.config.to_dict(), "fit": {}}
    for key in ("depth", "blocks"):
        del cfg["config"]["image"][key]
    checkpoint.write_editor(tmp_path / "old", old.state_dict(), "cfedit-ancm", 2, cfg, old.graph.to_cg())
    loaded = ANCM.load(tmp_path / "old")
    assert (loaded.config.image.depth, loaded.config.image.blocks) == (2, 0)
    u = old.image.prior(2, torch.Generator().manual_seed(0))
    torch.testing.assert_close(loaded.image.generate(_v(2), u), old.image.generate(_v(2), u))


def test_group_norm_after_every_conv_but_the_output_one():
    torch.manual_seed(0)
    vae = ConditionalVAE(DOMAINS, (3, 32, 32), VAEConfig(width=4, latent_dim=3, depth=3, norm="group"))
    norms = [m for m in vae.modules() if isinstance(m, torch.nn.GroupNorm)]
    assert [m.num_channels for m in norms] == [4, 8, 16, 8, 4]  # encoder 4, 8, 16; decoder 8, 4 (not the output)
    assert [m.num_groups for m in norms] == [4, 8, 8, 8, 4]
    vae.loss(torch.rand(4, 3, 32, 32), _v(4)).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in vae.parameters())
    u = vae.prior(4, torch.Generator().manual_seed(1))
    together = vae.generate(_v(4), u)
    alone = torch.cat([vae.generate({k: t[i:i + 1] for k, t in _v(4).items()}, u[i:i + 1]) for i in range(4)])
    torch.testing.assert_close(together, alone)  # normalised per image: an edit does not depend on its batch
    assert not any(isinstance(m, torch.nn.GroupNorm) for m in ConditionalVAE(DOMAINS, (3, 28, 28), VAEConfig(width=4)).modules())
    with pytest.raises(CfeditError, match="VAEConfig.norm must be one of none, group"):
        VAEConfig(norm="batch")


def test_residual_latent_keeps_what_the_decoder_misses_and_edits_by_its_delta():
    """residual = True: U_I = (z, r = i - dec(v, z)); the null edit is the image, an edit adds dec(v', z) - dec(v, z)
    (clipped to [0, 1]), the prior has r = 0, and the differentiable edit of training is the same map."""
    torch.manual_seed(0)
    vae = ConditionalVAE(DOMAINS, (3, 28, 28), VAEConfig(width=8, latent_dim=4, residual=True))
    assert vae.code_dim == 4 and vae.latent_dim == 4 + 3 * 28 * 28
    x, v = torch.rand(6, 3, 28, 28), _v(6)
    u = vae.abduct(x, v)
    torch.testing.assert_close(vae.generate(v, u), x)  # exact, whatever the (untrained) decoder
    v2 = {**v, "C": 1 - v["C"]}
    z = u[:, :4]
    delta = torch.sigmoid(vae.decode_logits(v2, z)) - torch.sigmoid(vae.decode_logits(v, z))
    assert delta.abs().max() > 1e-3
    torch.testing.assert_close(vae.generate(v2, u), (x + delta).clamp(0, 1))
    edited = vae.edit_images(x, v, v2)
    torch.testing.assert_close(edited.detach(), vae.generate(v2, u))
    edited.sum().backward()
    assert all(p.grad is not None for p in vae.parameters())
    p = vae.prior(3, torch.Generator().manual_seed(0))
    assert p.shape == (3, vae.latent_dim) and (p[:, 4:] == 0).all()
    torch.testing.assert_close(vae.generate(_v(3), p), torch.sigmoid(vae.decode_logits(_v(3), p[:, :4])))
    with pytest.raises(DataError, match="expected U_I of shape"):
        vae.generate(v, z)
    with pytest.raises(CfeditError, match="residual must be true or false"):
        VAEConfig(residual="yes")


def test_gated_residual_replaces_the_pixels_an_edit_redraws_and_keeps_the_others():
    """residual_gate = g: U_I = (z, r, c); an edit is clip(dec(v', z) + m r, 0, 1) with m = clip(1 - d / g, 0, 1), d the
    largest change over the channels of a pixel and its 8 neighbours between dec(v', z) and dec(c, z): a redrawn
    pixel is the decoder's (no overlay of the factual one), an untouched one keeps r, and the null edit is exact."""
    torch.manual_seed(0)
    g = 0.15  # about the median change (with the neighbours) of a pixel under this untrained decoder's colour edit
    vae = ConditionalVAE(DOMAINS, (3, 28, 28), VAEConfig(width=8, latent_dim=4, residual=True, residual_gate=g))
    k = cond_dim(DOMAINS)
    assert vae.latent_dim == 4 + 3 * 28 * 28 + k
    x, v = torch.rand(6, 3, 28, 28), _v(6)
    u = vae.abduct(x, v)
    torch.testing.assert_close(u[:, -k:], vae.cond(v))  # c: the factual factors
    torch.testing.assert_close(vae.generate(v, u), x, atol=1e-6, rtol=0)  # exact, whatever the (untrained) decoder
    v2 = {**v, "C": 1 - v["C"]}
    z, r = u[:, :4], u[:, 4:-k].reshape(x.shape)
    new, old = torch.sigmoid(vae.decode_logits(v2, z)), torch.sigmoid(vae.decode_logits(v, z))
    own = (new - old).abs().amax(dim=1, keepdim=True)
    d = F.max_pool2d(own, 3, 1, 1).expand_as(x)  # a pixel's change or its 8 neighbours', the largest
    assert ((own.expand_as(x) < g) & (d >= g)).any()  # pixels redrawn for a neighbour's sake (no speck of the old edge)
    out = vae.generate(v2, u)
    redrawn, kept = d >= g, d <= g / 2
    assert 0.05 < redrawn.float().mean() < 0.95 and kept.any()  # every kind of pixel occurs in this draw
    torch.testing.assert_close(out[redrawn], new[redrawn])  # the decoder's pixel, nothing of the factual one
    torch.testing.assert_close(out, (new + (1 - d / g).clamp(0, 1) * r).clamp(0, 1))
    assert ((out - (new + r).clamp(0, 1))[kept].abs() <= 0.5 * r[kept].abs() + 1e-6).all()  # at least half the residual kept
    torch.testing.assert_close(vae.edit_images(x, v, v2).detach(), out)  # training edits the same way
    p = vae.prior(3, torch.Generator().manual_seed(0))
    torch.testing.assert_close(vae.generate(_v(3), p), torch.sigmoid(vae.decode_logits(_v(3), p[:, :4])))
    with pytest.raises(CfeditError, match="residual_gate needs residual = true"):
        VAEConfig(residual_gate=0.1)
    with pytest.raises(CfeditError, match="residual_gate"):
        VAEConfig(residual=True, residual_gate=2.0)


def _texture(n, h=20, w=20, seed=0):
    """Stroke-like intensities in [0.2, 1] on every pixel (so that every window has colour variance)."""
    return 0.2 + 0.8 * torch.rand(n, 1, h, w, generator=torch.Generator().manual_seed(seed))


def test_transport_keeps_the_residual_where_nothing_changes_and_recolours_it_with_a_recoloured_stroke():
    """transport_residual(new, old, r, g) = m (I + B) r: B the local affine colour map of old -> new, m how well it
    explains the edit. An untouched neighbourhood keeps r exactly; a red texture turned green carries a red residual
    into green (B = P - I up to the ridge: it shrinks B by about 1e-3 / 0.053, the variance of the texture)."""
    a = _texture(3)
    zero = torch.zeros_like(a)
    red, green = torch.cat([a, zero, zero], 1), torch.cat([zero, a, zero], 1)
    r = 0.1 * torch.randn(red.shape, generator=torch.Generator().manual_seed(1)) * (torch.arange(3) == 0).view(1, 3, 1, 1)
    torch.testing.assert_close(transport_residual(red, red, r, 0.1), r, atol=0, rtol=0)  # the null edit: exact
    moved = transport_residual(green, red, r, 0.1)
    want = torch.cat([r[:, 1:2], r[:, :1], r[:, 2:]], 1)  # the red residual, now in the green channel
    assert (moved - want).abs().max() < 0.1 * r.abs().max()
    assert (moved - want).abs().mean() < 0.05 * r[:, :1].abs().mean()  # the ridge shrinks B by about 2%
    half = torch.cat([a[..., :10], a[..., 10:]], -1)  # the left half recoloured, the right half left alone
    new = torch.cat([torch.cat([zero[..., :10], a[..., 10:]], -1), torch.cat([a[..., :10], zero[..., 10:]], -1), zero], 1)
    old = torch.cat([half, zero, zero], 1)
    out = transport_residual(new, old, r, 0.1)
    torch.testing.assert_close(out[..., 14:], r[..., 14:], atol=0, rtol=0)  # past two windows from the edit: exactly r


def test_transport_drops_the_residual_where_a_stroke_is_drawn_or_removed():
    """A stroke drawn over a flat region is no affine map of it (m = 0: the decoder's pixel stands alone); a stroke
    removed is B = -I up to the ridge along the stroke's colour ((I + B) r about 0: nothing of the old stroke stays)."""
    flat = torch.full((2, 3, 20, 20), 0.1)
    drawn = flat.clone()
    drawn[:, :, :, 9] = 0.9  # a one-pixel vertical line
    r = 0.2 * torch.rand(flat.shape, generator=torch.Generator().manual_seed(2))
    out = transport_residual(drawn, flat, r, 0.1)
    assert (out[:, :, :, 9] == 0).all()
    torch.testing.assert_close(out[:, :, :, 15:], r[:, :, :, 15:], atol=0, rtol=0)  # far from the line: untouched
    stroke, grey = torch.cat([_texture(2, seed=3)] * 3, 1), r[:, :1].expand(-1, 3, -1, -1)  # a grey stroke, a grey r
    gone = transport_residual(torch.full_like(stroke, 0.5), stroke, grey, 0.1)
    assert gone.abs().max() < 0.1 * grey.abs().max()


def test_vae_with_transport_edits_through_it_and_trains_with_the_plain_gate():
    """residual_transport: generate is clip(dec(v', z) + transport_residual(dec(v', z), dec(c, z), r, g), 0, 1), the
    null edit exact; edit_images (the consistency term) keeps the plain gate, so no trained weight depends on it."""
    torch.manual_seed(0)
    g = 0.15
    vae = ConditionalVAE(DOMAINS, (3, 28, 28), VAEConfig(width=8, latent_dim=4, residual=True, residual_gate=g,
                                                          residual_transport=True))
    plain = ConditionalVAE(DOMAINS, (3, 28, 28), VAEConfig(width=8, latent_dim=4, residual=True, residual_gate=g))
    plain.load_state_dict(vae.state_dict())
    x, v = torch.rand(6, 3, 28, 28), _v(6)
    u = vae.abduct(x, v)
    torch.testing.assert_close(vae.generate(v, u), x, atol=1e-6, rtol=0)
    v2 = {**v, "C": 1 - v["C"]}
    z, r = u[:, :4], u[:, 4:-cond_dim(DOMAINS)].reshape(x.shape)
    new, old = torch.sigmoid(vae.decode_logits(v2, z)), torch.sigmoid(vae.decode_logits(v, z))
    out = vae.generate(v2, u)
    torch.testing.assert_close(out, (new + transport_residual(new, old, r, g)).clamp(0, 1))
    assert not torch.allclose(out, plain.generate(v2, u))
    torch.testing.assert_close(vae.edit_images(x, v, v2).detach(), plain.generate(v2, u))
    with pytest.raises(CfeditError, match="residual_transport needs residual_gate"):
        VAEConfig(residual=True, residual_transport=True)
    with pytest.raises(CfeditError, match="residual_transport must be true or false"):
        VAEConfig(residual=True, residual_gate=0.1, residual_transport=1)
