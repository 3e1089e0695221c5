"""Image mechanisms side by side: one evaluation of several trained ANCM runs on the same held-out units.

    python benchmarks/compare_mechanisms.py --world backdoor -n 2000 --samples 8 -o reports/compare-backdoor \\
        vae=runs/bd-vae diffusion=runs/bd-diffusion

Runs the protocol of ``cfedit evaluate`` (:func:`cfedit.evaluation.protocol.evaluate`) once, with every run's
ANCM and the world's oracle as the editors (so every method edits the same units; the baselines are left
out to save time: ``cfedit evaluate`` adds them), writes the report folder with grids (one row per
mechanism) and prints one table: documented queries inside their optimal bounds, effectiveness and
preservation per intervention, null-edit MAE, composition, reversibility, realism FD with its floor,
image-stage faithfulness per factor, edits/s in batch (the protocol's timing) and one-edit latency.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time
from pathlib import Path

import numpy as np

from cfedit.core.files import atomic_write
from cfedit.editors.oracle import Oracle
from cfedit.evaluation.protocol import EvalConfig, evaluate, save_grids
from cfedit.evaluation.report import markdown_table, write_report
from cfedit.runs import Run
from cfedit.worlds import get_world


def latency(model, x: np.ndarray, labels: dict, do: dict, repeats: int = 5) -> float:
    """Median seconds of one edit of one image (labels given, one sample)."""
    times = []
    for i in range(repeats):
        t0 = time.perf_counter()
        model.edit(x[i:i + 1], do, 1, labels={k: v[i:i + 1] for k, v in labels.items()}, seed=i)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runs", nargs="+", help="NAME=RUN_FOLDER")
    ap.add_argument("--world", default="backdoor")
    ap.add_argument("-n", type=int, default=2000)
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--composition-steps", type=int, default=10)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("-o", "--output", type=Path, default=Path("reports/compare"))
    args = ap.parse_args()
    w = get_world(args.world)
    models = {}
    for spec in args.runs:
        name, _, folder = spec.partition("=")
        models[name] = Run.load(folder, w.name).editor
    cfg = EvalConfig(n_units=args.n, n_samples=args.samples, seed=args.seed, composition_steps=args.composition_steps)
    t0 = time.perf_counter()
    res = evaluate(w, {**models, "oracle": Oracle}, cfg, log=print)
    a = w.ascm("eval", oracle=False)
    units = a.units(5, 99)
    x = a.factual(units)
    do = w.domains.encode(w.figure_actions[0])
    lat = {name: latency(m, x, dict(units.v), do) for name, m in models.items()}
    grids: dict[str, str] = {}
    for act in w.figure_actions:
        grids.update(save_grids(w, {**models, "oracle": Oracle}, args.output, w.domains.encode(act)))
    res = dataclasses.replace(res, seconds=time.perf_counter() - t0, grids=grids)
    write_report(res, args.output, title=f"image mechanisms side by side: {args.world}")
    atomic_write(args.output / "latency.json", json.dumps(lat, indent=2))
    names = list(models) + ["oracle"]
    rows = [["documented queries inside the bounds", *(f"{res.counts(m).inside}/{res.counts(m).tested}" for m in names)]]
    for i, act in enumerate(res.editors[names[0]].interventions):
        for what in ("effectiveness", "preservation"):
            rows.append([f"{what} do({act.action})",
                         *(f"{getattr(res.editors[m].interventions[i], what).value:.3f}" for m in names)])
    cells = {m: res.editors[m].cells() for m in names}
    for k in [k for k in cells[names[0]] if k not in ("effectiveness", "preservation")]:
        rows.append([k, *(cells[m].get(k, "-") for m in names)])
    rows.append(["one-edit latency (s)", *(f"{lat[m]:.3f}" if m in lat else "-" for m in names)])
    table = markdown_table(["measure", *names], rows)
    print(table)
    print(f"{args.n} held-out units x {args.samples} samples, {res.seconds:.0f} s")
    atomic_write(args.output / "side_by_side.md", table + "\n")


if __name__ == "__main__":
    main()
