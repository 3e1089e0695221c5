"""The command line's promise: every failure is one line starting with `error:` (status 2 for bad input or
usage, 130 when interrupted, 1 for a bug), never a traceback (docs: reference/limits.md)."""

import subprocess
import sys

import pytest

RUN = """
import sys
for m in ("click", "torch", "safetensors", "mlxtend", "matplotlib"):
    sys.modules[m] = None  # the light install's declared dependencies only (typer ships its own copy of click)
sys.argv = ["cfedit", *sys.argv[1:]]
from cfedit.cli import main
main()
"""


def _cfedit(*args, cwd=None):
    return subprocess.run([sys.executable, "-c", RUN, *args], capture_output=True, text=True, timeout=120, cwd=cwd)


@pytest.mark.parametrize("args", [
    ("frobnicate",),
    ("bounds", "--bogus"),
    ("train", "--world", "backdoor"),  # no -o
    ("edit", "run", "--image", "x.png", "--do", "C=green", "-n", "abc"),
    ("edit", "run", "--image", "x.png", "--do", "C=green", "-n", "100000"),
    ("world", "show"),
    ("demo", "-n", "0"),
    ("evaluate", "run", "--world", "backdoor", "-n", "0"),
    ("train", "--world", "backdoor", "-o", "x", "--seed", "-1"),
    ("train", "--world", "backdoor", "-o", "x", "--steps", "0"),
])
def test_usage_errors_are_one_line_without_click(args):
    out = _cfedit(*args)
    assert out.returncode == 2, out.stderr[-2000:]
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "--help" in lines[0], out.stderr[-2000:]


def test_interrupt_exits_130_with_a_message(cli, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("cfedit.core.graph.CausalGraph.load", interrupted)
    code, _, err = cli("bounds", "--graph", "g.cg", "--labels", "l.csv", "P(Y=1)")
    assert code == 130 and err.startswith("error: interrupted")


def test_a_bug_is_one_line_with_status_1(cli, monkeypatch):
    def bug(*args, **kwargs):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr("cfedit.core.graph.CausalGraph.load", bug)
    code, _, err = cli("bounds", "--graph", "g.cg", "--labels", "l.csv", "P(Y=1)")
    assert code == 1 and err.strip().splitlines() == [
        "error: internal error ZeroDivisionError: division by zero. Please report it; CFEDIT_DEBUG=1 shows the traceback"]


def test_output_paths_are_checked_before_work(cli, tmp_path):
    (tmp_path / "x.png").write_bytes(b"")
    for out, what in ((tmp_path, "is a folder"), (tmp_path / "e.jpg", "must end in .png"), (tmp_path / "e", "must end in .png"),
                      (tmp_path / "x.png", "is the input image")):
        code, _, err = cli("edit", str(tmp_path / "run"), "--image", str(tmp_path / "x.png"), "--do", "C=green", "-o", str(out))
        assert code == 2 and what in err, err
    code, _, err = cli("world", "sample", "backdoor", "-n", "2", "-o", str(tmp_path))
    assert code == 2 and "is a folder" in err


def test_refusals_come_before_any_training(cli, tmp_path):
    (tmp_path / "f").write_text("")
    code, _, err = cli("train", "--world", "backdoor", "-o", str(tmp_path / "f"))
    assert code == 2 and "is a file" in err
    code, _, err = cli("demo", "-o", str(tmp_path / "d"), "--samples", "1000")
    assert code == 2 and "n_samples" in err and not (tmp_path / "d").exists()
    code, _, err = cli("train", "--world", "backdoor", "-o", str(tmp_path / "t"), "-n", "2000000")
    assert code == 2 and "--help" in err
    code, _, err = cli("theory", "witness", "backdoor", "-n", "0", "-o", str(tmp_path / "w.png"))
    assert code == 2 and "--help" in err
    code, _, err = cli("world", "show", "x" * 3000)
    assert code == 2 and len(err.strip()) < 300 and "3,000 characters" in err


def test_threads_follow_the_free_cores(monkeypatch):
    import torch

    from cfedit.cli.common import use_threads

    before = torch.get_num_threads()
    try:
        monkeypatch.setattr("os.cpu_count", lambda: 4)
        monkeypatch.setattr("os.getloadavg", lambda: (2.6, 0.0, 0.0))
        assert use_threads(None) == 1 and torch.get_num_threads() == 1  # 3 of 4 cores busy
        monkeypatch.setattr("os.getloadavg", lambda: (0.2, 0.0, 0.0))
        assert use_threads(None) == 4
        assert use_threads(2) == 2  # given: as given
    finally:
        torch.set_num_threads(before)
