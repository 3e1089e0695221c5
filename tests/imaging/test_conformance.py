"""One conformance test for every registered image backend : shapes and range, the null
edit reproduces the image within the backend's tolerance, gradients reach every parameter, a safetensors
round trip, determinism under a generator. A new backend adds one line to ``SETTINGS``."""

import numpy as np
import pytest
import torch
from safetensors.torch import load, save

from cfedit.imaging import BACKENDS, ImageMechanism, build_mechanism, image_config
from cfedit.worlds import get_world

# backend -> (small settings, training steps for the fixture, null-edit tolerance: mean absolute pixel error)
SETTINGS = {
    "vae": ({"width": 8, "latent_dim": 4}, 150, 0.03),
    "diffusion": ({"channels": (8, 16), "steps": 4, "inversion_iters": 3}, 20, 0.05),  # 0.029 vs 0.14
}


def test_every_backend_is_covered():
    assert set(SETTINGS) == set(BACKENDS)


@pytest.fixture(scope="module")
def data():
    return get_world("backdoor").dataset(512, seed=0)


def _codes(data, n):
    return {k: torch.as_tensor(v[:n]) for k, v in data.labels.items()}


@pytest.fixture(scope="module", params=sorted(SETTINGS))
def trained(request, data):
    kind = request.param
    settings, steps, tol = SETTINGS[kind]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        mech = build_mechanism(image_config(kind, **settings), data.domains, data.image_shape)
        opt = torch.optim.Adam(mech.parameters(), 3e-3)
        g = torch.Generator().manual_seed(0)
        x = torch.as_tensor(data.images)
        for _ in range(steps):
            idx = torch.randint(0, len(x), (64,), generator=g)
            loss = mech.loss(x[idx], {k: torch.as_tensor(v)[idx] for k, v in data.labels.items()})
            opt.zero_grad()
            loss.backward()
            opt.step()
    return kind, mech.eval(), tol


def test_shapes_and_range(trained, data):
    kind, mech, _ = trained
    assert isinstance(mech, ImageMechanism) and mech.kind == kind
    u = mech.prior(6, torch.Generator().manual_seed(0))
    x = mech.generate(_codes(data, 6), u)
    assert tuple(x.shape) == (6, *data.image_shape) and x.min() >= 0 and x.max() <= 1
    assert mech.abduct(x, _codes(data, 6)).shape == u.shape


def test_null_edit_reproduces_the_image(trained, data):
    """generate(v, abduct(generate(v, u), v)) ~ generate(v, u), nearer than another draw of u is."""
    _, mech, tol = trained
    v = _codes(data, 64)
    g = torch.Generator().manual_seed(1)
    x = mech.generate(v, mech.prior(64, g))
    again = mech.generate(v, mech.abduct(x, v))
    other = mech.generate(v, mech.prior(64, g))
    err, spread = (again - x).abs().mean().item(), (other - x).abs().mean().item()
    assert err < tol and err < 0.75 * spread, (err, spread)  # vae: 0.010 and 0.022 (a u that is ignored gives 0, 0)


def test_null_edit_of_world_images(trained, data):
    """On the world's own images the reconstruction is nearer each image than to another image."""
    _, mech, _ = trained
    v, x = _codes(data, 64), torch.as_tensor(data.images[:64])
    rec = mech.generate(v, mech.abduct(x, v))
    assert (rec - x).abs().mean() < (rec - x.flip(0)).abs().mean()


def test_gradients_reach_every_parameter(data):
    for kind, (settings, _, _) in SETTINGS.items():
        mech = build_mechanism(image_config(kind, **settings), data.domains, data.image_shape)
        mech.loss(torch.as_tensor(data.images[:8]), _codes(data, 8)).backward()
        trained = [(n, p) for n, p in mech.named_parameters() if p.requires_grad]  # not an EMA's frozen copies
        missing = [n for n, p in trained if p.grad is None or not p.grad.abs().sum() > 0]
        assert not missing, f"{kind}: no gradient reaches {missing}"


def test_safetensors_round_trip(trained, data):
    kind, mech, _ = trained
    state = load(save({k: t.contiguous() for k, t in mech.state_dict().items()}))
    copy = build_mechanism(mech.config, data.domains, data.image_shape)
    copy.load_state_dict(state)
    copy.eval()
    v, u = _codes(data, 8), mech.prior(8, torch.Generator().manual_seed(2))
    np.testing.assert_array_equal(copy.generate(v, u).numpy(), mech.generate(v, u).numpy())
    x = torch.as_tensor(data.images[:8])
    np.testing.assert_array_equal(copy.abduct(x, v).numpy(), mech.abduct(x, v).numpy())


def test_determinism_under_a_generator(trained, data):
    _, mech, _ = trained
    a = mech.prior(5, torch.Generator().manual_seed(3))
    b = mech.prior(5, torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and not torch.equal(a, mech.prior(5, torch.Generator().manual_seed(4)))
    v = _codes(data, 5)
    assert torch.equal(mech.generate(v, a), mech.generate(v, b))
    x = torch.as_tensor(data.images[:5])
    assert torch.equal(mech.abduct(x, v), mech.abduct(x, v))


def test_generate_distinct_computes_each_repeated_row_once(trained, data):
    """Rows that repeat (v, u) are generated once and copied; every row equals its own generate."""
    _, mech, _ = trained
    v0, u0 = _codes(data, 3), mech.prior(3, torch.Generator().manual_seed(5))
    pick = torch.tensor([0, 1, 0, 2, 1, 0])  # six rows, three distinct
    v, u = {k: t[pick] for k, t in v0.items()}, u0[pick]
    calls = []
    original = mech.generate

    def spy(vv, uu):
        calls.append(len(uu))
        return original(vv, uu)

    mech.generate = spy
    try:
        out = mech.generate_distinct(v, u)
    finally:
        del mech.generate
    assert calls == [3]
    alone = original(v0, u0)
    np.testing.assert_allclose(out.numpy(), alone[pick].numpy(), atol=1e-5)
    assert torch.equal(out[0], out[2]) and torch.equal(out[0], out[5])
    w = {k: t.clone() for k, t in v.items()}
    w[data.domains.names[0]][2] = (w[data.domains.names[0]][2] + 1) % data.domains.size(data.domains.names[0])
    calls.clear()
    mech.generate = spy
    try:
        mech.generate_distinct(w, u)  # another v' on a repeated u_I is another image
    finally:
        del mech.generate
    assert calls == [4]
    tail = u.clone().reshape(len(u), -1)
    tail[2, -1] += 0.5  # row 2 repeats row 0 in its first numbers (the grouping prefix, when U_I is longer) only
    tail = tail.reshape(u.shape)
    calls.clear()
    mech.generate = spy
    try:
        out = mech.generate_distinct(v, tail)
    finally:
        del mech.generate
    assert calls[-1] == 4
    np.testing.assert_allclose(out.numpy(), original(v, tail).numpy(), atol=1e-5)
