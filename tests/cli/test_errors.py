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


# ---- faults of the environment: one `error:` line with status 2, never "internal error ... please report it"
def _one_error_line(code, err, status=2):
    lines = err.strip().splitlines()
    assert code == status and len(lines) == 1 and lines[0].startswith("error:") and "internal error" not in err, err[-2000:]
    return lines[0]


def test_an_output_the_system_will_not_write_is_one_line(cli, tmp_path, monkeypatch):
    import errno

    # /proc takes no new files (the same for root): the temporary file of the atomic write cannot be made
    code, _, err = cli("world", "sample", "backdoor", "-n", "2", "-o", "/proc/cfedit-test.png")
    assert "cannot write /proc/cfedit-test.png: No such file or directory" in _one_error_line(code, err)

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr("tempfile.mkstemp", read_only)
    code, _, err = cli("world", "sample", "backdoor", "-n", "2", "-o", str(tmp_path / "g.png"))
    assert "g.png: Read-only file system" in _one_error_line(code, err)


def test_a_full_disk_under_an_output_is_one_line(cli, tmp_path, monkeypatch):
    import errno

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("os.fsync", full)
    code, _, err = cli("world", "sample", "backdoor", "-n", "2", "-o", str(tmp_path / "g.png"))
    assert "g.png: No space left on device" in _one_error_line(code, err)
    assert not list(tmp_path.iterdir())  # no temporary file left behind


def test_other_faults_of_the_environment_are_one_line(cli, monkeypatch):
    import errno

    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", "g.cg")

    monkeypatch.setattr("cfedit.core.graph.CausalGraph.load", denied)
    code, _, err = cli("bounds", "--graph", "g.cg", "--labels", "l.csv", "P(Y=1)")
    assert _one_error_line(code, err) == "error: Permission denied (g.cg)"


def test_json_to_a_full_device_is_one_line():
    with open("/dev/full", "w") as full:
        out = subprocess.run([sys.executable, "-m", "cfedit", "bounds", "--world", "backdoor", "--json"], stdout=full,
                             stderr=subprocess.PIPE, text=True, timeout=120)
    assert _one_error_line(out.returncode, out.stderr) == "error: No space left on device (writing the output)"


@pytest.mark.parametrize("args", [("bounds", "--world", "backdoor"), ("bounds", "--world", "backdoor", "--json")])
def test_a_closed_output_pipe_ends_quietly_with_141(args):
    """`cfedit bounds ... | head -1`: the reader went away before the output; as Unix tools do, no message."""
    p = subprocess.Popen([sys.executable, "-m", "cfedit", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    p.stdout.close()  # closed before the command (still importing) writes anything
    err = p.stderr.read()
    assert p.wait(timeout=120) == 141 and err == "", err[-2000:]


def test_an_ascii_terminal_and_a_non_ascii_path(tmp_path):
    """The work is done, then the report of it used to fail on the path's character: now it is escaped."""
    import os

    env = {**os.environ, "PYTHONIOENCODING": "ascii"}
    out = subprocess.run([sys.executable, "-m", "cfedit", "world", "sample", "backdoor", "-n", "2", "-o", str(tmp_path / "é.png")],
                         capture_output=True, text=True, timeout=120, env=env, encoding="ascii", errors="strict")
    assert out.returncode == 0 and "\\xe9.png" in out.stdout and (tmp_path / "é.png").is_file(), out.stderr[-2000:]


@pytest.mark.parametrize("args", [
    ("train", "--world", "backdoor", "-o", "x"),
    ("edit", "run", "--image", "x.png", "--do", "C=green"),
    ("evaluate", "run", "--world", "backdoor"),
    ("demo",),
    ("reproduce",),
    ("world", "sample", "backdoor"),
    ("world", "counterfactual", "backdoor"),
    ("world", "export", "backdoor", "-n", "2", "-o", "x"),
    ("theory", "witness", "backdoor"),
])
def test_every_seed_is_range_checked(args):
    out = _cfedit(*args, "--seed", str(2**64))
    assert "2147483647" in _one_error_line(out.returncode, out.stderr) and "--help" in out.stderr


def test_a_deeply_nested_config_is_one_line(cli, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("[" * 100_000 + "]" * 100_000)
    (run / "weights.safetensors").write_bytes(b"")
    (run / "graph.cg").write_text("")
    code, _, err = cli("edit", str(run), "--image", str(tmp_path / "x.png"), "--do", "C=green", "-o", str(tmp_path / "e.png"))
    assert "config.json is corrupt: nested too deeply" in _one_error_line(code, err)
    (tmp_path / "deep.toml").write_text("a = " + "[" * 100_000 + "]" * 100_000 + "\n")
    code, _, err = cli("train", "--world", "backdoor", "-o", str(tmp_path / "t"), "--config", str(tmp_path / "deep.toml"))
    assert "nested too deeply" in _one_error_line(code, err)


def test_a_read_only_output_folder_is_refused_before_any_work(cli, tmp_path, monkeypatch):
    import os

    real = os.access
    monkeypatch.setattr("os.access", lambda p, mode, **kw: False if str(p) == str(tmp_path) else real(p, mode, **kw))
    trained = []
    monkeypatch.setattr("cfedit.editors.ancm.ANCM.fit", lambda *a, **k: trained.append(1))
    code, _, err = cli("train", "--world", "backdoor", "-n", "10", "-o", str(tmp_path / "run"))
    assert "is read-only or not ours to write" in _one_error_line(code, err) and not trained
    code, _, err = cli("world", "sample", "backdoor", "-n", "2", "-o", str(tmp_path / "g.png"))
    assert "is read-only" in _one_error_line(code, err)
