"""Re-evaluate each shipped editor and compare the figures with those its manifest entry records.

    python benchmarks/bench_pretrained.py [NAME ...] [--threads 2] [--out reports/bench_pretrained]

For each shipped editor (``cfedit pretrained list``; default: all) it runs the evaluation command the manifest
records (``figures.evaluate_command``: the same world, units, samples and seeds) into ``--out/NAME``, reads the
headline figures of the new ``results.json`` and prints, figure by figure, the manifest's value, the new one and
their difference. The evaluation is seeded, so on the machine that built the manifest every figure but the timings
comes out the same; elsewhere, floating-point differences between CPUs and torch builds may move the last digits.
It exits 1 when a figure (timings aside) differs by more than ``--tolerance``. Minutes per editor: run it alone.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import time
from pathlib import Path

from cfedit.artefacts import read_manifest
from cfedit.evaluation.results import read_headline

TIMINGS = {"edits_per_second", "evaluate_seconds", "evaluate_command"}


def flatten(d: dict, prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + " "))
        else:
            out[key] = v
    return out


def command_for(recorded: str, out: Path, threads: int) -> list[str]:
    """The recorded evaluation command with its output folder replaced by ``out``."""
    args = shlex.split(recorded)
    if args[:2] != ["cfedit", "evaluate"]:
        raise SystemExit(f"not a cfedit evaluate command: {recorded!r}")
    args = args[1:]
    if "-o" in args:
        i = args.index("-o")
        del args[i:i + 2]
    return [sys.executable, "-m", "cfedit", *args, "-o", str(out), "--threads", str(threads)]


def compare(name: str, recorded: dict, now: dict, tolerance: float) -> int:
    """Print the figure-by-figure comparison; the number of figures beyond ``tolerance``."""
    a, b = flatten(recorded), flatten(now)
    bad = 0
    print(f"\n{name}: figure | manifest | now | difference")
    for key in sorted(set(a) | set(b)):
        if key.split(" ")[0] in TIMINGS:
            continue
        x, y = a.get(key), b.get(key)
        if key not in a:  # a figure this cfedit measures that the manifest's evaluation did not
            print(f"  {key} | (not recorded) | {y} | new")
        elif isinstance(x, (int, float)) and isinstance(y, (int, float)):
            d = float(y) - float(x)
            flag = "" if abs(d) <= tolerance else "   <-- differs"
            bad += bool(flag)
            print(f"  {key} | {x} | {y} | {d:+.4g}{flag}")
        else:
            same = x == y
            bad += not same
            print(f"  {key} | {x} | {y} | {'same' if same else 'differs'}")
    if "edits_per_second" in a or "edits_per_second" in b:
        print(f"  (timing) edits/s | {a.get('edits_per_second')} | {b.get('edits_per_second')}")
    return bad


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("names", nargs="*", help="shipped editors [default: every one]")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("reports/bench_pretrained"))
    ap.add_argument("--tolerance", type=float, default=1e-3, help="largest accepted difference of a figure")
    args = ap.parse_args()
    manifest = read_manifest()
    editors = [a for a in manifest.values() if a.kind == "editor"]
    names = args.names or sorted(a.name for a in editors)
    bad = 0
    for name in names:
        if name not in manifest or manifest[name].kind != "editor":
            raise SystemExit(f"no shipped editor {name!r}; shipped: {', '.join(sorted(a.name for a in editors))}")
        figs = manifest[name].figures
        if "evaluate_command" not in figs:
            print(f"{name}: its manifest entry records no evaluation; skipped")
            continue
        out = args.out / name
        cmd = command_for(figs["evaluate_command"], out, args.threads)
        t0 = time.time()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        print(f"{name}: {' '.join(cmd[2:])} ({time.time() - t0:.0f} s; the manifest's: {figs.get('evaluate_seconds')} s)")
        bad += compare(name, figs, read_headline(out / "results.json"), args.tolerance)
    print(f"\n{bad} figure(s) differ beyond {args.tolerance:g}")
    raise SystemExit(1 if bad else 0)


if __name__ == "__main__":
    main()
