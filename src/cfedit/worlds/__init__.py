"""Ground-truth worlds, registered by name. A world module defines ``WORLDS: dict[str, () -> World]``;
adding one to the package is that module plus one line in :data:`MODULES`; a module outside the package
registers with :func:`register_world`. Importing this package imports no torch.

Worlds with continuous factors (their ``scm`` is a :class:`~cfedit.scm.SampledSCM`, not an exact table)
are listed in :data:`CONTINUOUS_MODULES`: :func:`get_world` finds them, but :func:`world_names` (the worlds
that evaluations and ``cfedit world list`` run through, which need exact tables) does not list them;
:func:`continuous_world_names` does."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from types import ModuleType

from cfedit.core.files import clip
from cfedit.errors import CfeditError
from cfedit.worlds.base import World

MODULES: tuple[str, ...] = (
    "cfedit.worlds.colored_mnist",
    "cfedit.worlds.faces",
)
"""The modules of the package's own worlds, imported on first use."""

CONTINUOUS_MODULES: tuple[str, ...] = (
    "cfedit.worlds.morpho",
)
"""The modules of the package's worlds with continuous factors, imported on first use."""

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


def register_world(module: str | ModuleType, *, continuous: bool = False) -> tuple[str, ...]:
    """Register the worlds of a module outside the package: it defines ``WORLDS: dict[str, () -> World]``.

    Args:
        module: the module, or its dotted name (imported here).
        continuous: its worlds have continuous factors (a :class:`~cfedit.scm.SampledSCM`): listed by
            :func:`continuous_world_names` instead of :func:`world_names`.

    Returns:
        The names of the worlds it added, which :func:`get_world` then finds.

    Raises:
        CfeditError: the module cannot be imported, has no ``WORLDS`` mapping, or one of its names is
            already a world's.
    """
    if isinstance(module, str):
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as e:
            raise CfeditError(f"cannot import world module {clip(module)!r}: {e}") from e
    else:
        mod = module
    worlds = getattr(mod, "WORLDS", None)
    if not isinstance(worlds, dict) or not all(isinstance(k, str) and callable(b) for k, b in worlds.items()):
        raise CfeditError(f"module {clip(mod.__name__)!r} has no WORLDS mapping (name -> function returning a World)")
    every = {**_builders(), **_continuous_builders()}
    taken = sorted(set(worlds) & set(every))
    if taken:
        raise CfeditError(f"world name(s) {', '.join(map(repr, taken))} already registered; worlds are {', '.join(every)}")
    (_continuous_builders() if continuous else _builders()).update(worlds)
    return tuple(worlds)


def unregister_world(name: str) -> None:
    """Remove a world that :func:`register_world` added (e.g. a test's), with the copy :func:`get_world` built;
    the package's own worlds cannot be removed."""

    own = {n for m in (*MODULES, *CONTINUOUS_MODULES) for n in importlib.import_module(m).WORLDS}
    if name in own:
        raise CfeditError(f"world {name!r} is one of the package's own and cannot be unregistered")
    _builders().pop(name, None)
    _continuous_builders().pop(name, None)
    _WORLDS.pop(name, None)


def world_names() -> tuple[str, ...]:
    """The names of every registered world, the package's first."""
    return tuple(_builders())


def continuous_world_names() -> tuple[str, ...]:
    """The worlds with continuous factors (sample-based truths)."""
    return tuple(_continuous_builders())


def get_world(name: str) -> World:
    """The world called ``name`` (``cfedit world list`` shows them), built on first use and then shared.

    Raises:
        CfeditError: no world has that name (the message lists them).
    """
    builders = {**_builders(), **_continuous_builders()}
    if name not in builders:
        raise CfeditError(f"unknown world {clip(name, 120)!r}; worlds are {clip(', '.join(builders), 120)}")
    if name not in _WORLDS:
        _WORLDS[name] = builders[name]()
    return _WORLDS[name]


__all__ = ["CONTINUOUS_MODULES", "MODULES", "World", "continuous_world_names", "get_world", "register_world", "world_names"]
