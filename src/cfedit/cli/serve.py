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
    allowed_host: Annotated[Optional[list[str]], typer.Option("--allowed-host", help="a host name the browser may reach the "
                                                              "server by, besides localhost, --host and IP addresses "
                                                              "(repeatable; '*': any)")] = None,
    threads: ThreadsOpt = None,
) -> None:
    """Serve the web editor: pick or upload an image, intervene, see the edits and their certificate."""
    use_threads(threads)
    from cfedit.errors import CfeditError
    from cfedit.runs import Run
    from cfedit.server.app import ServeConfig, create_app
    from cfedit.server.limits import server_names
    from cfedit.server.listen import bind, serve

    if examples is not None and not examples.is_dir():
        raise CfeditError(f"--examples {examples} is not a folder")
    sock = bind(host, port)  # before anything is announced: a port in use is one error line
    with sock:
        loaded = Run.load(run, world)
        w = loaded.world
        application = create_app(loaded, examples, ServeConfig(allowed_hosts=server_names(host, allowed_host or ())))
        url_host = f"[{host}]" if ":" in host else host
        console.print(f"serving {run} ({'world ' + w.name if w else 'no world'}) at http://{url_host}:{sock.getsockname()[1]}/  "
                      "(API docs: /docs; Ctrl-C stops)", soft_wrap=True)  # one line: the address stays whole
        serve(application, sock)
