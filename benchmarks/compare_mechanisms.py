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
    res["seconds"] = time.perf_counter() - t0
    a = w.ascm("eval", oracle=False)
    units = a.units(5, 99)
    x = a.factual(units)
    do = w.domains.encode(w.figure_actions[0])
    res["latency"] = {name: latency(m, x, dict(units.v), do) for name, m in models.items()}
    res["grids"] = {}
    for act in w.figure_actions:
        res["grids"].update(save_grids(w, {**models, "oracle": Oracle}, args.output, w.domains.encode(act)))
    write_report(res, args.output, title=f"image mechanisms side by side: {args.world}")
    atomic_write(args.output / "results.json", json.dumps(res, indent=2, default=float))
    names = list(models) + ["oracle"]
    rows = [["documented queries inside the bounds",
             *(f"{sum(q['methods'][m]['inside'] for q in res['queries'])}/{len(res['queries'])}" for m in names)]]
    for do_name in res["interventions"][names[0]]:
        for what in ("effectiveness", "preservation"):
            rows.append([f"{what} do({do_name})", *(f"{res['interventions'][m][do_name][what]['value']:.3f}" for m in names)])
    metric_names = [k for k in res["metrics"][names[0]] if k not in ("effectiveness", "preservation")]
    for k in metric_names:
        cells = []
        for m in names:
            e = res["metrics"][m].get(k)
            cells.append("-" if e is None else f"{e['value']:.4f}" + (f" (floor {e['floor']:.1f})" if "floor" in e else ""))
        rows.append([k, *cells])
    rows.append(["one-edit latency (s)", *(f"{res['latency'][m]:.3f}" if m in res["latency"] else "-" for m in names)])
    table = markdown_table(["measure", *names], rows)
    print(table)
    print(f"{args.n} held-out units x {args.samples} samples, {res['seconds']:.0f} s")
    atomic_write(args.output / "side_by_side.md", table + "\n")


if __name__ == "__main__":
    main()
