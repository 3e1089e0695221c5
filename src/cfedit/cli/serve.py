"""``cfedit serve``: the web editor over one trained run (the app lives in :mod:`cfedit.server`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from cfedit.cli import app
from cfedit.cli.common import ThreadsOpt, console, use_threads


@app.command("serve")
def serve(
    run: Annotated[str, typer.Argument(help="folder written by `cfedit train` or `cfedit demo`, or pretrained:NAME")],
    host: Annotated[str, typer.Option("--host", help="address to listen on (the default keeps it to this machine)")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="port")] = 8000,
    world: Annotated[Optional[str], typer.Option("--world", help="the world the run was trained on [default: the world "
                                                 "matching its graph and factors, if any]")] = None,
    examples: Annotated[Optional[Path], typer.Option("--examples", help="folder of PNG/JPEG example images "
                                                     "[default: the world's held-out images]")] = None,
    threads: ThreadsOpt = None,
) -> None:
    """Serve the web editor: pick or upload an image, intervene, see the edits and their certificate."""
    use_threads(threads)
    import uvicorn

    from cfedit.errors import CfeditError
    from cfedit.runs import Run
    from cfedit.server.app import create_app

    if examples is not None and not examples.is_dir():
        raise CfeditError(f"--examples {examples} is not a folder")
    loaded = Run.load(run, world)
    w = loaded.world
    application = create_app(loaded, examples)
    console.print(f"serving {run} ({'world ' + w.name if w else 'no world'}) at http://{host}:{port}/  (API docs: /docs; Ctrl-C stops)")
    uvicorn.run(application, host=host, port=port, log_level="warning")
