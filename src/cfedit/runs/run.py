"""Loading a run, deciding the world it belongs to, and its source of optimal bounds."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from cfedit.bounds import Bounds, optimal_bounds
from cfedit.core.domains import Domains
from cfedit.core.graph import CausalGraph
from cfedit.core.query import Query
from cfedit.editors.base import CausalEditor, Editor
from cfedit.editors.bounded import check_seen
from cfedit.errors import CfeditError, QueryError
from cfedit.worlds import World, continuous_world_names, get_world, world_names

__all__ = ["PRETRAINED_PREFIX", "QueryBounds", "Run", "check_belongs", "matching_world"]

PRETRAINED_PREFIX = "pretrained:"
_MISSING = object()


def _mismatch(editor: Editor, world: World) -> str | None:
    """Why ``editor`` was not trained on ``world`` (graph, factors or image shape differ), or None."""
    graph = editor.graph if isinstance(editor, CausalEditor) else world.graph
    if graph != world.graph:
        return f"the run was trained on the graph {graph}, but world {world.name!r} has {world.graph}"
    if editor.domains != world.domains:
        return f"the run's factors {editor.domains.as_dict()} differ from world {world.name!r}'s"
    if tuple(editor.image_shape) != tuple(world.image_shape):
        return (f"the run's images are {'x'.join(map(str, editor.image_shape))}, "
                f"world {world.name!r}'s are {'x'.join(map(str, world.image_shape))}")
    return None


def check_belongs(editor: Editor, world: World) -> None:
    """Refuse (:class:`CfeditError`, naming what differs) an editor trained on another world or graph."""
    why = _mismatch(editor, world)
    if why is not None:
        raise CfeditError(why)


def matching_world(editor: Editor) -> World | None:
    """The registered world whose graph, factors and image shape are the editor's, or None (an editor with
    continuous factors is matched against the worlds with continuous factors)."""
    for name in continuous_world_names() if editor.domains.continuous_names else world_names():
        w = get_world(name)
        if _mismatch(editor, w) is None:
            return w
    return None


class QueryBounds:
    """Optimal bounds of queries over one diagram and one P(V), memoised (safe to share between threads:
    two threads asking the same new query both solve it and store the same answer).

    A run with continuous factors is bounded over their declared bins: ``domains`` is then the binned
    (categorical) domains, ``binned`` says so, and P(V) is the world's exact binned law
    (:class:`cfedit.worlds.base.BinnedLaw`). Where there is no P(V) to bound with (continuous factors and no
    world with a binned law), ``p_v`` is None, ``unavailable`` says why and every query is refused with it.
    """

    MEMO_SIZE = 10_000  # queries remembered; later ones are solved each time (a server's memory stays bounded)

    def __init__(self, graph: CausalGraph, domains: Domains, p_v: np.ndarray | None, source: str, world: World | None = None,
                 check: Callable[[Query], object] | None = None, *, binned: bool = False, unavailable: str = ""):
        self.graph, self.domains, self.source, self.world = graph, domains, source, world
        self.p_v = None if p_v is None else np.asarray(p_v, float)
        self.binned, self.unavailable = binned, unavailable
        if self.p_v is None and not unavailable:
            raise CfeditError("QueryBounds without P(V) must say why (unavailable=...)")
        self._check = check  # refuses (QueryError) a query P(V) does not speak for, before it is solved
        self._memo: dict[Query, Bounds] = {}
        self._truths: dict[Query, float | None] = {}
        self._lock = threading.Lock()

    @classmethod
    def for_editor(cls, editor: Editor, world: World | None = None) -> QueryBounds:
        """The world's exact P(V) and graph when ``world`` is given (checked against the editor), else the
        editor's own graph and fitted P(V) (a :class:`CausalEditor`; other editors need a world). From the
        editor's P(V), queries whose evidence its training labels never show are refused. Continuous factors
        have no table of P(V): a world's exact law over their declared bins (its ``binned`` law) stands in;
        without one the bounds are unavailable (refused, saying why)."""
        if world is not None:
            check_belongs(editor, world)
        cont = editor.domains.continuous_names
        if cont:
            graph = world.graph if world is not None else editor.graph if isinstance(editor, CausalEditor) else None
            if graph is None:
                raise CfeditError(f"editor {editor.name!r} carries no causal diagram: give the world it was trained on")
            names = ", ".join(cont)
            law = world.binned if world is not None else None
            if law is None or law.domains != editor.domains.binned():
                why = (f"world {world.name!r} declares no exact law over the bins of {names}" if world is not None else
                       "the run belongs to no world, so there is no table of P(V) over their bins (its NCM's continuous law is "
                       "not a binned SCM)")
                return cls(graph, editor.domains.binned(), None, "none (continuous factors without a world's binned law)", binned=True,
                           unavailable=(
                    f"no optimal bounds: {names} {'is' if len(cont) == 1 else 'are'} continuous and {why}; optimal bounds "
                    "need a finite P(V), which a world with continuous factors gives over its declared bins (--world NAME)"))
            return cls(world.graph, law.domains, law.table(), f"world {world.name} over the declared bins of {names} (exact binned P(V))",
                       world, binned=True)
        if world is not None:
            return cls(world.graph, world.domains, world.scm.observational(), f"world {world.name} (exact P(V))", world)
        if not isinstance(editor, CausalEditor):
            raise CfeditError(f"editor {editor.name!r} carries no causal diagram and P(V): give the world it was trained on")
        return cls(editor.graph, editor.domains, editor.fitted_p_v(), "the editor's NCM (its fitted P(V))",
                   check=lambda q: check_seen(editor, q))

    def __call__(self, query: Query) -> Bounds:
        if self.p_v is None:
            raise CfeditError(self.unavailable)
        if self._check is not None:
            self._check(query)
        return self._memoised(self._memo, query, lambda: optimal_bounds(query, self.graph, self.domains, self.p_v))

    def truth(self, query: Query) -> float | None:
        """The world's true value of ``query`` (None without a world). Over bins it is the binned law's,
        sampled (:attr:`cfedit.worlds.base.BinnedLaw.truth`), None where no sampled unit meets the evidence."""
        if self.world is None:
            return None
        if self.binned:
            return self._memoised(self._truths, query, lambda: self._binned_truth(query))
        return self._memoised(self._truths, query, lambda: float(self.world.scm.probability(query)))

    def _binned_truth(self, query: Query) -> float | None:
        try:
            return float(self.world.binned.truth(query).value)
        except QueryError:
            return None

    def _memoised(self, store: dict, query: Query, solve: Callable[[], object]):
        with self._lock:
            hit = store.get(query, _MISSING)
        if hit is _MISSING:
            hit = solve()
            with self._lock:
                if len(store) < self.MEMO_SIZE:
                    store[query] = hit
        return hit


@dataclass(frozen=True)
class Run:
    """A trained editor with the world it belongs to (None for a user's own data) and its bounds source."""

    editor: CausalEditor
    world: World | None
    source: str  # the folder, or pretrained:NAME

    @classmethod
    def load(cls, ref: str | Path, world: str | None = None, device: torch.device | str | None = None) -> Run:
        """Load ``ref``: a folder written by ``cfedit train`` (the folder itself) or ``cfedit demo`` /
        ``reproduce`` (its ``editor/``), or ``pretrained:NAME`` for a shipped editor (``cfedit pretrained
        list``). ``world`` names the world the run was trained on (checked); by default it is the registered
        world the run matches, if any. Bounds then come from that world's exact P(V), else from the run's
        fitted NCM (for evidence its training labels hold)."""
        from cfedit.editors.ancm import ANCM
        from cfedit.runs.pretrained import pretrained_folder

        text = str(ref)
        if text.startswith(PRETRAINED_PREFIX):
            folder = pretrained_folder(text[len(PRETRAINED_PREFIX):])
        else:
            folder = Path(ref)
            if not folder.exists():
                raise CfeditError(f"run folder {folder} does not exist (a shipped editor is named {PRETRAINED_PREFIX}NAME: "
                                  "see `cfedit pretrained list`)")
            if (folder / "editor" / "weights.safetensors").is_file():
                folder = folder / "editor"
        editor = ANCM.load(folder, device)
        return cls.of(editor, world, text)

    @classmethod
    def of(cls, editor: CausalEditor, world: str | World | None = None, source: str = "(in memory)") -> Run:
        """A run of an editor in memory (``world`` a name, a :class:`World` or None: the matching one)."""
        w = get_world(world) if isinstance(world, str) else world
        if w is not None:
            check_belongs(editor, w)
        return cls(editor, w if w is not None else matching_world(editor), source)

    @cached_property
    def bounds(self) -> QueryBounds:
        """The run's bounds source: the world's exact P(V) (over the declared bins of continuous factors), else the
        editor's fitted one, else none (continuous factors without a world: ``unavailable`` says so); built at first use."""
        return QueryBounds.for_editor(self.editor, self.world)

    @property
    def name(self) -> str:
        """A short label: the pretrained name or the folder's name."""
        return self.source.removeprefix(PRETRAINED_PREFIX) if self.source.startswith(PRETRAINED_PREFIX) else Path(self.source).name
