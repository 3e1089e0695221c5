"""The editor interface: label, abduct, act, predict, composed by one batched ``edit`` loop.

Editing an image i under do(X = x') (docs: concepts/ancm.md):

1. label:   v = h(i), or the labels the caller gives;
2. abduct:  the exogenous state of the factors given v (``u_V``, n_samples draws per image) and of the image
            given (i, v) (``u_I``);
3. act:     set X = x' (several factors at once allowed);
4. predict: v' = F_{x'}(u_V); i' = f_I(v', u_I).

The ANCM, every baseline and the world's oracle implement the steps; :meth:`Editor.edit` owns the loop.
"""

from __future__ import annotations

import abc
import os
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch

from cfedit.core.domains import Domains
from cfedit.core.graph import CausalGraph
from cfedit.core.intervention import Intervention
from cfedit.errors import CfeditError, DataError
from cfedit.imaging.base import ImageMechanism, check_images


@dataclass(frozen=True)
class EditResult:
    """Edits of N images with k samples each: ``images`` (N, k, C, H, W), ``factors`` (N, k) codes per
    factor, and ``factual`` (N,) codes used as v (the given labels or the labeller's reading)."""

    images: np.ndarray
    factors: dict[str, np.ndarray]
    factual: dict[str, np.ndarray]


@dataclass(frozen=True, eq=False)  # holds an array: compared by identity
class EditItem:
    """One image's edit, as :meth:`Editor.edit_each` takes several: ``image`` (C, H, W) in [0, 1], the action,
    ``k`` samples, the seed of its own generator, and its factors (one value per factor) or None (the labeller reads them)."""

    image: np.ndarray
    do: Intervention
    k: int
    seed: int = 0
    labels: Mapping[str, object] | None = None


def default_device() -> torch.device:
    """CUDA when present (this process's local GPU under torchrun), else CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device("cpu")


class Editor(abc.ABC):
    """A counterfactual image editor over ``domains`` for images of ``image_shape``."""

    name: str = "editor"
    domains: Domains
    image_shape: tuple[int, int, int]
    device: torch.device = torch.device("cpu")
    batch_size: int | None = 1024  # images per step of the edit loop (None: all at once)
    keeps_non_descendants: bool = False  # claims that an edit under do(X) keeps every factor that is no descendant of X
    # in the diagram it was built for (tests/editors/test_conformance.py holds each editor that claims it to it)

    @abc.abstractmethod
    def label(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Step 1: v = h(i)."""

    @abc.abstractmethod
    def abduct(self, images: torch.Tensor, v: Mapping[str, torch.Tensor], n_samples: int,
               generator: torch.Generator) -> tuple[object, object]:
        """Step 2: (u_V, u_I), with n_samples draws per image (row-major: image i's draws are adjacent)."""

    def act(self, do: Intervention | Mapping[str, object] | None) -> Intervention:
        """Step 3: the intervention do(X = x') as integer codes (an :class:`Intervention`, or names or codes, checked)."""
        return Intervention.of(self.domains, do)

    @abc.abstractmethod
    def predict(self, u_v: object, u_i: object, do: Mapping[str, int]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Step 4: v' = F_{x'}(u_V) and i' = f_I(v', u_I), one row per draw."""

    @torch.no_grad()
    def edit(self, images: np.ndarray | torch.Tensor, do: Mapping[str, object], n_samples: int = 1,
             labels: Mapping[str, object] | None = None, seed: int = 0) -> EditResult:
        """Counterfactual edits of ``images`` (N, C, H, W) in [0, 1] under ``do`` (e.g. ``{"C": "green"}``).

        Args:
            images: (N, C, H, W) floats in [0, 1], the editor's image shape.
            do: the action, value names (or codes) by factor; several factors at once; empty: the null edit.
            n_samples: edits per image (draws of the factors' posterior).
            labels: the images' factors (codes or value names per factor), instead of the labeller's reading.
            seed: the same seed gives the same edits.

        Returns:
            An :class:`EditResult`: ``images`` (N, n_samples, C, H, W), ``factors`` (the v' of each edit) and
            ``factual`` (the v used).

        Raises:
            CfeditError: images of another shape or outside [0, 1], an unknown factor or value, bad labels, or
                ``n_samples`` below 1.
        """
        if n_samples < 1:
            raise CfeditError(f"n_samples must be at least 1, got {n_samples}")
        x = torch.as_tensor(np.asarray(images) if not isinstance(images, torch.Tensor) else images)
        check_images(x, self.image_shape)
        x_do = self.act(do)
        v_all = self.encode_labels(labels, len(x)) if labels is not None else None
        g = torch.Generator().manual_seed(seed)
        step = len(x) if not self.batch_size else self.batch_size
        out_i, out_v, fact = [], [], []
        for s in range(0, len(x), max(1, step)):
            xb = x[s:s + step].to(self.device, torch.float32)
            vb = self.label(xb) if v_all is None else {k: t[s:s + step].to(self.device) for k, t in v_all.items()}
            u_v, u_i = self.abduct(xb, vb, n_samples, g)
            v_cf, i_cf = self.predict(u_v, u_i, x_do)
            out_i.append(i_cf.cpu().numpy().reshape(len(xb), n_samples, *self.image_shape))
            out_v.append({k: t.cpu().numpy().reshape(len(xb), n_samples) for k, t in v_cf.items()})
            fact.append({k: t.cpu().numpy() for k, t in vb.items()})
        cat = lambda parts: {k: np.concatenate([p[k] for p in parts]) for k in self.domains.names}  # noqa: E731
        return EditResult(np.concatenate(out_i), cat(out_v), cat(fact))

    def edit_each(self, items: list[EditItem]) -> list[EditResult]:
        """Several single-image edits, each with its own action, k, seed and labels: item i's result is
        ``edit(item.image[None], item.do, item.k, labels, item.seed)``. This one runs them one after another;
        an editor that can run them as one batch overrides it (each item still drawing from its own generator)."""
        return [self.edit(np.asarray(it.image)[None], it.do, it.k, seed=it.seed,
                          labels=None if it.labels is None else {f: [c] for f, c in it.labels.items()}) for it in items]

    def encode_labels(self, labels: Mapping[str, object], n: int) -> dict[str, torch.Tensor]:
        """Labels of n images (codes or value names per factor, every factor) as code tensors, checked."""
        out = {}
        for k in labels:
            self.domains.check(k)
        for k in self.domains.names:
            if k not in labels:
                raise DataError(f"labels lack factor {k!r}; give all of {', '.join(self.domains.names)} or none")
            codes = self.domains.codes(k, labels[k])
            if len(codes) != n:
                raise DataError(f"{len(codes)} labels of {k} for {n} images")
            out[k] = torch.as_tensor(codes)
        return out


@dataclass(frozen=True)
class TrainingRecord:
    """What a fitted editor records of its training: its resolved settings (``config.json``'s ``config``) and
    the fit's report (``fit``: the NCM's TV, steps, processes, mechanism, and the training labels' counts)."""

    config: dict
    report: dict

    def to_json(self) -> dict:
        return {**self.report, "config": self.config}


class CausalEditor(Editor):
    """An editor that carries a causal model: a diagram, an image mechanism that abducts, a fitted P(V) and
    a record of its training. The certificate, bounded editing, the web editor and the evaluation of user
    data need these; an editor without them (the baselines, the oracle) is a plain :class:`Editor`."""

    graph: CausalGraph
    image: ImageMechanism

    @abc.abstractmethod
    def fitted_p_v(self) -> np.ndarray:
        """The P(V) the editor's factor model implies (axes in ``domains.names`` order, sums to 1)."""

    @property
    @abc.abstractmethod
    def label_counts(self) -> np.ndarray | None:
        """How often each factor configuration occurs among the training labels, None where not recorded."""

    @property
    @abc.abstractmethod
    def training_record(self) -> TrainingRecord:
        """The editor's settings and training report."""
