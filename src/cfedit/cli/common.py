"""Small helpers shared by the CLI modules: tables (image grids live in :mod:`cfedit.evaluation.report`)."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

from cfedit.evaluation.report import save_grid  # noqa: F401  (re-exported for the CLI modules)

console = Console()


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    table = Table(title=title)
    for c in columns:
        table.add_column(str(c))
    for r in rows:
        table.add_row(*[str(x) for x in r])
    console.print(table)
