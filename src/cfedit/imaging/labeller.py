"""The labeller h^: images -> factor codes, a small CNN with one categorical head per factor (a Gaussian
regression head for a continuous factor)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from cfedit.core.config import check_ranges
from cfedit.core.domains import Domains
from cfedit.imaging.base import Codes, check_images


@dataclass(frozen=True, kw_only=True)
class LabellerConfig:
    """Settings of the labeller h (``ANCMConfig.labeller``; the ``[labeller]`` table of a settings file)."""

    width: int = 32  # channels of the first conv layer

    def __post_init__(self) -> None:
        check_ranges(self, {"width": (int, 1, 4096)})


class Labeller(nn.Module):
    """h: images -> factor codes; a small CNN with one categorical head per factor.

    A continuous factor gets a regression head: two outputs, the mean of a Gaussian (on [-1, 1] across its
    interval) and, through a softplus, its standard deviation, trained by its negative log-likelihood beside
    the categorical ones; ``predict`` reads the mean, clipped to the interval."""

    def __init__(self, domains: Domains, image_shape: tuple[int, int, int], config: LabellerConfig = LabellerConfig()):
        super().__init__()
        c, h, w = image_shape
        self.domains, self.image_shape, self.config = domains, (c, h, w), config
        wd = config.width
        s = 2 if min(h, w) > 32 else 1  # above 32x32 (64x64 faces) the first conv strides: 4x fewer operations
        self.body = nn.Sequential(
            nn.Conv2d(c, wd, 3, s, 1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(wd, 2 * wd, 3, 1, 1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
            nn.Linear(2 * wd * (h // (4 * s)) * (w // (4 * s)), 128), nn.ReLU(),
        )
        self._widths = [2 if domains.is_continuous(k) else domains.size(k) for k in domains.names]
        self.head = nn.Linear(128, sum(self._widths))

    def forward(self, images: torch.Tensor) -> dict[str, torch.distributions.Distribution]:
        """P(V_k | image) for every factor k: a ``Categorical``, or a ``Normal`` over a continuous factor's value."""
        law: dict[str, torch.distributions.Distribution] = {}
        for k, out in self._heads(images).items():
            if self.domains.is_continuous(k):
                c = self.domains.continuous(k)
                half = (c.hi - c.lo) / 2
                law[k] = torch.distributions.Normal(c.unstandardise(out[:, 0]), half * (F.softplus(out[:, 1]) + 1e-3))
            else:
                law[k] = torch.distributions.Categorical(logits=out)
        return law

    def _heads(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each factor's raw head output: a categorical one's logits, a continuous one's (mean, raw scale)."""
        return dict(zip(self.domains.names, self.head(self.body(images)).split(self._widths, dim=1)))

    def loss(self, images: torch.Tensor, v: Codes) -> torch.Tensor:
        """Negative log-likelihood of the labeller's reading against the labels, summed over the factors (a
        continuous factor's in units of half its interval, so that its scale does not weigh it)."""
        out = self(images)
        total = images.new_zeros(())
        for k in self.domains.names:
            target = torch.as_tensor(v[k], device=images.device)
            if self.domains.is_continuous(k):
                c = self.domains.continuous(k)
                total = total - (out[k].log_prob(target.float()) + math.log((c.hi - c.lo) / 2)).mean()
            else:
                total = total - out[k].log_prob(target.long()).mean()
        return total

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """The most probable code of each factor (a continuous factor's mean, clipped to its interval)."""
        images = check_images(torch.as_tensor(images), self.image_shape).to(next(self.parameters()).device)
        out = {}
        for k, h in self._heads(images).items():  # what forward's laws give, without building them
            if self.domains.is_continuous(k):
                c = self.domains.continuous(k)
                out[k] = c.unstandardise(h[:, 0]).clamp(c.lo, c.hi)  # the Normal's mean
            else:
                out[k] = torch.softmax(h - h.logsumexp(dim=-1, keepdim=True), dim=-1).argmax(dim=1)  # Categorical's probs
        return out
