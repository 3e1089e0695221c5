"""``cfedit world``: list, show, sample and counterfactual of the ground-truth worlds."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer

from cfedit.cli import app
from cfedit.cli.common import MAX_SEED, console, print_table
from cfedit.core.figures import save_grid
from cfedit.core.query import parse_counterfactual, parse_query
from cfedit.worlds import continuous_world_names, get_world, world_names

world_app = typer.Typer(no_args_is_help=True, help="Ground-truth worlds (exact ASCMs that render images).")
app.add_typer(world_app, name="world")

DataOpt = Annotated[Optional[Path], typer.Option(
    "--mnist", "--data", help="the world's image data folder, e.g. the four MNIST IDX files (default: what the world ships with)")]
MAX_GRID = 1024  # the most units one grid PNG shows
SeedOpt = Annotated[int, typer.Option(min=0, max=MAX_SEED, help="random seed (0 to 2**31 - 1)")]


@world_app.command("list")
def list_worlds() -> None:
    """List the worlds (those with continuous factors last: `cfedit evaluate` measures their edits instead)."""
    rows = [(n, get_world(n).graph, get_world(n).description) for n in world_names()]
    rows += [(n, get_world(n).graph, get_world(n).description + " (continuous factors)") for n in continuous_world_names()]
    print_table("worlds", ["name", "graph", "description"], rows)


@world_app.command("show")
def show(name: str) -> None:
    """Graph, mechanisms, a summary of P(V), and the documented queries with their true values."""
    w = get_world(name)
    console.print(f"[bold]{w.name}[/bold]: {w.description}\nreference: {w.reference}\ngraph: {w.graph}\n")
    console.print("[bold]mechanisms[/bold]\n" + w.mechanisms + "\n")
    if w.data_note:
        console.print(f"image data: {w.data_note}\n")
    if w.domains.continuous_names:
        return _show_continuous(w)
    head, rows = _table_rows(w)
    print_table(f"P({', '.join(w.domains.names)})", head, rows)
    console.print("; ".join(f"P({k}={w.domains.decode(k, i)}) = {p:.3f}" for k, m in _marginals(w).items() for i, p in enumerate(m)))
    from cfedit.bounds import optimal_bounds

    p_v, rows = w.scm.observational(), []
    for text in w.queries:
        q = parse_query(text, w.domains)
        b = optimal_bounds(q, w.graph, w.domains, p_v)
        rows.append((text, f"{w.scm.probability(q):.4f}", f"[{b.lower:.4f}, {b.upper:.4f}]", "yes" if b.identified else "no"))
    print_table("documented queries", ["query", "true value", "optimal bounds", "identified"], rows)


SHOW_SAMPLES = 100_000  # units behind the summaries and truths of a world with continuous factors


def _show_continuous(w) -> None:
    """Summaries of P(V) from sampled units, the documented queries' truths (with their Monte Carlo error),
    and the queries over the declared bins with their optimal bounds from the exact binned law."""
    from cfedit.bounds import optimal_bounds

    v, dom = w.scm.sample(SHOW_SAMPLES, seed=0), w.domains
    rows = []
    for k in dom.names:
        x = v[k]
        if dom.is_continuous(k):
            q = np.quantile(x, [0.05, 0.5, 0.95])
            bins = dom.bin(k, x)
            mass = ", ".join(f"{name}: {np.mean(bins == i):.3f}" for i, name in enumerate(dom.continuous(k).bin_names))
            rows.append((k, f"continuous in [{dom.continuous(k).lo:g}, {dom.continuous(k).hi:g}]",
                         f"mean {x.mean():.3f}, sd {x.std():.3f}, 5/50/95% {q[0]:.3f} / {q[1]:.3f} / {q[2]:.3f}", mass))
        else:
            rows.append((k, f"{dom.size(k)} values", ", ".join(f"{dom.decode(k, i)}: {p:.3f}" for i, p in
                                                               enumerate(np.bincount(x, minlength=dom.size(k)) / len(x))), "-"))
    print_table(f"P({', '.join(dom.names)}) from {SHOW_SAMPLES:,} sampled units", ["factor", "domain", "law", "declared bins"], rows)
    rows = []
    for text in w.queries:
        q = parse_counterfactual(text, dom)
        est = w.scm.expectation(q, SHOW_SAMPLES) if text.lstrip().startswith("E") else w.scm.probability(q, SHOW_SAMPLES)
        rows.append((text, f"{est.value:.4f}" + (f" +- {1.96 * est.stderr:.4f}" if est.stderr else "")))
    print_table("documented queries (true value, +- its 95% Monte Carlo error)", ["query", "true value"], rows)
    if w.binned is None:
        return
    b, p_v, rows = w.binned, w.binned.table(), []
    for text in b.queries:
        q = parse_query(text, b.domains)
        bnd, est = optimal_bounds(q, w.graph, b.domains, p_v), b.truth(q)
        truth = f"{est.value:.4f}" + (f" +- {1.96 * est.stderr:.4f}" if est.stderr else "")
        rows.append((text, truth, f"[{bnd.lower:.4f}, {bnd.upper:.4f}]", "yes" if bnd.identified else "no"))
    print_table("queries over the declared bins (exact binned law)", ["query", "true value", "optimal bounds", "identified"], rows)
    console.print(f"binned action: {b.action}")


def _marginals(w) -> dict[str, np.ndarray]:
    p = w.scm.observational()
    return {k: p.sum(axis=tuple(j for j in range(p.ndim) if j != i)) for i, k in enumerate(w.domains.names)}


def _table_rows(w) -> tuple[list[str], list[list[str]]]:
    """P(V) with the first factor's values as rows and the joint values of the others as columns."""
    p = w.scm.observational()
    names, dom = w.domains.names, w.domains
    rest = names[1:]
    cols = list(np.ndindex(*p.shape[1:]))
    head = [names[0], *(",".join(f"{k}={dom.decode(k, c)}" for k, c in zip(rest, col)) for col in cols), f"P({names[0]})"]
    rows = [[dom.decode(names[0], i), *(f"{p[(i, *col)]:.4f}" for col in cols), f"{p[i].sum():.3f}"] for i in range(p.shape[0])]
    return head, rows


def _caption(w, v: dict, i: int) -> str:
    return " ".join(f"{k}={w.domains.decode(k, v[k][i])}"[:max(9, len(k) + 2)] for k in w.domains.names)


@world_app.command("sample")
def sample(
    name: str,
    n: Annotated[int, typer.Option("-n", min=1, max=MAX_GRID, help=f"number of units (1 to {MAX_GRID})")] = 64,
    output: Annotated[Path, typer.Option("-o", "--output", help="PNG file to write")] = Path("grid.png"),
    seed: SeedOpt = 0,
    split: Annotated[str, typer.Option(help="writer pool: eval or train")] = "eval",
    data: DataOpt = None,
) -> None:
    """Sample n units and write their images as a grid with the factors under each."""
    w = get_world(name)
    a = w.ascm(split, None if data is None else str(data), oracle=False)
    units = a.units(n, seed)
    path = save_grid(output, a.factual(units), [_caption(w, units.v, i) for i in range(n)])
    console.print(f"wrote {path} ({n} images)")


@world_app.command("counterfactual")
def counterfactual(
    name: str,
    do: Annotated[list[str], typer.Option("--do", help="intervention, e.g. C=green (repeatable)")],
    n: Annotated[int, typer.Option("-n", min=1, max=MAX_GRID // 2, help=f"number of units (1 to {MAX_GRID // 2})")] = 16,
    output: Annotated[Path, typer.Option("-o", "--output", help="PNG file to write")] = Path("pairs.png"),
    seed: SeedOpt = 0,
    data: DataOpt = None,
) -> None:
    """Factual and true counterfactual images of the same units, side by side."""
    w = get_world(name)
    x = w.domains.parse_assignments(do)
    a = w.ascm("eval", None if data is None else str(data), oracle=False)
    units = a.units(n, seed)
    v_cf, cf = a.counterfactual(units, x)
    images = np.stack([a.factual(units), cf], axis=1).reshape(2 * n, *cf.shape[1:])
    caps = [c for i in range(n) for c in (_caption(w, units.v, i), _caption(w, v_cf, i))]
    path = save_grid(output, images, caps, ncol=8)
    console.print(f"wrote {path}: {n} pairs (factual | counterfactual under do({w.domains.format(x)}))")


@world_app.command("export")
def export(
    name: str,
    n: Annotated[int, typer.Option("-n", min=1, help="number of units (one PNG each)")],
    output: Annotated[Path, typer.Option("-o", "--output", help="new or empty folder to write")],
    split: Annotated[str, typer.Option(help="writer pool: eval or train")] = "eval",
    seed: SeedOpt = 0,
    data: DataOpt = None,
) -> None:
    """Write n units as a user's data set: PNGs, labels.csv, graph.cg, truth.json (exact P(V), true queries)."""
    from cfedit.worlds.export import export_world

    path = export_world(get_world(name), n, output, split=split, seed=seed, data_dir=None if data is None else str(data))
    console.print(f"wrote {path}: {n} images, labels.csv, graph.cg and truth.json ({split} split, seed {seed})")
