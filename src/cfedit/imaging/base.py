"""What an image mechanism is: f^_I(V, U_I) that can abduct U_I from an image, plus its training loss.

Every backend (``vae``, ``diffusion``, ...) subclasses :class:`ImageMechanism` and is registered by name in
:mod:`cfedit.imaging`. The editors and the training loop use only these verbs:

* ``prior(n, generator)``: n draws of U_I from its prior;
* ``generate(v, u)``: images f^_I(v, u) in [0, 1], (N, C, H, W);
* ``abduct(images, v)``: the U_I that reproduces each image given its factual factors v. It must depend on
  the image and v only, never on the action, so that abduct / act / predict stays a counterfactual;
* ``loss(images, v)``: the training loss of a batch, per pixel (so that one learning rate fits every size).

A backend that can edit differentiably (abduct then generate with other factors, with gradients) also
implements :class:`DifferentiableEdit`; the training loop's counterfactual-consistency term asks for it.

Notation: ``v`` -> V (integer codes per factor; floats for a continuous one), ``u`` -> U_I, ``images`` -> I in [0, 1],
(N, C, H, W).
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, Protocol, runtime_checkable

import torch
import torch.nn as nn
import torch.nn.functional as F

from cfedit.core.domains import Domains
from cfedit.errors import DataError

Codes = Mapping[str, torch.Tensor]


@dataclass(frozen=True, kw_only=True)
class ImageConfig:
    """Base of every backend's config: ``kind`` names the backend in the registry (and in config.json)."""

    kind: str = ""

    #: settings that act at edit time only (no trained weight depends on them): a trained editor may be given other
    #: values of these without retraining (``package_editor``'s ``config``)
    EDIT_TIME: ClassVar[tuple[str, ...]] = ()


class ImageMechanism(nn.Module, abc.ABC):
    """f^_I with abduction. Subclasses set ``kind`` and take ``(domains, image_shape, config)``."""

    kind: str = ""

    def __init__(self, domains: Domains, image_shape: tuple[int, int, int], config: ImageConfig):
        super().__init__()
        self.domains, self.image_shape, self.config = domains, tuple(int(s) for s in image_shape), config

    def _device(self) -> torch.device:
        device = self.__dict__.get("_device_memo")  # read per call by every verb: looked up once, again after .to()
        if device is None:
            device = self.__dict__["_device_memo"] = next(self.parameters()).device
        return device

    def _apply(self, fn, *args, **kwargs):  # .to(), .cuda(), .half() ... go through here
        self.__dict__.pop("_device_memo", None)
        return super()._apply(fn, *args, **kwargs)

    def cond(self, v: Codes) -> torch.Tensor:
        """The condition vectors (N, :func:`cond_dim`) of the factors on this module's device (:func:`one_hot_factors`)."""
        return one_hot_factors(self.domains, {k: torch.as_tensor(v[k], device=self._device()) for k in self.domains.names})

    @abc.abstractmethod
    def prior(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n draws of U_I."""

    @abc.abstractmethod
    def generate(self, v: Codes, u: torch.Tensor) -> torch.Tensor:
        """Images f^_I(v, u) in [0, 1]: a deterministic function of each row (v, u), whatever the batch."""

    @torch.no_grad()
    def generate_distinct(self, v: Codes, u: torch.Tensor) -> torch.Tensor:
        """:meth:`generate`, computed once per distinct row (v, u) and copied to its repeats.

        An editor draws k samples of u_V per image but abducts u_I once, so the samples that agree on v'
        repeat the same (v', u_I) row; f^_I being a function of the row, they are the same image."""
        u = torch.as_tensor(u).to(self._device())
        flat, cond = u.reshape(len(u), -1), self.cond(v)
        # group rows by v and the first PREFIX numbers of u (sorting whole rows of a large U_I is slow), then check
        # that each group's rows are equal in full; if any is not, group by the whole rows instead
        first, inverse = _groups(torch.cat([cond, flat[:, :PREFIX].float()], dim=1))
        if len(first) == len(u):
            return self.generate(v, u)
        if flat.shape[1] > PREFIX and not torch.equal(flat, flat[first][inverse]):
            first, inverse = _groups(torch.cat([cond, flat.float()], dim=1))
        return self.generate({k: torch.as_tensor(t).to(u.device)[first] for k, t in v.items()}, u[first])[inverse]

    @abc.abstractmethod
    def abduct(self, images: torch.Tensor, v: Codes) -> torch.Tensor:
        """U_I of each image given its factual factors (never the action)."""

    @abc.abstractmethod
    def loss(self, images: torch.Tensor, v: Codes) -> torch.Tensor:
        """Training loss of a batch, per pixel."""

    def after_step(self) -> None:
        """Called by the training loop after each optimiser step (e.g. an EMA of the weights); nothing by default."""


PREFIX = 64  # numbers of each U_I row that group rows before the full comparison (generate_distinct)


def _groups(key: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The first row of each distinct row of ``key`` and, per row, the index of its group."""
    distinct, inverse = torch.unique(key, dim=0, return_inverse=True)
    rows = torch.arange(len(key), device=key.device)
    first = torch.full((len(distinct),), len(key), dtype=torch.long, device=key.device).scatter_reduce(0, inverse, rows, "amin")
    return first, inverse


@runtime_checkable
class DifferentiableEdit(Protocol):
    """A mechanism that can edit with gradients: ``edit_images(images, v, v_new)`` = f^_I(v_new, abduct(images, v))."""

    def edit_images(self, images: torch.Tensor, v: Codes, v_new: Codes) -> torch.Tensor:
        """f^_I(v_new, abduct(images, v)), with gradients (the counterfactual-consistency term's edit)."""
        ...


def one_hot_factors(domains: Domains, v: Codes) -> torch.Tensor:
    """The condition vector of each unit: every factor in ``domains.names`` order, a categorical one as its
    one-hot code, a continuous one as one number, its position in its interval on [-1, 1]
    (:meth:`~cfedit.core.domains.Continuous.standardise`)."""
    return torch.cat([domains.continuous(k).standardise(torch.as_tensor(v[k]).float())[:, None] if domains.is_continuous(k)
                      else F.one_hot(torch.as_tensor(v[k]).long(), domains.size(k)).float() for k in domains.names], dim=1)


def cond_dim(domains: Domains) -> int:
    """The width of :func:`one_hot_factors`: the sizes of the categorical factors plus one per continuous factor."""
    return sum(1 if domains.is_continuous(k) else domains.size(k) for k in domains.names)


def check_images(images: torch.Tensor, shape: tuple[int, int, int]) -> torch.Tensor:
    """Refuse images that are not (N, *shape) floats; clear message for the usual mistakes."""
    if images.dim() != 4 or tuple(images.shape[1:]) != tuple(shape):
        raise DataError(f"expected images of shape (N, {', '.join(map(str, shape))}), got {tuple(images.shape)}")
    if not images.is_floating_point():
        raise DataError(f"expected float images in [0, 1], got dtype {images.dtype}")
    return images
