"""What a ground-truth world is: an exact ASCM that describes itself (docs: worlds/index.md).

A world module builds :class:`World` objects and lists them in its ``WORLDS`` mapping (name -> builder);
the registry in :mod:`cfedit.worlds` lists the modules. Generic code (CLI, evaluation, reports, realism,
theory) reads what it needs from the world object: its graph and exact SCM, its documented queries, its
image shape, true image mechanism and oracle reader, the actions its figures show and the factor its
reversibility metric flips.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from cfedit.core.domains import Domains
from cfedit.core.graph import CausalGraph
from cfedit.core.query import Query
from cfedit.data import MAX_DATASET_BYTES, WORLD_TRAIN_UNITS, LabelledImages
from cfedit.errors import CfeditError, DataError
from cfedit.scm import ASCM, SCM, Estimate, ImageMechanism, Reader

ImagesFor = Callable[[str, "str | None"], ImageMechanism]
"""(split, data_dir) -> the true image mechanism on that split ("train" or "eval") of the world's image noise."""
ReaderFor = Callable[["str | None"], Reader]
"""data_dir -> the world's oracle reader of every factor."""


@dataclass(frozen=True)
class BinnedLaw:
    """A world with continuous factors, seen through their declared bins: an exact model over the binned
    factors, so that optimal bounds apply to events on bins (``cfedit bounds``, ``cfedit world show``)."""

    domains: Domains  # categorical: each continuous factor replaced by its declared bins (value names "lo-hi")
    table: Callable[[], np.ndarray] = field(repr=False)  # the exact P(V) over the bins, axes in domains.names order
    truth: Callable[[Query], Estimate] = field(repr=False)  # the true value of a query over the bins, with its Monte Carlo error
    action: str = ""  # what do(X in bin b) does to a unit (the binned action the truth and bounds are about)
    queries: tuple[str, ...] = ()  # documented queries over the bins


@dataclass(frozen=True)
class World:
    """A ground-truth setting: graph, exact SCM, documented queries, and images on demand."""

    name: str
    description: str
    reference: str  # the paper / figure the setting comes from
    scm: SCM = field(repr=False)
    queries: tuple[str, ...]  # documented queries, each of the edit form P(W[X=x']=w | V=v)
    mechanisms: str = field(repr=False)  # the documented mechanisms: formulas and parameters
    image_shape: tuple[int, int, int]
    images: ImagesFor = field(repr=False)
    reader: ReaderFor = field(repr=False)
    figure_actions: tuple[Mapping[str, str], ...] = ()  # actions that report grids and the demo show (value names; two or more)
    reversibility: str = ""  # the factor flipped and edited back by the reversibility metric ("": none)
    data_note: str = ""  # where the image noise comes from (e.g. which handwriting pools)
    editor_settings: Mapping[str, object] = field(default_factory=dict)  # ANCM defaults for this world (config.json's dict form)
    stated_accuracy: Mapping[str, float] = field(default_factory=dict)  # per factor, the least share of evaluation-split
    # renders (factual and counterfactual) its oracle reads right; tests/worlds/test_conformance.py holds it to that
    train_units: int = WORLD_TRAIN_UNITS  # units `cfedit train --world` draws by default (fewer where images are slow to render)
    binned: BinnedLaw | None = None  # continuous factors only: the exact model over their declared bins

    def __post_init__(self) -> None:
        for action in self.figure_actions:
            self.domains.encode(action)  # names and values must exist
        if len(self.figure_actions) < 2:
            raise CfeditError(f"world {self.name!r} must name at least two figure actions (the demo shows two)")
        if self.reversibility and self.reversibility not in self.domains:
            raise CfeditError(f"world {self.name!r}: reversibility factor {self.reversibility!r} is not a factor")
        if set(self.stated_accuracy) - set(self.domains.names) or not all(0 < a <= 1 for a in self.stated_accuracy.values()):
            raise CfeditError(f"world {self.name!r}: stated_accuracy must give factors a share in (0, 1]")
        if len(self.image_shape) != 3:
            raise CfeditError(f"world {self.name!r}: image_shape must be (C, H, W), got {self.image_shape}")

    @property
    def graph(self) -> CausalGraph:
        return self.scm.graph

    @property
    def domains(self) -> Domains:
        return self.scm.domains

    def dataset(self, n: int, seed: int = 0, split: str = "train", data_dir: str | None = None) -> LabelledImages:
        """n units of the world with their images rendered from its ``split`` image noise (refused before
        rendering when they would take more than ``MAX_DATASET_BYTES`` as float32)."""
        need = 4 * int(n) * int(np.prod(self.image_shape))
        if n < 1 or need > MAX_DATASET_BYTES:
            raise DataError(f"{n:,} units of world {self.name!r} ({'x'.join(map(str, self.image_shape))}) need "
                            f"{need / 2**30:.1f} GiB as float32; give 1 to {MAX_DATASET_BYTES // (4 * int(np.prod(self.image_shape))):,}")
        a = self.ascm(split, data_dir, oracle=False)
        units = a.units(n, seed)
        dtype = {k: np.float64 if self.domains.is_continuous(k) else np.int64 for k in self.domains.names}
        return LabelledImages(a.factual(units), {k: units.v[k].astype(dtype[k]) for k in self.domains.names}, self.domains)

    def ascm(self, split: str = "eval", data_dir: str | None = None, oracle: bool = True) -> ASCM:
        """The ASCM whose image noise comes from ``split`` ("eval": what no model has seen; "train")."""
        if split not in ("train", "eval"):
            raise CfeditError(f"unknown split {split!r}; splits are train, eval")
        return ASCM(self.scm, self.images(split, data_dir), self.reader(data_dir) if oracle else None)

    def oracle_accuracy(self, units_v: Mapping[str, np.ndarray], read: Mapping[str, np.ndarray]) -> dict[str, float]:
        """Share of units whose factor the oracle read as the truth, per factor."""
        return {k: float(np.mean(np.asarray(read[k]) == np.asarray(units_v[k]))) for k in self.domains.names}
