"""Image mechanism protocol and labeller: shapes, range, abduction, gradients reach every parameter."""

import pytest
import torch

from cfedit.errors import DataError
from cfedit.imaging import ImageMechanism, Labeller
from cfedit.imaging.vae import ConditionalVAE, VAEConfig
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
