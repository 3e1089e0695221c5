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
    from cfedit.cli import bounds, editing, evaluation, theory, world  # noqa: F401  (each adds its commands to `app`)


def _logging() -> None:
    """Library progress (the ``cfedit`` logger) goes to the terminal, one plain line each."""
    log = logging.getLogger("cfedit")
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)


def main() -> None:
    _register()
    _logging()
    try:
        app(standalone_mode=False)
    except CfeditError as e:
        typer.secho(f"error: {e}", fg="red", err=True)
        sys.exit(2)
    except (typer.Abort, KeyboardInterrupt):
        typer.secho("interrupted", err=True)
        sys.exit(130)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except ModuleNotFoundError as e:
        if (e.name or "").split(".")[0] not in EDIT_MODULES:
            raise
        typer.secho(f"error: this command needs {e.name}, which the light install lacks: pip install 'cfedit[edit]'",
                    fg="red", err=True)
        sys.exit(2)
    except Exception as e:
        if hasattr(e, "show") and hasattr(e, "exit_code"):  # usage errors (click's, or the copy typer bundles)
            e.show()
            sys.exit(e.exit_code)
        raise
