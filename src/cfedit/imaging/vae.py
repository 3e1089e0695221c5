"""Backend ``"vae"``: a small convolutional conditional VAE as the image mechanism f^_I(V, U_I).

The encoder q(u | i, v) is told v, so the KL term pushes u to hold only what v does not say (handwriting,
style); abduction takes the posterior mean, and generation decodes (v, u). It edits differentiably
(:class:`~cfedit.imaging.base.DifferentiableEdit`), so the training loop can add the
counterfactual-consistency term.

Notation: ``v`` -> V (integer codes per factor), ``u`` -> U_I, ``images`` -> I in [0, 1], (N, C, H, W).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from cfedit.core.config import check_ranges
from cfedit.core.domains import Domains
from cfedit.errors import DataError
from cfedit.imaging.base import Codes, ImageConfig, ImageMechanism, check_images


@dataclass(frozen=True, kw_only=True)
class VAEConfig(ImageConfig):
    kind: str = "vae"  # the backend's name in the registry
    latent_dim: int = 8  # dimension of U_I (larger reconstructs better but leaks the factors into u: see README)
    width: int = 32  # channels of the first conv layer (doubled in the second)
    beta: float = 1.0  # weight of the KL term (higher: u holds less, reconstructions blur)

    def __post_init__(self) -> None:
        check_ranges(self, {"latent_dim": (int, 1, 4096), "width": (int, 1, 4096), "beta": (float, 0, 1e6)})


class ConditionalVAE(ImageMechanism):
    """A conditional VAE on (C, H, W) images, H and W divisible by 4."""

    kind = "vae"
    config: VAEConfig

    def __init__(self, domains: Domains, image_shape: tuple[int, int, int], config: VAEConfig = VAEConfig()):
        c, h, w = image_shape
        if h % 4 or w % 4:
            raise DataError(f"image height and width must be multiples of 4, got {h}x{w}")
        super().__init__(domains, (c, h, w), config)
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

    def encode(self, images: torch.Tensor, v: Codes) -> tuple[torch.Tensor, torch.Tensor]:
        """q(u | i, v): mean and log-variance."""
        y = self.cond(v)
        maps = y[:, :, None, None].expand(-1, -1, *images.shape[2:])
        h = self.enc(torch.cat([images, maps], dim=1))
        mu, logvar = self.enc_head(torch.cat([h, y], dim=1)).chunk(2, dim=1)
        return mu, logvar.clamp(-10, 5)

    def decode_logits(self, v: Codes, u: torch.Tensor) -> torch.Tensor:
        """Pixel logits of f^_I(v, u); v enters at every layer so that the image cannot ignore it."""
        y = self.cond(v)
        h = self.dec_in(torch.cat([u, y], dim=1)).reshape(-1, *self._grid)
        h = F.leaky_relu(self.up1(torch.cat([h, y[:, :, None, None].expand(-1, -1, *h.shape[2:])], 1)), 0.1)
        return self.up2(torch.cat([h, y[:, :, None, None].expand(-1, -1, *h.shape[2:])], 1))

    def loss(self, images: torch.Tensor, v: Codes, generator: torch.Generator | None = None) -> torch.Tensor:
        """Negative ELBO per pixel (:meth:`elbo_loss` over the pixels of one image)."""
        return self.elbo_loss(images, v, generator) / images[0].numel()

    def elbo_loss(self, images: torch.Tensor, v: Codes, generator: torch.Generator | None = None) -> torch.Tensor:
        """Negative ELBO per image (Bernoulli pixels), KL weighted by ``beta``."""
        mu, logvar = self.encode(images, v)
        eps = torch.randn(mu.shape, generator=generator).to(mu.device) if generator is not None else torch.randn_like(mu)
        u = mu + eps * torch.exp(0.5 * logvar)
        rec = F.binary_cross_entropy_with_logits(self.decode_logits(v, u), images, reduction="sum") / len(images)
        kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp()) / len(images)
        return rec + self.config.beta * kl

    def edit_images(self, images: torch.Tensor, v: Codes, v_new: Codes) -> torch.Tensor:
        """f^_I(v_new, mean of q(u | images, v)), with gradients (the counterfactual-consistency term)."""
        return torch.sigmoid(self.decode_logits(v_new, self.encode(images, v)[0]))

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


