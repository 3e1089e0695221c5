"""The ``cfedit`` command line: thin wrappers over the library (no logic lives here).

Each submodule registers its commands on :data:`app`. Errors a user can act on (:class:`CfeditError`)
and usage errors print one line starting with ``error:`` and exit with status 2, without a traceback; an
interruption (Ctrl-C) exits with 130; a command that needs the ``edit`` extra says how to install it.
"""

from __future__ import annotations

import logging
import sys

import typer

from cfedit.errors import CfeditError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Causal counterfactual image editing.")

EDIT_MODULES = {"torch", "safetensors", "mlxtend", "matplotlib"}  # what `pip install 'cfedit[edit]'` adds


def _register() -> None:
    from cfedit.cli import bounds, editing, evaluation, pretrained, serve, theory, world  # noqa: F401  (each adds its commands to `app`)


def _logging() -> None:
    """Library progress (the ``cfedit`` logger) goes to the terminal, one plain line each."""
    log = logging.getLogger("cfedit")
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)


def _fail(message: str, code: int = 2) -> None:
    """One ``error:`` line; a message's further lines (a query with a caret under the bad token) follow it.
    Lines are cut (:func:`cfedit.core.files.clip`) past the length the library's own messages keep to."""
    from cfedit.core.files import MESSAGE_CHARS, clip

    first, *rest = str(message).splitlines() or [""]
    lines = [clip(ln, 2 * MESSAGE_CHARS) for ln in (f"error: {first}", *rest[:2])]
    typer.secho(lines[0], fg="red", err=True)
    for ln in lines[1:]:
        typer.echo(ln, err=True)
    sys.exit(code)


def _interrupted() -> None:
    typer.secho("error: interrupted; a training run resumes from its last checkpoint with the same command",
                fg="red", err=True)
    sys.exit(130)


def main() -> None:
    """Run the command line; every failure ends in one ``error:`` line (2: bad input or usage, 130:
    interrupted, 1: a bug, whose traceback ``CFEDIT_DEBUG=1`` shows)."""
    import os

    try:
        _register()
        _logging()
        code = app(standalone_mode=False)
    except CfeditError as e:
        _fail(str(e))
    except (typer.Abort, KeyboardInterrupt):
        _interrupted()
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except Exception as e:
        if isinstance(e, ModuleNotFoundError) and (e.name or "").split(".")[0] in EDIT_MODULES:
            _fail(f"this command needs {e.name}, which the light install lacks: pip install 'cfedit[edit]'")
        if hasattr(e, "format_message") and hasattr(e, "exit_code"):  # usage errors (click's, or typer's copy)
            ctx = getattr(e, "ctx", None)
            where = f" (see: {ctx.command_path} --help)" if ctx is not None else " (see: cfedit --help)"
            _fail(e.format_message() + where, e.exit_code if e.exit_code else 2)
        if os.environ.get("CFEDIT_DEBUG"):
            raise
        _fail(f"internal error {type(e).__name__}: {e}. Please report it; CFEDIT_DEBUG=1 shows the traceback", 1)
    else:
        if code == 130:  # typer turns Ctrl-C into an exit code when not standalone
            _interrupted()
        if isinstance(code, int) and code:
            sys.exit(code)
