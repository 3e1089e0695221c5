"""Image mechanisms I := f^_I(V, U_I) with abduction, as backends registered by name, and the labeller.

A backend is one module that defines an :class:`ImageMechanism` subclass with a ``kind`` and a frozen
config dataclass (a subclass of :class:`ImageConfig` whose ``kind`` defaults to the same name), plus one
line in :data:`BACKENDS` below. Configs travel as dicts with a ``kind`` field (``config.json``, TOML).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import asdict, fields

from cfedit.core.domains import Domains
from cfedit.errors import CfeditError
from cfedit.imaging.base import DifferentiableEdit, ImageConfig, ImageMechanism, check_images, cond_dim, one_hot_factors
from cfedit.imaging.labeller import Labeller, LabellerConfig

# kind -> (module, mechanism class, config class)
BACKENDS: dict[str, tuple[str, str, str]] = {
    "vae": ("cfedit.imaging.vae", "ConditionalVAE", "VAEConfig"),
    "diffusion": ("cfedit.imaging.diffusion", "DiffusionMechanism", "DiffusionConfig"),
}


def backend_names() -> tuple[str, ...]:
    """The registered image mechanisms' names (``kind`` values)."""
    return tuple(BACKENDS)


def _backend(kind: str) -> tuple[type[ImageMechanism], type[ImageConfig]]:
    if kind not in BACKENDS:
        raise CfeditError(f"unknown image mechanism {kind!r}; mechanisms are {', '.join(BACKENDS)}")
    module, mech, cfg = BACKENDS[kind]
    mod = importlib.import_module(module)
    return getattr(mod, mech), getattr(mod, cfg)


def image_config(kind: str = "vae", **settings: object) -> ImageConfig:
    """The config of backend ``kind`` with ``settings`` (unknown settings are refused, listing the valid ones)."""
    _, cls = _backend(kind)
    valid = [f.name for f in fields(cls) if f.name != "kind"]
    unknown = sorted(set(settings) - set(valid))
    if unknown:
        raise CfeditError(f"unknown setting(s) {', '.join(unknown)} of the {kind!r} mechanism; settings are {', '.join(valid)}")
    return cls(**settings)  # type: ignore[arg-type]


def edits_differentiably(kind: str) -> bool:
    """Whether backend ``kind`` implements :class:`DifferentiableEdit` (what the counterfactual-consistency term needs)."""
    return issubclass(_backend(kind)[0], DifferentiableEdit)


def config_from_dict(d: Mapping[str, object]) -> ImageConfig:
    """An image config from its dict form (``{"kind": "vae", ...}``)."""
    d = dict(d)
    kind = str(d.pop("kind", "vae"))
    return image_config(kind, **d)


def config_to_dict(config: ImageConfig) -> dict:
    """The dict form of an image config (``{"kind": ..., ...}``), as ``config.json`` holds it."""
    return asdict(config)


def build_mechanism(config: ImageConfig, domains: Domains, image_shape: tuple[int, int, int]) -> ImageMechanism:
    """The backend that ``config.kind`` names, untrained."""
    mech, cls = _backend(config.kind)
    if not isinstance(config, cls):
        raise CfeditError(f"the {config.kind!r} mechanism needs a {cls.__name__}, got {type(config).__name__}")
    return mech(domains, image_shape, config)


__all__ = [
    "BACKENDS", "DifferentiableEdit", "ImageConfig", "ImageMechanism", "Labeller", "LabellerConfig", "backend_names",
    "build_mechanism", "check_images", "cond_dim", "config_from_dict", "config_to_dict", "edits_differentiably", "image_config",
    "one_hot_factors",
]
