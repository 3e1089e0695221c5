"""Ground-truth worlds, registered by name. A world module defines ``WORLDS: dict[str, () -> World]``;
adding one is that module plus one line in :data:`MODULES`. Importing this package imports no torch.

Worlds with continuous factors (their ``scm`` is a :class:`~cfedit.scm.SampledSCM`, not an exact table)
are listed in :data:`CONTINUOUS_MODULES`: :func:`get_world` finds them, but :func:`world_names` (the worlds
that evaluations and ``cfedit world list`` run through, which need exact tables) does not list them;
:func:`continuous_world_names` does."""

from __future__ import annotations

import importlib
from collections.abc import Callable

from cfedit.core.files import clip
from cfedit.errors import CfeditError
from cfedit.worlds.base import World

MODULES: tuple[str, ...] = (
    "cfedit.worlds.colored_mnist",
    "cfedit.worlds.faces",
)

CONTINUOUS_MODULES: tuple[str, ...] = (
    "cfedit.worlds.morpho",
)

_BUILDERS: dict[str, Callable[[], World]] = {}
_CONTINUOUS: dict[str, Callable[[], World]] = {}
_WORLDS: dict[str, World] = {}


def _builders() -> dict[str, Callable[[], World]]:
    if not _BUILDERS:
        for module in MODULES:
            _BUILDERS.update(importlib.import_module(module).WORLDS)
    return _BUILDERS


def _continuous_builders() -> dict[str, Callable[[], World]]:
    if not _CONTINUOUS:
        for module in CONTINUOUS_MODULES:
            _CONTINUOUS.update(importlib.import_module(module).WORLDS)
    return _CONTINUOUS


def world_names() -> tuple[str, ...]:
    return tuple(_builders())


def continuous_world_names() -> tuple[str, ...]:
    """The worlds with continuous factors (sample-based truths)."""
    return tuple(_continuous_builders())


def get_world(name: str) -> World:
    """The world called ``name`` (``cfedit world list`` shows them)."""
    builders = {**_builders(), **_continuous_builders()}
    if name not in builders:
        raise CfeditError(f"unknown world {clip(name)!r}; worlds are {', '.join(builders)}")
    if name not in _WORLDS:
        _WORLDS[name] = builders[name]()
    return _WORLDS[name]


__all__ = ["CONTINUOUS_MODULES", "MODULES", "World", "continuous_world_names", "get_world", "world_names"]
