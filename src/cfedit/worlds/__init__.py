"""Ground-truth worlds, registered by name. A world module defines ``WORLDS: dict[str, () -> World]``;
adding one is that module plus one line in :data:`MODULES`. Importing this package imports no torch."""

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

_BUILDERS: dict[str, Callable[[], World]] = {}
_WORLDS: dict[str, World] = {}


def _builders() -> dict[str, Callable[[], World]]:
    if not _BUILDERS:
        for module in MODULES:
            _BUILDERS.update(importlib.import_module(module).WORLDS)
    return _BUILDERS


def world_names() -> tuple[str, ...]:
    return tuple(_builders())


def get_world(name: str) -> World:
    """The world called ``name`` (``cfedit world list`` shows them)."""
    builders = _builders()
    if name not in builders:
        raise CfeditError(f"unknown world {clip(name)!r}; worlds are {', '.join(builders)}")
    if name not in _WORLDS:
        _WORLDS[name] = builders[name]()
    return _WORLDS[name]


__all__ = ["MODULES", "World", "get_world", "world_names"]
