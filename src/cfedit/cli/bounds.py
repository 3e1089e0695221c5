"""``cfedit bounds``: optimal bounds of feature-level counterfactual queries."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated, Optional

import typer

from cfedit.cli import app
from cfedit.cli.common import console, print_table
from cfedit.errors import CfeditError


@app.command("bounds")
def bounds(
    queries: Annotated[Optional[list[str]], typer.Argument(help='queries, e.g. "P(B[C=green]=1 | D=7, C=red, B=0)"')] = None,
    world: Annotated[Optional[str], typer.Option("--world", help="use a world's exact P(V) and graph (and show its truth)")] = None,
    graph: Annotated[Optional[Path], typer.Option("--graph", help="causal diagram (.cg or one-line form)")] = None,
    labels: Annotated[Optional[Path], typer.Option("--labels", help="CSV of factor values: empirical P(V)")] = None,
    celeba: Annotated[Optional[Path], typer.Option("--celeba", help="CelebA folder: empirical P(V) of its attributes")] = None,
    factors: Annotated[Optional[str], typer.Option("--factors", help="CelebA attributes [default: Male,Young,Gray_Hair]")] = None,
    file: Annotated[Optional[Path], typer.Option("--file", "-f", help="file of queries, one per line (# comments)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False,
) -> None:
    """Tightest interval of each query over all SCMs compatible with the graph that reproduce P(V).

    A query whose programme is large first prints its size, then one line per solving step (stderr)."""
    from cfedit.bounds import optimal_bounds
    from cfedit.core.files import clip, read_text
    from cfedit.core.query import parse_query

    texts = list(queries or [])
    if file is not None:
        lines = [ln.split("#", 1)[0].strip() for ln in read_text(file, "query file").splitlines()]
        if not any(lines):
            raise CfeditError(f"query file {clip(file)} has no queries (one per line; # starts a comment)")
        texts += [t for t in lines if t]
    from cfedit.cli.sources import DataSource

    src = DataSource.of(labels_alone=True, world=world, graph=graph, labels=labels, celeba=celeba, factors=factors)
    truth = None
    if src.kind == "world":
        from cfedit.worlds import get_world

        w = get_world(world)
        g, dom, p_v, truth = w.graph, w.domains, w.scm.observational(), w.scm
        texts = texts or list(w.queries)
    else:
        g, dom, p_v = src.label_table()
        labels = labels if labels is not None else celeba
    if not texts:
        raise CfeditError("no query given: pass queries as arguments or --file FILE")
    rows = []
    log = logging.getLogger("cfedit")
    for i, t in enumerate(texts, start=1):
        q = parse_query(t, dom)
        where = f"[{i}/{len(texts)}] " if len(texts) > 1 else ""
        # a large query prints its size first, then its progress (stderr, via the cfedit logger)
        b = optimal_bounds(q, g, dom, p_v, log=lambda line, _w=where: log.info(_w + line))
        row = {"query": q.format(dom), "lower": b.lower, "upper": b.upper, "identified": b.identified,
               "certified": b.certified, "method": b.method}
        if truth is not None:
            row["truth"] = truth.probability(q)
        rows.append(row)
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    cols = ["query", "lower", "upper", "identified", "certified"] + (["truth"] if truth is not None else [])
    print_table("optimal bounds" + (f" ({world}, exact P(V))" if world else f" (empirical P(V) from {labels})"), cols,
                [[r["query"], f"{r['lower']:.4f}", f"{r['upper']:.4f}", "yes" if r["identified"] else "no",
                  "yes" if r["certified"] else "no (valid, maybe loose)", *([f"{r['truth']:.4f}"] if truth is not None else [])]
                 for r in rows])
    console.print(f"graph: {g}")
