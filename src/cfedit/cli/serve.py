"""``cfedit serve``: the web editor over one trained run (the app lives in :mod:`cfedit.server`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from cfedit.cli import app
from cfedit.cli.common import ThreadsOpt, console, use_threads


@app.command("serve")
def serve(
    run: Annotated[Optional[str], typer.Argument(help="folder written by `cfedit train` or `cfedit demo`, or pretrained:NAME "
                                                 "[default: every shipped editor, with a selector on the page]")] = None,
    host: Annotated[str, typer.Option("--host", help="address to listen on (the default keeps it to this machine)")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="port")] = 8000,
    world: Annotated[Optional[str], typer.Option("--world", help="the world the run was trained on [default: the world "
                                                 "matching its graph and factors, if any]")] = None,
    examples: Annotated[Optional[Path], typer.Option("--examples", help="folder of PNG/JPEG example images "
                                                     "[default: the world's held-out images]")] = None,
    allowed_host: Annotated[Optional[list[str]], typer.Option("--allowed-host", help="a host name the browser may reach the "
                                                              "server by, besides localhost, --host and IP addresses "
                                                              "(repeatable; '*': any)")] = None,
    batch: Annotated[float, typer.Option("--batch", min=0, max=1000, help="gather concurrent edit requests for up to this many "
                                         "milliseconds and run them as one batch (faster under many clients; a batched "
                                         "edit's pixels agree with its lone edit up to float rounding) [default: 0, off]")] = 0.0,
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
    if run is None and (world is not None or examples is not None):
        raise CfeditError("--world and --examples go with a run: give RUN (with no RUN every shipped editor is served)")
    sock = bind(host, port)  # before anything is announced: a port in use is one error line
    with sock:
        config = ServeConfig(allowed_hosts=server_names(host, allowed_host or ()), batch_ms=batch)
        if run is None:
            from cfedit.runs import PRETRAINED_PREFIX, list_pretrained
            from cfedit.server.app import create_multi_app

            names = [a.name for a in list_pretrained()]
            if not names:
                raise CfeditError("this installation ships no trained editor: give a RUN folder (`cfedit train` writes one)")
            application = create_multi_app({n: Run.load(PRETRAINED_PREFIX + n) for n in names}, config)
            what = f"the shipped editors {', '.join(names)}"
        else:
            loaded = Run.load(run, world)
            application = create_app(loaded, examples, config)
            what = f"{run} ({'world ' + loaded.world.name if loaded.world else 'no world'})"
        url_host = f"[{host}]" if ":" in host else host
        console.print(f"serving {what} at http://{url_host}:{sock.getsockname()[1]}/  (API docs: /docs; Ctrl-C stops)",
                      soft_wrap=True)  # one line: the address stays whole
        serve(application, sock)
