"""Backend ``"vae"``: a small convolutional conditional VAE as the image mechanism f^_I(V, U_I).

The encoder q(u | i, v) is told v, so the KL term pushes u to hold only what v does not say (handwriting,
style); abduction takes the posterior mean, and generation decodes (v, u). It edits differentiably
(:class:`~cfedit.imaging.base.DifferentiableEdit`), so the training loop can add the
counterfactual-consistency term.

Notation: ``v`` -> V (integer codes per factor), ``u`` -> U_I, ``images`` -> I in [0, 1], (N, C, H, W).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn as nn
import torch.nn.functional as F

from cfedit.core.config import check_choice, check_ranges
from cfedit.core.domains import Domains
from cfedit.errors import CfeditError, DataError
from cfedit.imaging.base import Codes, ImageConfig, ImageMechanism, check_images, cond_dim


@dataclass(frozen=True, kw_only=True)
class VAEConfig(ImageConfig):
    """Settings of the conditional VAE (``[image] kind = "vae"``); what each does: the docs page "Image mechanisms"."""

    kind: str = "vae"  # the backend's name in the registry
    latent_dim: int = 8  # dimension of U_I (larger reconstructs better but leaks the factors into u: docs/guides/image-mechanisms.md)
    width: int = 32  # channels of the first conv layer (doubled at every further stage; at most 1024)
    beta: float = 1.0  # weight of the KL term (higher: u holds less, reconstructions blur)
    depth: int = 2  # stride-2 stages of the encoder and of the decoder; image sides must be multiples of 2**depth
    blocks: int = 0  # residual 3x3 conv blocks after each decoder stage but the last (capacity at low resolution)
    norm: str = "none"  # "group": GroupNorm after every conv but the output one (trains faster; per image, so edits stay row-wise)
    residual: bool = False  # U_I also holds the pixels the decoder misses: f^_I(v, (z, r)) = dec(v, z) + r (see the class doc)
    residual_gate: float = 0.0  # > 0 (with residual): drop r where an edit changes a pixel by this much or more (class doc)
    residual_transport: bool = False  # with residual_gate: carry r through the edit's local colour map where one explains it (class doc)

    EDIT_TIME: ClassVar[tuple[str, ...]] = ("residual_transport",)  # training's consistency term edits with the plain gate

    def __post_init__(self) -> None:
        check_ranges(self, {"latent_dim": (int, 1, 4096), "width": (int, 1, 1024), "beta": (float, 0, 1e6),
                            "depth": (int, 1, 8), "blocks": (int, 0, 16), "residual_gate": (float, 0, 1)})
        check_choice(self, "norm", NORMS)
        if not isinstance(self.residual, bool):
            raise CfeditError(f"VAEConfig.residual must be true or false, got {self.residual!r}")
        if self.residual_gate and not self.residual:
            raise CfeditError("VAEConfig.residual_gate needs residual = true (it gates the residual image)")
        if not isinstance(self.residual_transport, bool):
            raise CfeditError(f"VAEConfig.residual_transport must be true or false, got {self.residual_transport!r}")
        if self.residual_transport and not self.residual_gate:
            raise CfeditError("VAEConfig.residual_transport needs residual_gate > 0 (its threshold on the colour map's error)")


NORMS = ("none", "group")


def _norm(kind: str, channels: int) -> nn.Module:
    """The normalisation after a conv: GroupNorm with up to 8 groups (a divisor of the channels), or none (identity)."""
    return nn.GroupNorm(math.gcd(8, channels), channels) if kind == "group" else nn.Identity()


class _Residual(nn.Module):
    """x + conv(act(conv(act(x)))), two 3x3 convolutions that keep the channels and the grid."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(nn.LeakyReLU(0.1), nn.Conv2d(channels, channels, 3, 1, 1),
                                  nn.LeakyReLU(0.1), nn.Conv2d(channels, channels, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ConditionalVAE(ImageMechanism):
    """A conditional VAE on (C, H, W) images, H and W divisible by 2**depth.

    Encoder: ``depth`` stride-2 convolutions (width, 2 width, 4 width, ...) over the image and the factor
    maps, then a 256-unit layer to the mean and log-variance of u. Decoder: (u, v) through a 256-unit layer
    to the coarsest grid, then ``depth`` stride-2 transposed convolutions, v concatenated to the input of
    every one (each but the last followed by ``blocks`` residual blocks). ``norm = "group"`` puts a GroupNorm
    after every convolution but the output one. ``depth = 2, blocks = 0, norm = "none"`` is the original
    two-stage network, parameter for parameter (same names, so its checkpoints load).

    ``residual = True`` makes U_I = (z, r), r an image: f^_I(v, (z, r)) = clip(dec(v, z) + r, 0, 1), and abduction
    takes z = the posterior mean and r = i - dec(v, z), the pixels the decoder does not reproduce (the
    exogenous pixel noise of a Deep-SCM-style model). The null edit is exact (up to the clip), and an edit
    changes the image by dec(v', z) - dec(v, z) only: what the decoder has learnt the factors do, so details it
    cannot draw (a background's colour, a face's edges) stay as they were. The prior draws z ~ N(0, I) and
    r = 0 (a decoded image: the law of r is not modelled). Training is unchanged but for the
    counterfactual-consistency term, which edits this way and so teaches the decoder deltas strong enough to
    carry the new factors through the residual.

    ``residual_gate = g > 0`` keeps r only where the edit leaves a pixel as the decoder drew it for the factual
    factors: U_I = (z, r, c), c the factual factors' condition vector, and f^_I(v, (z, r, c)) = clip(dec(v, z) +
    m * r, 0, 1), with m = clip(1 - d / g, 0, 1) and d the largest change over the channels of a pixel and its 8
    neighbours between dec(v, z) and dec(c, z) (the neighbours: no speck of an old edge survives beside a redrawn
    stroke). Where an edit redraws a pixel (gray hair over brown, a new digit's stroke) the decoder's
    pixel replaces the factual one instead of being added to it, so the old content does not show through as a
    translucent overlay; where the edit leaves a pixel alone (m = 1) r keeps it exact, and the null edit stays exact.

    ``residual_transport = True`` (with the gate) carries r through a recolouring instead of dropping it: the edit is
    clip(dec(v, z) + m' (I + B) r, 0, 1), with B the local colour map of the decoder's edit and m' how well that map
    explains it (:func:`transport_residual`). A red stroke turned green keeps the factual handwriting, in green; a
    redrawn shape still takes the decoder's pixels; the null edit stays exact. It acts at edit time only: the
    counterfactual-consistency term of training edits with the plain gate (:meth:`edit_images`), so turning it on
    changes no trained weight.
    """

    kind = "vae"
    config: VAEConfig

    def __init__(self, domains: Domains, image_shape: tuple[int, int, int], config: VAEConfig = VAEConfig()):
        c, h, w = image_shape
        n = config.depth
        if h % 2**n or w % 2**n:
            raise DataError(f"image height and width must be multiples of {2**n} for a VAE of depth {n}, got {h}x{w}")
        super().__init__(domains, (c, h, w), config)
        k, wd = cond_dim(domains), config.width
        chans = [wd * 2**i for i in range(n)]  # channels after each encoder stage
        self._grid = (chans[-1], h // 2**n, w // 2**n)
        flat = chans[-1] * (h // 2**n) * (w // 2**n)
        enc: list[nn.Module] = []
        for cin, cout in zip([c + k, *chans[:-1]], chans):
            norm = [_norm(config.norm, cout)] if config.norm != "none" else []  # none adds no layer: version-1 names stay
            enc += [nn.Conv2d(cin, cout, 4, 2, 1), *norm, nn.LeakyReLU(0.1)]
        self.enc = nn.Sequential(*enc, nn.Flatten())
        self.enc_head = nn.Sequential(nn.Linear(flat + k, 256), nn.LeakyReLU(0.1), nn.Linear(256, 2 * config.latent_dim))
        self.dec_in = nn.Sequential(nn.Linear(config.latent_dim + k, 256), nn.LeakyReLU(0.1), nn.Linear(256, flat), nn.LeakyReLU(0.1))
        outs = [*chans[::-1][1:], c]
        for i, (cin, cout) in enumerate(zip(chans[::-1], outs), start=1):  # named up1, up2, ... as in version 1
            self.add_module(f"up{i}", nn.ConvTranspose2d(cin + k, cout, 4, 2, 1))
            if i < n:
                self.add_module(f"norm{i}", _norm(config.norm, cout))  # no parameters when none
            if i < n and config.blocks:
                self.add_module(f"res{i}", nn.Sequential(*(_Residual(cout) for _ in range(config.blocks))))

    @property
    def code_dim(self) -> int:
        """Numbers in the code z that the encoder gives."""
        return self.config.latent_dim

    @property
    def latent_dim(self) -> int:
        """Numbers in U_I: the code z, then the residual image r when ``residual``, then the factual factors' condition
        vector c when ``residual_gate``."""
        gate = cond_dim(self.domains) if self.config.residual_gate else 0
        return self.code_dim + (math.prod(self.image_shape) + gate if self.config.residual else 0)

    def encode(self, images: torch.Tensor, v: Codes) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z | i, v): mean and log-variance."""
        y = self.cond(v)
        maps = y[:, :, None, None].expand(-1, -1, *images.shape[2:])
        h = self.enc(torch.cat([images, maps], dim=1))
        mu, logvar = self.enc_head(torch.cat([h, y], dim=1)).chunk(2, dim=1)
        return mu, logvar.clamp(-10, 5)

    def decode_logits(self, v: Codes, z: torch.Tensor) -> torch.Tensor:
        """Pixel logits of the decoder dec(v, z); v enters at every layer so that the image cannot ignore it."""
        return self._decode(self.cond(v), z)

    def _decode(self, y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Pixel logits of the decoder from the condition vectors y (as ``cond`` makes them) and the codes z."""
        if z.dim() != 2 or z.shape[1] != self.code_dim:
            raise DataError(f"expected a code z of shape (N, {self.code_dim}), got {tuple(z.shape)}")
        h = self.dec_in(torch.cat([z, y], dim=1)).reshape(-1, *self._grid)
        n = self.config.depth
        for i in range(1, n + 1):
            h = getattr(self, f"up{i}")(torch.cat([h, y[:, :, None, None].expand(-1, -1, *h.shape[2:])], 1))
            if i < n:
                h = F.leaky_relu(getattr(self, f"norm{i}")(h), 0.1)
                if self.config.blocks:
                    h = getattr(self, f"res{i}")(h)
        return h

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
        """f^_I(v_new, abduct(images, v)) with gradients (the counterfactual-consistency term); with
        ``residual_transport`` it edits with the plain gate, the transport being an edit-time refinement."""
        z = self.encode(images, v)[0]
        out = torch.sigmoid(self.decode_logits(v_new, z))
        if self.config.residual:
            old = torch.sigmoid(self.decode_logits(v, z))
            out = (out + self._gate(out, old) * (images - old)).clamp(0, 1)
        return out

    def _gate(self, new: torch.Tensor, old: torch.Tensor) -> torch.Tensor | float:
        """m: 1 where the decoder's pixel is unchanged, falling to 0 at a change of ``residual_gate`` (1 when off)."""
        g = self.config.residual_gate
        if not g:
            return 1.0
        d = F.max_pool2d((new - old).abs().amax(dim=1, keepdim=True).detach(), 3, 1, 1)  # and its 8 neighbours
        return (1 - d / g).clamp(0, 1)

    # ------------------------------------------------------------------ the protocol
    def prior(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n draws of U_I: z ~ N(0, I) (and r = 0 when ``residual``)."""
        z = torch.randn(n, self.code_dim, generator=generator).to(self._device())
        return torch.cat([z, z.new_zeros(n, self.latent_dim - self.code_dim)], 1) if self.config.residual else z

    def _check_u(self, u: torch.Tensor) -> torch.Tensor:
        u = torch.as_tensor(u).to(self._device())
        if u.dim() != 2 or u.shape[1] != self.latent_dim:
            raise DataError(f"expected U_I of shape (N, {self.latent_dim}), got {tuple(u.shape)}")
        return u

    @torch.no_grad()
    def generate(self, v: Codes, u: torch.Tensor) -> torch.Tensor:
        """Images f^_I(v, u) in [0, 1]."""
        u = self._check_u(u)
        z, n = u[:, :self.code_dim], self.code_dim + math.prod(self.image_shape)
        out = torch.sigmoid(self.decode_logits(v, z))
        if self.config.residual:
            r = u[:, self.code_dim:n].reshape(-1, *self.image_shape)
            if self.config.residual_gate:
                old = torch.sigmoid(self._decode(u[:, n:], z))
                r = transport_residual(out, old, r, self.config.residual_gate) if self.config.residual_transport \
                    else self._gate(out, old) * r
            out = (out + r).clamp(0, 1)
        return out

    @torch.no_grad()
    def abduct(self, images: torch.Tensor, v: Codes) -> torch.Tensor:
        """U_I of each image given its factors: the posterior mean z of q(z | i, v) (and r = i - dec(v, z))."""
        images = check_images(torch.as_tensor(images), self.image_shape).to(self._device())
        z = self.encode(images, v)[0]
        if not self.config.residual:
            return z
        y = self.cond(v)
        parts = [z, (images - torch.sigmoid(self._decode(y, z))).flatten(1)]
        return torch.cat(parts + [y] if self.config.residual_gate else parts, 1)




TRANSPORT_RADIUS = 2  # the colour map of an edit is fitted over (2 r + 1)^2 windows (transport_residual)
TRANSPORT_RIDGE = 1e-3  # ridge on the fitted map: a channel that barely varies in a window maps to nothing
TRANSPORT_ROWS = 256  # images per chunk (the fit holds C^2 maps per pixel)


def _box(t: torch.Tensor, r: int) -> torch.Tensor:
    """The mean over each pixel's (2 r + 1)^2 window, clipped at the border."""
    return F.avg_pool2d(t, 2 * r + 1, 1, r, count_include_pad=False)


def _inverse_spd(a: torch.Tensor) -> torch.Tensor:
    """The inverse of each symmetric positive-definite C x C matrix of a (N, C, C, H, W): in closed form for one or
    three channels (a little cheaper than a batched solve), else by torch.linalg.inv."""
    c = a.shape[1]
    if c == 1:
        return 1 / a
    if c != 3:
        return torch.linalg.inv(a.permute(0, 3, 4, 1, 2)).permute(0, 3, 4, 1, 2)
    p, q, r, s, t, u = a[:, 0, 0], a[:, 0, 1], a[:, 0, 2], a[:, 1, 1], a[:, 1, 2], a[:, 2, 2]  # [[p q r] [q s t] [r t u]]
    c00, c01, c02 = s * u - t * t, r * t - q * u, q * t - r * s  # cofactors (symmetric)
    c11, c12, c22 = p * u - r * r, q * r - p * t, p * s - q * q
    det = p * c00 + q * c01 + r * c02
    rows = [[c00, c01, c02], [c01, c11, c12], [c02, c12, c22]]
    return torch.stack([torch.stack(row, 1) for row in rows], 1) / det[:, None, None]


def transport_residual(new: torch.Tensor, old: torch.Tensor, r: torch.Tensor, g: float,
                       radius: int = TRANSPORT_RADIUS, ridge: float = TRANSPORT_RIDGE) -> torch.Tensor:
    """The residual r carried through the edit old -> new (decoder images, (N, C, H, W)): m (I + B) r.

    Over each pixel's (2 radius + 1)^2 window the change new - old is fitted as an affine map of old, B old + b
    (ridge regression, ``ridge`` on B), and B, b are averaged over the windows that hold the pixel (as a guided
    filter does). e is the largest error of that map over the pixel's channels, |old + B old + b - new|, and
    m = clip(1 - e / g, 0, 1). So:

    - a pixel whose neighbourhood the edit leaves alone has B = 0, b = 0 and m = 1: r is kept as it is (the null
      edit is exact);
    - a recolouring (new = P old over the window) has B = P - I, m = 1: r is recoloured with the stroke it belongs to;
    - a stroke drawn over a flat region is no affine map of old: m = 0 and the decoder's pixel stands alone;
    - a stroke removed is B = -I: (I + B) r = 0, nothing of the old stroke stays.
    """
    if len(new) > TRANSPORT_ROWS:
        return torch.cat([transport_residual(a, b, c, g, radius, ridge) for a, b, c in
                          zip(new.split(TRANSPORT_ROWS), old.split(TRANSPORT_ROWS), r.split(TRANSPORT_ROWS))])
    n, c, h, w = old.shape
    d = new - old
    mo, md = _box(old, radius), _box(d, radius)
    cov_oo = _box((old[:, :, None] * old[:, None]).reshape(n, c * c, h, w), radius).reshape(n, c, c, h, w) \
        - mo[:, :, None] * mo[:, None]
    cov_do = _box((d[:, :, None] * old[:, None]).reshape(n, c * c, h, w), radius).reshape(n, c, c, h, w) \
        - md[:, :, None] * mo[:, None]
    # B (cov_oo + ridge I) = cov_do per pixel
    eye = torch.eye(c, dtype=old.dtype, device=old.device)[None, :, :, None, None]
    b_map = torch.einsum("nikhw,nkjhw->nijhw", cov_do, _inverse_spd(cov_oo + ridge * eye))
    shift = md - (b_map * mo[:, None]).sum(2)
    b_map = _box(b_map.reshape(n, c * c, h, w), radius).reshape(n, c, c, h, w)
    shift = _box(shift, radius)
    err = (old + (b_map * old[:, None]).sum(2) + shift - new).abs().amax(dim=1, keepdim=True)
    m = (1 - err / g).clamp(0, 1)
    return m * (r + (b_map * r[:, None]).sum(2))
