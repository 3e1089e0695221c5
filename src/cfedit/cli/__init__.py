"""The ``cfedit`` command line: thin wrappers over the library (no logic lives here).

Each submodule registers its commands on :data:`app`. Errors a user can act on (:class:`CfeditError`)
print their message and exit with status 2, without a traceback.
"""

from __future__ import annotations

import sys

import typer

from cfedit.errors import CfeditError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Causal counterfactual image editing.")


def _register() -> None:
    from cfedit.cli import world  # noqa: F401  (each module adds its commands to `app`)

    for optional in ("bounds", "theory", "editing", "evaluation"):
        try:
            __import__(f"cfedit.cli.{optional}")
        except ModuleNotFoundError as e:
            if e.name != f"cfedit.cli.{optional}":
                raise


def main() -> None:
    _register()
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
    except Exception as e:  # click usage errors
        import click

        if isinstance(e, click.ClickException):
            e.show()
            sys.exit(e.exit_code)
        raise
