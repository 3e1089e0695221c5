"""Backend ``"diffusion"``: a conditional denoiser whose abduction is a deterministic inversion of its sampler.

The network is a ``diffusers`` ``UNet2DModel``; the factor codes v (one-hot) are embedded by a linear map
and added to its time embedding (``class_embed_type="identity"``). It is trained with the DDPM objective
(noise or velocity prediction), with the condition dropped for a share of each batch so that
classifier-free guidance is available, and keeps an exponential moving average (EMA) of its weights for
inference once the training loop has updated it (:meth:`DiffusionMechanism.after_step`): a
``torch.optim.swa_utils.AveragedModel`` of the network and the condition embedding, its decay warmed up as
diffusers' ``EMAModel`` does.

* ``generate(v, u)``: the deterministic DDIM sampler (``DDIMScheduler``, eta = 0) from the terminal noise
  u = x_T, conditioned on v;
* ``abduct(i, v)``: DDIM inversion (``DDIMInverseScheduler``) of the image conditioned on its factual v,
  giving u_I = x_T; it never sees the action. Each inversion step can be refined by fixed-point
  iterations (``inversion_iters``), which make the inverse step solve the sampler's step exactly instead
  of reusing the noise predicted at the lower time;
* the same guidance weight is used both ways, so that both run one ODE (guidance 1: no guidance, one
  network evaluation a step).

Partial inversion (``invert_to`` < 1) stops the inversion after that share of the steps, at t0, and takes
u_I = x_t0; ``generate`` then runs only the sampler's steps below t0, under v'. Since the ODE between t0 and
T is a bijection, x_t0 carries the same information about the image as x_T: the only difference is that the
steps above t0, where the coarse shape is decided, stay under the factual v instead of v'. It is cheaper
(fewer steps both ways) but can only weaken edits of the factors set there (the digit), never strengthen them.
It also bends the mechanism's semantics: ``prior`` draws x_T ~ N(0, I) and runs the *unconditional* model
down to t0 (the law of x_t0 mixed over V, drawn independently of V), but x_t0 given V = v is not that law, so
the abducted u_I depends on v and f^_I(v, U_I) with U_I from the prior need not carry v. Both vanish at
``invert_to = 1`` (x_T ~ N(0, I) whatever v), the default.

Images are mapped to [-1, 1], padded with black to the network's multiple and cropped back. bf16 autocast
(``amp``) is used for the training loss on CUDA only; sampling and inversion run in float32 so that the
inversion stays exact. It does not edit differentiably (no :class:`~cfedit.imaging.base.DifferentiableEdit`):
a gradient through 2 x ``steps`` network evaluations costs many training steps (docs: results/mechanisms.md), so configs
of this backend train with ``ctf_weight = 0``.

Notation: ``v`` -> V (integer codes per factor), ``u`` -> U_I = x_T (padded image shape), ``images`` -> I.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel

from cfedit.core.config import check_choice, check_ranges
from cfedit.core.domains import Domains
from cfedit.errors import CfeditError
from cfedit.imaging.base import Codes, ImageConfig, ImageMechanism, check_images, cond_dim


@dataclass(frozen=True, kw_only=True)
class DiffusionConfig(ImageConfig):
    """Settings of the diffusion mechanism (``[image] kind = "diffusion"``); what each does: the docs page "Image mechanisms"."""

    kind: str = "diffusion"  # the backend's name in the registry
    channels: tuple[int, ...] = (32, 64, 64)  # UNet channels per resolution (each level halves the image)
    layers_per_block: int = 1  # resnet layers per UNet block
    attention: bool = False  # self-attention at the lowest resolution (and in the middle block)
    prediction: str = "v_prediction"  # network target: "epsilon" (noise) or "v_prediction" (velocity)
    schedule: str = "linear"  # beta schedule of the 1000-step forward process: linear, scaled_linear, squaredcos_cap_v2
    steps: int = 8  # DDIM steps of the sampler and of the inversion (network evaluations: steps x (1 + inversion_iters) to abduct)
    inversion_iters: int = 1  # fixed-point refinements of each inversion step (0: plain DDIM inversion)
    guidance: float = 1.0  # classifier-free guidance weight, sampler and inversion alike (1: none; above 1 doubles the cost)
    invert_to: float = 1.0  # share of the sampler's steps abduction inverts (1: to x_T; below 1: u_I = x_t0, see the module doc)
    cond_dropout: float = 0.1  # share of training images whose condition is dropped (needed for guidance)
    ema_decay: float = 0.999  # EMA of the weights used for inference (0: the live weights)
    amp: bool = True  # bf16 autocast of the training loss on CUDA (never on CPU; sampling stays float32)

    def __post_init__(self) -> None:
        object.__setattr__(self, "channels", tuple(self.channels))
        if not self.channels or len(self.channels) > 6 or not all(type(c) is int and 1 <= c <= 1024 for c in self.channels):
            raise CfeditError(f"DiffusionConfig.channels must be 1 to 6 integers from 1 to 1024, got {self.channels!r}")
        check_ranges(self, {"layers_per_block": (int, 1, 16), "steps": (int, 1, 1000), "inversion_iters": (int, 0, 20),
                            "guidance": (float, 0, 100), "invert_to": (float, 0, 1), "cond_dropout": (float, 0, 1),
                            "ema_decay": (float, 0, 1)})
        check_choice(self, "prediction", ("epsilon", "v_prediction"))
        check_choice(self, "schedule", ("linear", "scaled_linear", "squaredcos_cap_v2"))
        if self.invert_to <= 0:
            raise CfeditError(f"DiffusionConfig.invert_to must be above 0 (1: full inversion), got {self.invert_to!r}")
        if self.guidance != 1.0 and self.cond_dropout == 0:
            raise CfeditError("DiffusionConfig.guidance other than 1 needs cond_dropout > 0 (the unconditional model)")


TRAIN_TIMESTEPS = 1000


def autocast_dtype(device: torch.device, amp: bool) -> torch.dtype | None:
    """bf16 on CUDA when ``amp`` is set; None (no autocast) anywhere else."""
    return torch.bfloat16 if amp and device.type == "cuda" else None


class DiffusionMechanism(ImageMechanism):
    """A conditional UNet denoiser with DDIM sampling and DDIM inversion as f^_I and its abduction."""

    kind = "diffusion"
    config: DiffusionConfig

    def __init__(self, domains: Domains, image_shape: tuple[int, int, int], config: DiffusionConfig = DiffusionConfig()):
        from diffusers import UNet2DModel

        super().__init__(domains, image_shape, config)
        c, h, w = self.image_shape
        m = 2 ** (len(config.channels) - 1)
        self.padded = (c, math.ceil(h / m) * m, math.ceil(w / m) * m)
        levels = len(config.channels)
        down = ["DownBlock2D"] * levels
        up = ["UpBlock2D"] * levels
        if config.attention:
            down[-1], up[0] = "AttnDownBlock2D", "AttnUpBlock2D"
        groups = min(32, math.gcd(*config.channels))
        self.net = UNet2DModel(sample_size=self.padded[1:], in_channels=c, out_channels=c, block_out_channels=config.channels,
                               layers_per_block=config.layers_per_block, down_block_types=tuple(down), up_block_types=tuple(up),
                               add_attention=config.attention, norm_num_groups=groups, class_embed_type="identity",
                               attention_head_dim=min(8, config.channels[-1]))
        self.embed = nn.Linear(cond_dim(domains), 4 * config.channels[0])  # v -> added to the time embedding
        # the EMA of the trained weights (net and embed), used for inference; its copies are not trained by gradients
        self.ema = AveragedModel(self._trained(), multi_avg_fn=ema_with_warmup(config.ema_decay))
        self.ema.requires_grad_(False)
        self.register_load_state_dict_pre_hook(_renamed_ema)

    # ------------------------------------------------------------------ weights: live and EMA
    def _trained(self) -> nn.ModuleDict:
        """The modules the optimiser trains (the live weights), in the EMA's order."""
        return nn.ModuleDict({"net": self.net, "embed": self.embed})

    @property
    def ema_updates(self) -> int:
        """How many optimiser steps the EMA has averaged (the first one copies the live weights)."""
        return int(self.ema.n_averaged)

    @torch.no_grad()
    def after_step(self) -> None:
        """EMA update after an optimiser step (:func:`ema_with_warmup`); nothing when ``ema_decay`` is 0."""
        if self.config.ema_decay > 0:
            self.ema.update_parameters(self._trained())

    def _weights(self) -> nn.ModuleDict:
        """The EMA's modules once the training loop has updated them (and the module is not training), else the live ones."""
        if self.training or self.config.ema_decay == 0 or self.ema_updates == 0:
            return self._trained()
        return self.ema.module  # type: ignore[return-value]

    # ------------------------------------------------------------------ the network
    def _eps(self, x: torch.Tensor, t: int | torch.Tensor, y: torch.Tensor, weights: nn.ModuleDict | None = None) -> torch.Tensor:
        """The network's output at (x, t) given condition vectors y (one-hot codes; zeros: unconditional), with the
        ``weights`` of :meth:`_weights` (None: the live ones)."""
        t = torch.as_tensor(t, device=x.device).expand(len(x)) if torch.as_tensor(t).dim() == 0 else t
        w = self._trained() if weights is None else weights
        return w["net"](x, t, class_labels=w["embed"](y)).sample

    def _guided(self, x: torch.Tensor, t: int, y: torch.Tensor, weights: nn.ModuleDict) -> torch.Tensor:
        g = self.config.guidance
        if g == 1.0:
            return self._eps(x, t, y, weights)
        both = self._eps(torch.cat([x, x]), t, torch.cat([y, torch.zeros_like(y)]), weights)
        cond, uncond = both.chunk(2)
        return uncond + g * (cond - uncond)

    def _schedulers(self):
        from diffusers import DDIMInverseScheduler, DDIMScheduler

        kw = dict(num_train_timesteps=TRAIN_TIMESTEPS, beta_schedule=self.config.schedule, clip_sample=False,
                  set_alpha_to_one=True, timestep_spacing="trailing")
        # the inverse scheduler is given the noise (converted by _noise at the sample the network saw), so that
        # its step is the exact inverse of the sampler's step when the noise is evaluated at the upper sample
        fwd, inv = DDIMScheduler(prediction_type=self.config.prediction, **kw), DDIMInverseScheduler(prediction_type="epsilon", **kw)
        fwd.set_timesteps(self.config.steps)
        inv.set_timesteps(self.config.steps)
        return fwd, inv

    def _inverted_steps(self) -> int:
        """How many of the sampler's steps abduction inverts (and generation runs): ``invert_to`` of them, at least one."""
        return max(1, round(self.config.steps * self.config.invert_to))

    def _to_model(self, images: torch.Tensor) -> torch.Tensor:
        _, h, w = self.image_shape
        x = images * 2 - 1
        return F.pad(x, (0, self.padded[2] - w, 0, self.padded[1] - h), value=-1.0)

    def _to_images(self, x: torch.Tensor) -> torch.Tensor:
        _, h, w = self.image_shape
        return ((x[:, :, :h, :w] + 1) / 2).clamp(0, 1)

    # ------------------------------------------------------------------ training
    def loss(self, images: torch.Tensor, v: Codes, generator: torch.Generator | None = None) -> torch.Tensor:
        """DDPM loss per pixel: the network's prediction of the noise (or velocity) of a noised image, the
        condition dropped for a ``cond_dropout`` share of the batch."""
        from diffusers import DDIMScheduler

        x0 = self._to_model(images)
        dev = x0.device
        def rand(*shape: int) -> torch.Tensor:
            return torch.rand(*shape, generator=generator).to(dev)

        noise = torch.randn(x0.shape, generator=generator).to(dev)
        t = (rand(len(x0)) * TRAIN_TIMESTEPS).long().clamp_max(TRAIN_TIMESTEPS - 1)
        sched = DDIMScheduler(num_train_timesteps=TRAIN_TIMESTEPS, beta_schedule=self.config.schedule,
                              prediction_type=self.config.prediction)
        xt = sched.add_noise(x0, noise, t)
        target = noise if self.config.prediction == "epsilon" else sched.get_velocity(x0, noise, t)
        y = self.cond(v) * (rand(len(x0), 1) >= self.config.cond_dropout).float()
        dtype = autocast_dtype(dev, self.config.amp)
        ctx = torch.autocast(dev.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()
        with ctx:
            out = self._eps(xt, t, y, None)
        return F.mse_loss(out.float(), target)

    # ------------------------------------------------------------------ the protocol
    @torch.no_grad()
    def prior(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n draws of U_I = x_T ~ N(0, I) in the padded image shape; with partial inversion, x_t0: x_T carried
        down to t0 by the unconditional model (the sampler's steps above t0)."""
        x = torch.randn(n, *self.padded, generator=generator).to(self._device())
        fwd, _ = self._schedulers()
        top = fwd.timesteps.tolist()[: self.config.steps - self._inverted_steps()]
        if top:
            y, weights = torch.zeros(n, cond_dim(self.domains), device=x.device), self._weights()
            for t in top:
                x = fwd.step(self._eps(x, t, y, weights), t, x).prev_sample
        return x

    @torch.no_grad()
    def generate(self, v: Codes, u: torch.Tensor) -> torch.Tensor:
        """The DDIM sampler (deterministic) from x_T = u (x_t0 with partial inversion) under v; images in [0, 1]."""
        u = torch.as_tensor(u)
        if u.dim() != 4 or tuple(u.shape[1:]) != self.padded:
            raise CfeditError(f"expected U_I of shape (N, {', '.join(map(str, self.padded))}), got {tuple(u.shape)}")
        fwd, _ = self._schedulers()
        y, weights = self.cond(v), self._weights()
        x = u.to(self._device(), torch.float32)
        for t in fwd.timesteps.tolist()[self.config.steps - self._inverted_steps():]:
            x = fwd.step(self._guided(x, t, y, weights), t, x).prev_sample
        return self._to_images(x)

    @torch.no_grad()
    def abduct(self, images: torch.Tensor, v: Codes) -> torch.Tensor:
        """U_I = x_T (x_t0 with partial inversion) by DDIM inversion of each image under its factual v (never the action)."""
        images = check_images(torch.as_tensor(images), self.image_shape).to(self._device(), torch.float32)
        _, inv = self._schedulers()
        y, weights = self.cond(v), self._weights()
        r = TRAIN_TIMESTEPS // self.config.steps
        x = self._to_model(images)
        for t_hi in inv.timesteps.tolist()[: self._inverted_steps()]:
            x_lo, t_lo = x, max(t_hi - r, 0)
            x = inv.step(self._noise(x_lo, t_lo, y, weights, inv), t_hi, x_lo).prev_sample
            for _ in range(self.config.inversion_iters):  # solve x = inverse step with the noise predicted at x itself
                x = inv.step(self._noise(x, t_hi, y, weights, inv), t_hi, x_lo).prev_sample
        return x

    def _noise(self, x: torch.Tensor, t: int, y: torch.Tensor, weights: nn.ModuleDict, sched) -> torch.Tensor:
        """The noise the network predicts at (x, t), whatever its target (velocity: eps = sqrt(a) v + sqrt(1 - a) x)."""
        out = self._guided(x, t, y, weights)
        if self.config.prediction == "epsilon":
            return out
        a = sched.alphas_cumprod[t].to(x.device, x.dtype)
        return a.sqrt() * out + (1 - a).sqrt() * x


def ema_with_warmup(decay: float) -> Callable[[list[torch.Tensor], list[torch.Tensor], torch.Tensor], None]:
    """``AveragedModel``'s ``multi_avg_fn``: ema <- ema + (1 - d) (live - ema), d = min(decay, (1 + n) / (10 + n)) at its
    n-th average (n >= 1; the first copies the live weights), the warm-up of diffusers' ``EMAModel`` (so that a short
    run is not held near its first weights). ``torch.optim.swa_utils.get_ema_multi_avg_fn`` is the same without it."""

    @torch.no_grad()
    def average(ema: list[torch.Tensor], live: list[torch.Tensor], n_averaged: torch.Tensor) -> None:
        n = int(n_averaged)
        for e, p in zip(ema, live):
            e.lerp_(p, 1 - min(decay, (1 + n) / (10 + n)))

    return average


def _renamed_ema(module: nn.Module, state: dict, prefix: str, *args) -> None:
    """Load checkpoints written before the EMA was an ``AveragedModel``: buffers ``ema__net__<name>`` (dots as
    double underscores) and ``ema_updates`` become ``ema.module.net.<name>`` and ``ema.n_averaged``."""
    for key in [k for k in state if k.startswith(prefix + "ema__")]:
        state[prefix + "ema.module." + key[len(prefix) + 5:].replace("__", ".")] = state.pop(key)
    if prefix + "ema_updates" in state:
        state[prefix + "ema.n_averaged"] = state.pop(prefix + "ema_updates")
