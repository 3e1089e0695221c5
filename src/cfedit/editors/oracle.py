"""The oracle editor: the world's exact counterfactual images of the units it holds (the ceiling)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from cfedit.editors.base import Editor
from cfedit.errors import CfeditError
from cfedit.scm import ASCM, Units


class Oracle(Editor):
    """Edits a batch of the world's own units: its abduction is exact because the world holds their u.

    The images it is handed must be the units' images in order (their factual images, or images of the
    same units under any action: the oracle reads nothing off the pixels). Labels default to the units'
    true factors.
    """

    name = "oracle"
    batch_size = None  # the units are one batch: row i is unit i
    keeps_non_descendants = True  # the world's own counterfactual

    def __init__(self, ascm: ASCM, units: Units):
        self.ascm, self.units = ascm, units
        self.domains, self.image_shape = ascm.domains, tuple(ascm.image.image_shape)

    def _check(self, images: torch.Tensor) -> None:
        if len(images) != len(self.units):
            raise CfeditError(f"the oracle editor holds {len(self.units)} units, got {len(images)} images")

    def label(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Step 1: the units' true factors."""
        self._check(images)
        return {k: torch.as_tensor(np.asarray(a)) for k, a in self.units.v.items()}

    def abduct(self, images, v, n_samples, generator) -> tuple[Units, int]:
        """Step 2: the units' own exogenous u and image noise u_I (exact)."""
        self._check(images)
        return self.units, n_samples

    def predict(self, u_v: Units, u_i: int, do: Mapping[str, int]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Step 4: the world's exact counterfactual factors and images."""
        v_cf, img = self.ascm.counterfactual(u_v, dict(do))
        rep = lambda a: torch.as_tensor(np.repeat(np.asarray(a), u_i, axis=0))  # noqa: E731
        return {k: rep(a) for k, a in v_cf.items()}, rep(img)
