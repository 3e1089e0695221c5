"""The labeller h^: images -> factor codes, a small CNN with one categorical head per factor."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

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
    """h: images -> factor codes; a small CNN with one categorical head per factor."""

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
        self.head = nn.Linear(128, sum(domains.shape))

    def forward(self, images: torch.Tensor) -> dict[str, torch.distributions.Categorical]:
        """P(V_k | image) for every factor k."""
        logits = self.head(self.body(images)).split(list(self.domains.shape), dim=1)
        return {k: torch.distributions.Categorical(logits=l) for k, l in zip(self.domains.names, logits)}

    def loss(self, images: torch.Tensor, v: Codes) -> torch.Tensor:
        """Cross-entropy of the labeller's reading against the labels, summed over the factors."""
        out = self(images)
        return -sum(out[k].log_prob(torch.as_tensor(v[k], device=images.device).long()).mean() for k in self.domains.names)

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """The most probable code of each factor."""
        images = check_images(torch.as_tensor(images), self.image_shape).to(next(self.parameters()).device)
        return {k: d.probs.argmax(dim=1) for k, d in self(images).items()}
