"""``cfedit pretrained``: the editors (and reference networks) that ship with the package."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from cfedit.cli import app
from cfedit.cli.common import console, print_table

pretrained_app = typer.Typer(no_args_is_help=True, help="Editors trained once and shipped with the package (pretrained:NAME).")
app.add_typer(pretrained_app, name="pretrained")


@pretrained_app.command("list")
def list_artefacts(as_json: Annotated[bool, typer.Option("--json", help="print the manifest's entries as JSON")] = False) -> None:
    """Every shipped artefact: its name, world, mechanism, fingerprint, how it was made and its figures."""
    from dataclasses import asdict

    from cfedit.artefacts import read_manifest

    entries = [a for _, a in sorted(read_manifest().items())]
    if as_json:
        typer.echo(json.dumps([{**asdict(a), "fingerprint": a.fingerprint} for a in entries], indent=2))
        return
    if not entries:
        console.print("this installation ships no trained artefacts")
        return
    print_table("shipped artefacts (use an editor as pretrained:NAME)",
                ["name", "kind", "world", "mechanism", "steps", "dtype", "fingerprint", "training"],
                [(a.name, a.kind, a.world or "-", a.mechanism or "-", a.steps or "-", a.dtype, a.fingerprint,
                  f"{a.wall_seconds:,.0f} s" if a.wall_seconds else "-") for a in entries])
    for a in entries:
        console.print(f"{a.name}: {a.command} ({a.hardware})", soft_wrap=True)
