import sys

import numpy as np
import pytest


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def cli(capsys, monkeypatch):
    """Run the ``cfedit`` command line in-process: returns (exit code, stdout, stderr)."""
    from cfedit.cli import main

    def run(*args: str):
        monkeypatch.setattr(sys, "argv", ["cfedit", *args])
        code = 0
        try:
            main()
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        out = capsys.readouterr()
        return code, out.out, out.err

    return run
