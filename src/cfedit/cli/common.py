"""Small helpers shared by the CLI modules: tables (image grids live in :mod:`cfedit.evaluation.report`)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table


class _Console(Console):
    def on_broken_pipe(self) -> None:
        """A closed output pipe ends the command quietly (``cfedit.cli.main``), not with rich's status 1."""
        self.quiet = True
        raise BrokenPipeError


console = _Console()


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    table = Table(title=title)
    for c in columns:
        table.add_column(str(c))
    for r in rows:
        table.add_row(*[str(x) for x in r])
    console.print(table)


MAX_SEED = 2**31 - 1  # every --seed is 0..MAX_SEED, the range the configs accept


def derived_seed(seed: int, offset: int) -> int:
    """A second seed from ``seed`` (e.g. the evaluation's, after the training's), inside 0..MAX_SEED."""
    return (seed + offset) % (MAX_SEED + 1)


ThreadsOpt = Annotated[Optional[int], typer.Option(
    "--threads", min=1, max=256, help="torch threads for this command [default: the cores not busy with other work]")]


def use_threads(threads: int | None, quiet: bool = False) -> int:
    """Set torch's intra-op threads for this command (the CLI owns its process; the library never does this).

    By default: the cores minus those that other work keeps busy (the 1-minute load average, rounded), at
    least one. Two heavy jobs each using every core of a 2-core machine run 5-12x slower than one; each
    taking the free core keeps both near their one-thread speed."""
    import torch

    cores = (os.cpu_count() or 1) // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))  # torchrun: a share each
    if threads is None:
        busy = round(os.getloadavg()[0]) if hasattr(os, "getloadavg") else 0
        threads = max(1, min(cores, cores - busy))
    torch.set_num_threads(threads)
    if threads < cores and not quiet:  # quiet: the command's stdout is JSON
        console.print(f"using {threads} of {cores} cores for torch (the others are busy; --threads sets it)")
    return threads
