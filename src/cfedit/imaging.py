"""Learned image mechanisms I := f^_I(V, U_I) that can abduct U_I, and labellers h: I -> V.

An :class:`InvertibleImageMechanism` offers ``prior(n)`` (draws of U_I), ``generate(v, u)`` (images) and
``abduct(images, v)`` (the U_I that reproduces each image given its factors). The default,
:class:`ConditionalVAE`, is a small convolutional conditional VAE: the encoder q(u | i, v) is told v, so
the KL term pushes u to hold only what v does not say (handwriting, style); abduction takes the posterior
mean. The :class:`Labeller` is a small CNN with one categorical head per factor.

Notation: ``v`` -> V (integer codes per factor), ``u`` -> U_I, ``images`` -> I in [0, 1], (N, C, H, W).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch
import torch.nn as nn
import torch.nn.functional as F

from cfedit.core.domains import Domains
from cfedit.errors import DataError

Codes = Mapping[str, torch.Tensor]


@runtime_checkable
class InvertibleImageMechanism(Protocol):
    """f^_I with abduction: what the ANCM editor needs from an image model."""

    image_shape: tuple[int, int, int]

    def prior(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor: ...

    def generate(self, v: Codes, u: torch.Tensor) -> torch.Tensor: ...

    def abduct(self, images: torch.Tensor, v: Codes) -> torch.Tensor: ...


def one_hot_factors(domains: Domains, v: Codes) -> torch.Tensor:
    """Concatenated one-hot codes of every factor, in ``domains.names`` order."""
    return torch.cat([F.one_hot(torch.as_tensor(v[k]).long(), domains.size(k)).float() for k in domains.names], dim=1)


def check_images(images: torch.Tensor, shape: tuple[int, int, int]) -> torch.Tensor:
    """Refuse images that are not (N, *shape) floats; clear message for the usual mistakes."""
    if images.dim() != 4 or tuple(images.shape[1:]) != tuple(shape):
        raise DataError(f"expected images of shape (N, {', '.join(map(str, shape))}), got {tuple(images.shape)}")
    if not images.is_floating_point():
        raise DataError(f"expected float images in [0, 1], got dtype {images.dtype}")
    return images


@dataclass(frozen=True, kw_only=True)
class VAEConfig:
    latent_dim: int = 8  # dimension of U_I (16 reconstructs better but leaks the digit: do(D) effectiveness 0.66)
    width: int = 32  # channels of the first conv layer (doubled in the second)
    beta: float = 1.0  # weight of the KL term (higher: u holds less, reconstructions blur)


class ConditionalVAE(nn.Module):
    """A conditional VAE on (C, H, W) images, H and W divisible by 4. Satisfies InvertibleImageMechanism."""

    def __init__(self, domains: Domains, image_shape: tuple[int, int, int], config: VAEConfig = VAEConfig()):
        super().__init__()
        c, h, w = image_shape
        if h % 4 or w % 4:
            raise DataError(f"image height and width must be multiples of 4, got {h}x{w}")
        self.domains, self.image_shape, self.config = domains, (c, h, w), config
        k, wd = sum(domains.shape), config.width
        self._grid = (2 * wd, h // 4, w // 4)
        flat = 2 * wd * (h // 4) * (w // 4)
        self.enc = nn.Sequential(
            nn.Conv2d(c + k, wd, 4, 2, 1), nn.LeakyReLU(0.1),
            nn.Conv2d(wd, 2 * wd, 4, 2, 1), nn.LeakyReLU(0.1), nn.Flatten(),
        )
        self.enc_head = nn.Sequential(nn.Linear(flat + k, 256), nn.LeakyReLU(0.1), nn.Linear(256, 2 * config.latent_dim))
        self.dec_in = nn.Sequential(nn.Linear(config.latent_dim + k, 256), nn.LeakyReLU(0.1), nn.Linear(256, flat), nn.LeakyReLU(0.1))
        self.up1 = nn.ConvTranspose2d(2 * wd + k, wd, 4, 2, 1)
        self.up2 = nn.ConvTranspose2d(wd + k, c, 4, 2, 1)

    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    def _device(self) -> torch.device:
        return next(self.parameters()).device

    def _cond(self, v: Codes) -> torch.Tensor:
        return one_hot_factors(self.domains, {k: torch.as_tensor(v[k], device=self._device()) for k in self.domains.names})

    def encode(self, images: torch.Tensor, v: Codes) -> tuple[torch.Tensor, torch.Tensor]:
        """q(u | i, v): mean and log-variance."""
        y = self._cond(v)
        maps = y[:, :, None, None].expand(-1, -1, *images.shape[2:])
        h = self.enc(torch.cat([images, maps], dim=1))
        mu, logvar = self.enc_head(torch.cat([h, y], dim=1)).chunk(2, dim=1)
        return mu, logvar.clamp(-10, 5)

    def decode_logits(self, v: Codes, u: torch.Tensor) -> torch.Tensor:
        """Pixel logits of f^_I(v, u); v enters at every layer so that the image cannot ignore it."""
        y = self._cond(v)
        h = self.dec_in(torch.cat([u, y], dim=1)).reshape(-1, *self._grid)
        h = F.leaky_relu(self.up1(torch.cat([h, y[:, :, None, None].expand(-1, -1, *h.shape[2:])], 1)), 0.1)
        return self.up2(torch.cat([h, y[:, :, None, None].expand(-1, -1, *h.shape[2:])], 1))

    def loss(self, images: torch.Tensor, v: Codes, generator: torch.Generator | None = None) -> torch.Tensor:
        """Negative ELBO per image (Bernoulli pixels), KL weighted by ``beta``."""
        mu, logvar = self.encode(images, v)
        eps = torch.randn(mu.shape, generator=generator).to(mu.device) if generator is not None else torch.randn_like(mu)
        u = mu + eps * torch.exp(0.5 * logvar)
        rec = F.binary_cross_entropy_with_logits(self.decode_logits(v, u), images, reduction="sum") / len(images)
        kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp()) / len(images)
        return rec + self.config.beta * kl

    # ------------------------------------------------------------------ the protocol
    def prior(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n draws of U_I ~ N(0, I)."""
        return torch.randn(n, self.latent_dim, generator=generator).to(self._device())

    @torch.no_grad()
    def generate(self, v: Codes, u: torch.Tensor) -> torch.Tensor:
        """Images f^_I(v, u) in [0, 1]."""
        return torch.sigmoid(self.decode_logits(v, u.to(self._device())))

    @torch.no_grad()
    def abduct(self, images: torch.Tensor, v: Codes) -> torch.Tensor:
        """U_I of each image given its factors: the posterior mean of q(u | i, v)."""
        images = check_images(torch.as_tensor(images), self.image_shape).to(self._device())
        return self.encode(images, v)[0]


@dataclass(frozen=True, kw_only=True)
class LabellerConfig:
    width: int = 32  # channels of the first conv layer


class Labeller(nn.Module):
    """h: images -> factor codes; a small CNN with one categorical head per factor."""

    def __init__(self, domains: Domains, image_shape: tuple[int, int, int], config: LabellerConfig = LabellerConfig()):
        super().__init__()
        c, h, w = image_shape
        self.domains, self.image_shape, self.config = domains, (c, h, w), config
        wd = config.width
        self.body = nn.Sequential(
            nn.Conv2d(c, wd, 3, 1, 1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(wd, 2 * wd, 3, 1, 1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
            nn.Linear(2 * wd * (h // 4) * (w // 4), 128), nn.ReLU(),
        )
        self.head = nn.Linear(128, sum(domains.shape))

    def forward(self, images: torch.Tensor) -> dict[str, torch.distributions.Categorical]:
        """P(V_k | image) for every factor k."""
        logits = self.head(self.body(images)).split(list(self.domains.shape), dim=1)
        return {k: torch.distributions.Categorical(logits=l) for k, l in zip(self.domains.names, logits)}

    def loss(self, images: torch.Tensor, v: Codes) -> torch.Tensor:
        out = self(images)
        return -sum(out[k].log_prob(torch.as_tensor(v[k], device=images.device).long()).mean() for k in self.domains.names)

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """The most probable code of each factor."""
        images = check_images(torch.as_tensor(images), self.image_shape).to(next(self.parameters()).device)
        return {k: d.probs.argmax(dim=1) for k, d in self(images).items()}
