"""Where a command's data comes from: a ground-truth world, a folder of images with a labels CSV and a
diagram, or a CelebA folder. One resolver for ``cfedit bounds``, ``cfedit train`` and ``cfedit evaluate``:
the same flags, the same refusal when none or several are given, the same reading of each source."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cfedit.errors import DataError

__all__ = ["DataSource"]


@dataclass(frozen=True, kw_only=True)
class DataSource:
    """The data flags of a command, checked: exactly one of ``world``, ``images`` / ``labels`` (a folder, or
    for ``cfedit bounds`` the labels alone) and ``celeba``; ``graph`` goes with a folder or CelebA."""

    world: str | None = None
    images: Path | None = None
    labels: Path | None = None
    graph: Path | None = None
    celeba: Path | None = None
    factors: str | None = None  # CelebA attributes, comma-separated

    @classmethod
    def of(cls, *, labels_alone: bool = False, graph_needed: bool = True, **flags) -> DataSource:
        """Check the flags: ``labels_alone`` lets a labels CSV stand without ``--images`` (``cfedit bounds``);
        ``graph_needed``: a folder needs ``--graph`` (not in ``cfedit evaluate``, which takes the run's)."""
        s = cls(**flags)
        folder = s.images is not None or (labels_alone and s.labels is not None)
        given = (s.world is not None) + folder + (s.celeba is not None)
        what = "--graph FILE --labels CSV" if labels_alone else "--images DIR --labels CSV" + (" --graph FILE" if graph_needed else "")
        if given != 1:
            raise DataError(f"give {'one' if given == 0 else 'only one'} of --world NAME, {what}, or --celeba DIR")
        if s.world is not None and (s.graph is not None or s.labels is not None):
            raise DataError("--world brings its own diagram and labels: leave out --graph and --labels")
        if folder and (s.labels is None or (graph_needed and s.graph is None)):
            raise DataError(f"{'--images' if s.images is not None else '--labels'} needs "
                            + ("--labels CSV and --graph FILE" if graph_needed else "--labels CSV"))
        return s

    @property
    def kind(self) -> str:
        """``world``, ``folder`` or ``celeba``."""
        return "world" if self.world is not None else ("celeba" if self.celeba is not None else "folder")

    def celeba_graph(self):
        """The diagram over the CelebA attributes (the default one, or ``--graph``) and the attributes."""
        from cfedit.core.files import read_text
        from cfedit.core.graph import CausalGraph
        from cfedit.data import celeba as cb

        attrs = cb.parse_factors(self.factors)
        return CausalGraph.parse(cb.graph_text(attrs, None if self.graph is None else read_text(self.graph, "graph file"))), attrs

    def label_table(self):
        """(graph, domains, P(V) of the labels) of a folder's CSV or CelebA's attributes (not of a world)."""
        from cfedit.bounds import empirical_table, read_labels_csv
        from cfedit.core.graph import CausalGraph

        if self.kind == "celeba":
            from cfedit.data import celeba as cb

            g, attrs = self.celeba_graph()
            lab = cb.read_labels(self.celeba, attrs)
            return g, lab.domains, empirical_table(lab.labels, lab.domains)
        from cfedit.data import domains_from_csv

        g = CausalGraph.load(self.graph)
        dom = domains_from_csv(self.labels, g.nodes)
        return g, dom, empirical_table(read_labels_csv(self.labels, dom), dom)
