"""Causal diagrams with directed edges (mechanisms) and bidirected edges (shared hidden causes).

A :class:`CausalGraph` is immutable; operations such as :meth:`CausalGraph.do` return new graphs.
It is built from text, the one source of truth: the CausalAI Lab ``.cg`` format

    <NODES>
    D
    C
    B
    <EDGES>
    D <-> C
    D -> B
    C -> B

or the one-line form ``"D <-> C; D -> B; C -> B"`` (in both, ``#`` starts a comment). Graph algorithms come
from networkx. Text that declares no factor is refused, and messages cut echoed text to a readable length.

>>> g = CausalGraph.parse("D <-> C; D -> B; C -> B")
>>> g.topological_order()
('D', 'C', 'B')
>>> sorted(g.descendants(["C"]))
['B', 'C']
>>> g.c_components()
(('D', 'C'), ('B',))
>>> g.do(["C"]).to_line()
'D -> B; C -> B'
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import networkx as nx

from cfedit.core.files import clip, read_text
from cfedit.errors import DataError, GraphError

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")
_EDGE = re.compile(r"^\s*([^\s<>-]+)\s*(<->|->|<-)\s*([^\s<>-]+)\s*$")


@dataclass(frozen=True, eq=False)
class CausalGraph:
    """A semi-Markovian causal diagram G over named factors.

    ``nodes`` keep their declaration order (ties in the topological order follow it).
    ``directed`` holds (parent, child) pairs; ``bidirected`` holds sorted (a, b) pairs.
    """

    nodes: tuple[str, ...]
    directed: tuple[tuple[str, str], ...]
    bidirected: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if not self.nodes:
            raise GraphError("a causal graph needs at least one factor")
        seen: set[str] = set()
        for n in self.nodes:
            if not isinstance(n, str) or not _NAME.match(n):
                raise GraphError(f"invalid factor name {clip(n)!r}: use letters, digits and '_' (not first)")
            if n in seen:
                raise GraphError(f"factor {clip(n)!r} is declared twice")
            seen.add(n)
        for kind, edges in (("->", self.directed), ("<->", self.bidirected)):
            for a, b in edges:
                for x in (a, b):
                    if x not in seen:
                        raise GraphError(f"edge {clip(f'{a} {kind} {b}')} names unknown factor {clip(x)!r}; "
                                         f"factors are {clip(', '.join(self.nodes))}")
                if a == b:
                    raise GraphError(f"self loop {clip(a)} {kind} {clip(a)} is not allowed")
        order = {n: i for i, n in enumerate(self.nodes)}
        bi = tuple(sorted({tuple(sorted((a, b), key=order.__getitem__)) for a, b in self.bidirected},
                          key=lambda e: (order[e[0]], order[e[1]])))
        object.__setattr__(self, "bidirected", bi)
        object.__setattr__(self, "directed", tuple(dict.fromkeys(self.directed)))
        try:
            cycle = nx.find_cycle(self._dag)
        except nx.NetworkXNoCycle:
            return
        path = " -> ".join([e[0] for e in cycle] + [cycle[0][0]])
        raise GraphError(f"the directed edges form a cycle: {clip(path)}")

    # ----------------------------------------------------------------- construction from text
    @classmethod
    def parse(cls, text: str) -> CausalGraph:
        """Build a graph from ``.cg`` text or the one-line form (chosen by the presence of ``<NODES>``).

        Text that declares no factor (empty, blank or only comments) is refused: a graph has at least one.

        Args:
            text: ``"D <-> C; D -> B; C -> B"`` (edges separated by ``;`` or new lines), or the CausalAI Lab
                ``.cg`` format (``<NODES>`` and ``<EDGES>`` sections, ``X -> Y`` and ``X <-> Y`` lines).

        Returns:
            The validated graph.

        Raises:
            GraphError: a malformed line (with its number), an unknown name, a self loop or a cycle (named),
                or no factor at all.
        """
        if "<NODES>" in text or "<EDGES>" in text:
            return cls._parse_cg(text)
        return cls._parse_line(text)

    @classmethod
    def load(cls, path: str | Path) -> CausalGraph:
        """Read a graph file (``.cg`` or one-line form), as :meth:`parse` reads text.

        Raises:
            GraphError: a missing, binary, empty or oversized file, or text that :meth:`parse` refuses.
        """
        try:
            text = read_text(path, "graph file")
        except DataError as e:
            raise GraphError(str(e)) from None
        try:
            return cls.parse(text)
        except GraphError as e:
            raise GraphError(f"graph file {clip(Path(path))}: {e}") from None

    @classmethod
    def _parse_line(cls, text: str) -> CausalGraph:
        nodes: list[str] = []
        directed: list[tuple[str, str]] = []
        bidirected: list[tuple[str, str]] = []
        text = "\n".join(line.split("#", 1)[0] for line in text.splitlines())  # '#' starts a comment
        for i, part in enumerate(re.split(r"[;\n]", text)):
            part = part.strip()
            if not part:
                continue
            if _NAME.match(part):
                nodes.append(part)
                continue
            a, kind, b = _split_edge(part, f"item {i + 1} ({clip(part, 60)!r})")
            nodes.extend([a, b])
            _add_edge(kind, a, b, directed, bidirected)
        if not nodes:
            raise GraphError("the graph text declares no factors: write e.g. 'X -> Y; X <-> Z' or a .cg file")
        return cls(tuple(dict.fromkeys(nodes)), tuple(directed), tuple(bidirected))

    @classmethod
    def _parse_cg(cls, text: str) -> CausalGraph:
        nodes: list[str] = []
        declared: set[str] = set()
        directed: list[tuple[str, str]] = []
        bidirected: list[tuple[str, str]] = []
        section = None
        for lineno, raw in enumerate(text.splitlines(), start=1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            if line in ("<NODES>", "<EDGES>"):
                section = line
                continue
            if section is None:
                raise GraphError(f"line {lineno}: {clip(raw.strip())!r} comes before a <NODES> or <EDGES> section")
            if section == "<NODES>":
                if not _NAME.match(line):
                    raise GraphError(f"line {lineno}: {clip(line)!r} is not a factor name")
                nodes.append(line)
                declared.add(line)
            else:
                a, kind, b = _split_edge(line, f"line {lineno}")
                for x in (a, b):
                    if x not in declared:
                        raise GraphError(f"line {lineno}: edge names {clip(x)!r}, which is not listed under <NODES>")
                _add_edge(kind, a, b, directed, bidirected)
        if not nodes:
            raise GraphError("the graph text declares no factors (empty <NODES> section)")
        return cls(tuple(nodes), tuple(directed), tuple(bidirected))

    def to_cg(self) -> str:
        """The CausalAI Lab ``.cg`` text of this graph."""
        lines = ["<NODES>", *self.nodes, "", "<EDGES>"]
        lines += [f"{a} -> {b}" for a, b in self.directed] + [f"{a} <-> {b}" for a, b in self.bidirected]
        return "\n".join(lines) + "\n"

    def to_line(self) -> str:
        """The one-line form; isolated factors are listed by name."""
        parts = [f"{a} <-> {b}" for a, b in self.bidirected] + [f"{a} -> {b}" for a, b in self.directed]
        touched = {x for e in (*self.directed, *self.bidirected) for x in e}
        parts += [n for n in self.nodes if n not in touched]
        return "; ".join(parts)

    # ----------------------------------------------------------------- structure
    @cached_property
    def _dag(self) -> nx.DiGraph:
        g = nx.DiGraph()
        g.add_nodes_from(self.nodes)
        g.add_edges_from(self.directed)
        return g

    def check_factor(self, name: str) -> str:
        """``name`` if it is a node, else a :class:`~cfedit.errors.GraphError` listing the nodes."""
        if name not in self._dag:
            raise GraphError(f"unknown factor {clip(name)!r}; factors are {clip(', '.join(self.nodes))}")
        return name

    def parents(self, node: str) -> tuple[str, ...]:
        """Pa(node), in declaration order."""
        self.check_factor(node)
        ps = set(self._dag.predecessors(node))
        return tuple(n for n in self.nodes if n in ps)

    def children(self, node: str) -> tuple[str, ...]:
        """The factors with a directed edge from ``node``."""
        self.check_factor(node)
        cs = set(self._dag.successors(node))
        return tuple(n for n in self.nodes if n in cs)

    def spouses(self, node: str) -> tuple[str, ...]:
        """Factors sharing a hidden cause with ``node`` (bidirected neighbours)."""
        self.check_factor(node)
        sp = {b if a == node else a for a, b in self.bidirected if node in (a, b)}
        return tuple(n for n in self.nodes if n in sp)

    def ancestors(self, nodes: Iterable[str]) -> frozenset[str]:
        """An(X): the nodes themselves and every node with a directed path into one of them."""
        out: set[str] = set()
        for n in nodes:
            out |= nx.ancestors(self._dag, self.check_factor(n)) | {n}
        return frozenset(out)

    def descendants(self, nodes: Iterable[str]) -> frozenset[str]:
        """De(X): the nodes themselves and every node reachable from one of them by directed edges."""
        out: set[str] = set()
        for n in nodes:
            out |= nx.descendants(self._dag, self.check_factor(n)) | {n}
        return frozenset(out)

    def non_descendants(self, nodes: Iterable[str]) -> tuple[str, ...]:
        """The factors that an intervention on ``nodes`` must leave unchanged."""
        de = self.descendants(nodes)
        return tuple(n for n in self.nodes if n not in de)

    def topological_order(self) -> tuple[str, ...]:
        """A topological order of the directed part; ties broken by declaration order."""
        rank = {n: i for i, n in enumerate(self.nodes)}
        return tuple(nx.lexicographical_topological_sort(self._dag, key=rank.__getitem__))

    def c_components(self) -> tuple[tuple[str, ...], ...]:
        """The C-components: connected components of the bidirected part (singletons included)."""
        g = nx.Graph()
        g.add_nodes_from(self.nodes)
        g.add_edges_from(self.bidirected)
        rank = {n: i for i, n in enumerate(self.topological_order())}
        comps = [tuple(sorted(c, key=rank.__getitem__)) for c in nx.connected_components(g)]
        return tuple(sorted(comps, key=lambda c: rank[c[0]]))

    def bidirected_cliques(self) -> tuple[tuple[str, ...], ...]:
        """Maximal cliques of the bidirected part with at least two factors (one hidden cause each)."""
        g = nx.Graph()
        g.add_nodes_from(self.nodes)
        g.add_edges_from(self.bidirected)
        rank = {n: i for i, n in enumerate(self.nodes)}
        cliques = [tuple(sorted(c, key=rank.__getitem__)) for c in nx.find_cliques(g) if len(c) > 1]
        return tuple(sorted(cliques, key=lambda c: [rank[x] for x in c]))

    def do(self, nodes: Iterable[str]) -> CausalGraph:
        """G_{\\overline{X}}: the graph with every edge into X removed (directed and bidirected)."""
        xs = {self.check_factor(n) for n in nodes}
        return CausalGraph(
            self.nodes,
            tuple(e for e in self.directed if e[1] not in xs),
            tuple(e for e in self.bidirected if not (set(e) & xs)),
        )

    def _key(self) -> tuple:
        return frozenset(self.nodes), frozenset(self.directed), frozenset(frozenset(e) for e in self.bidirected)

    def __eq__(self, other: object) -> bool:
        """Two graphs are equal when they have the same factors and edges (declaration order aside)."""
        return isinstance(other, CausalGraph) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __str__(self) -> str:
        return self.to_line()


def _split_edge(text: str, where: str) -> tuple[str, str, str]:
    m = _EDGE.match(text)
    if not m:
        raise GraphError(f"{where}: cannot read {clip(text.strip())!r} as an edge; write 'X -> Y' or 'X <-> Y'")
    a, kind, b = m.groups()
    for x in (a, b):
        if not _NAME.match(x):
            raise GraphError(f"{where}: {clip(x)!r} is not a valid factor name")
    return a, kind, b


def _add_edge(kind: str, a: str, b: str, directed: list, bidirected: list) -> None:
    if kind == "->":
        directed.append((a, b))
    elif kind == "<-":
        directed.append((b, a))
    else:
        bidirected.append((a, b))
