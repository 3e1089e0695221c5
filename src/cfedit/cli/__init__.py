"""The ``cfedit`` command line: thin wrappers over the library (no logic lives here).

Each submodule registers its commands on :data:`app`. Errors a user can act on (:class:`CfeditError`)
and usage errors print one line starting with ``error:`` and exit with status 2, without a traceback; so
do faults of the environment (a read-only folder, a full disk, a missing permission); an interruption
(Ctrl-C) exits with 130; a closed output pipe (``cfedit bounds ... | head -1``) ends quietly with 141, as
Unix tools do; a command that needs the ``edit`` extra says how to install it.
"""

from __future__ import annotations

import errno
import io
import logging
import os
import sys

import typer

from cfedit.errors import CfeditError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Causal counterfactual image editing.")

EDIT_MODULES = {"torch", "safetensors", "mlxtend", "matplotlib"}  # what `pip install 'cfedit[edit]'` adds


def register_commands() -> None:
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

    try:
        sys.stdout.flush()
    except (OSError, ValueError):  # the output cannot be written: the message goes to stderr alone
        _stdout_to_devnull()
    first, *rest = str(message).splitlines() or [""]
    lines = [clip(ln, 2 * MESSAGE_CHARS) for ln in (f"error: {first}", *rest[:2])]
    typer.secho(lines[0], fg="red", err=True)
    for ln in lines[1:]:
        typer.echo(ln, err=True)
    sys.exit(code)


# errors of the system that name the environment, not a bug: reported as one line with status 2
ENVIRONMENT_ERRNOS = frozenset(getattr(errno, n) for n in ("ENOSPC", "EDQUOT", "EROFS", "EACCES", "EPERM", "EFBIG", "EIO",
                                                          "ENOTDIR", "EISDIR", "ENAMETOOLONG", "EMFILE", "ENFILE", "ELOOP")
                               if hasattr(errno, n))
BROKEN_PIPE = 141  # 128 + SIGPIPE: what a Unix tool killed by a closed pipe reports


def _stdout_to_devnull() -> None:
    """Point stdout at /dev/null, so that the interpreter's last flush of output that can no longer be written
    (a closed pipe, a full disk) does not fail again at exit."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):  # stdout without a file descriptor (tests)
        pass


def _broken_pipe() -> None:
    """The reader of our output went away (``| head -1``): stop quietly, with 128 + SIGPIPE (Python's recipe)."""
    _stdout_to_devnull()
    sys.exit(BROKEN_PIPE)


def _environment(e: OSError) -> str:
    """An ``OSError`` of the environment as a message: the system's reason and the file it concerns."""
    where = f" ({e.filename})" if e.filename else " (writing the output)" if e.errno == errno.ENOSPC else ""
    return f"{e.strerror or e}{where}"


def _tolerant_output() -> None:
    """Characters the terminal's encoding lacks (``PYTHONIOENCODING=ascii`` and a non-ASCII path) are
    written as escapes (``\\xe9``), not raised as an error after the work is done."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(errors="backslashreplace")
        except (AttributeError, ValueError, OSError):  # not a text stream we may reconfigure
            pass


def _bug(e: Exception) -> None:
    if os.environ.get("CFEDIT_DEBUG"):
        raise e
    _fail(f"internal error {type(e).__name__}: {e}. Please report it; CFEDIT_DEBUG=1 shows the traceback", 1)


def _interrupted() -> None:
    typer.secho("error: interrupted; a training run resumes from its last checkpoint with the same command",
                fg="red", err=True)
    sys.exit(130)


def main() -> None:
    """Run the command line; every failure ends in one ``error:`` line (2: bad input, usage or a fault of
    the environment, 130: interrupted, 1: a bug, whose traceback ``CFEDIT_DEBUG=1`` shows; 141, silent: the
    output pipe closed)."""
    _tolerant_output()
    try:
        register_commands()
        _logging()
        code = app(standalone_mode=False)
        sys.stdout.flush()  # a full disk or a closed pipe under stdout shows here, not at the interpreter's exit
    except BrokenPipeError:
        _broken_pipe()
    except SystemExit as e:  # click ends a closed pipe under its own echo with status 1: ours is 141
        if isinstance(e.__context__, BrokenPipeError) and e.code == 1:
            _broken_pipe()
        raise
    except CfeditError as e:
        _fail(str(e))
    except (typer.Abort, KeyboardInterrupt):
        _interrupted()
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except OSError as e:
        if e.errno not in ENVIRONMENT_ERRNOS or os.environ.get("CFEDIT_DEBUG"):
            _bug(e)
        _fail(_environment(e))
    except Exception as e:
        if isinstance(e, ModuleNotFoundError) and (e.name or "").split(".")[0] in EDIT_MODULES:
            _fail(f"this command needs {e.name}, which the light install lacks: pip install 'cfedit[edit]'")
        if hasattr(e, "format_message") and hasattr(e, "exit_code"):  # usage errors (click's, or typer's copy)
            ctx = getattr(e, "ctx", None)
            where = f" (see: {ctx.command_path} --help)" if ctx is not None else " (see: cfedit --help)"
            _fail(e.format_message() + where, e.exit_code if e.exit_code else 2)
        _bug(e)
    else:
        if code == 130:  # typer turns Ctrl-C into an exit code when not standalone
            _interrupted()
        if isinstance(code, int) and code:
            sys.exit(code)
