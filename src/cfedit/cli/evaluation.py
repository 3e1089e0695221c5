"""``cfedit evaluate`` and ``cfedit reproduce``: the evaluation suite and the paper's comparison."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from cfedit.cli import app
from cfedit.cli.common import ThreadsOpt, console, print_table, use_threads
from cfedit.cli.editing import ConfigOpt, MechanismOpt, StepsOpt, config_from


def _print(results: dict) -> None:
    from cfedit.evaluation.report import ctf_rows, intervention_rows, metric_rows

    head, rows = ctf_rows(results)
    print_table(f"ctf-consistency ({results['world']}, {results['n_units']} held-out units)", head, rows)
    head, rows = metric_rows(results)
    print_table("metrics", head, rows)
    head, rows = intervention_rows(results)
    if rows:
        print_table("per intervention", head, rows)


@app.command("evaluate")
def evaluate(
    run: Annotated[Path, typer.Argument(help="run folder written by `cfedit train` (or demo / reproduce)")],
    world: Annotated[str, typer.Option("--world", help="ground-truth world the run was trained on")],
    output: Annotated[Optional[Path], typer.Option("-o", "--output", help="report folder (default reports/WORLD)")] = None,
    n: Annotated[int, typer.Option("-n", min=1, help="held-out factual units")] = 2000,
    samples: Annotated[int, typer.Option(min=1, help="edit samples per unit")] = 8,
    realism: Annotated[bool, typer.Option(help="compute the realism Frechet distance")] = True,
    seed: Annotated[int, typer.Option(min=0, help="random seed")] = 1,
    threads: ThreadsOpt = None,
) -> None:
    """Evaluate a trained editor and the baselines on a world; write report.md / report.html / results.json."""
    use_threads(threads)
    from cfedit.evaluation.protocol import EvalConfig, evaluate_run, load_run
    from cfedit.evaluation.report import check_folder_path
    from cfedit.worlds import get_world

    w = get_world(world)
    out = check_folder_path(output or Path("reports") / world)
    eval_cfg = EvalConfig(n_units=n, n_samples=samples, realism=realism, seed=seed)
    res = evaluate_run(load_run(run), w, out, eval_cfg, log=console.print)
    _print(res)
    console.print(f"wrote {out / 'report.md'}, {out / 'report.html'} and figures ({res['seconds']:.0f}s)")


@app.command("reproduce")
def reproduce(
    output: Annotated[Path, typer.Option("-o", "--output", help="reports folder")] = Path("reports"),
    world: Annotated[Optional[list[str]], typer.Option("--world", help="worlds [default: every registered world]")] = None,
    steps: StepsOpt = None,
    n: Annotated[int, typer.Option("-n", min=1, help="held-out factual units per world")] = 2000,
    samples: Annotated[int, typer.Option(min=1, help="edit samples per unit")] = 8,
    seed: Annotated[int, typer.Option(min=0, help="random seed")] = 0,
    mechanism: MechanismOpt = None,
    config: ConfigOpt = None,
    resume: Annotated[bool, typer.Option(help="continue interrupted trainings in the reports folder")] = True,
    threads: ThreadsOpt = None,
) -> None:
    """Train, edit and evaluate on every world (or those given) from scratch (the paper's comparison); write reports/."""
    use_threads(threads)
    from cfedit.evaluation.protocol import EvalConfig
    from cfedit.evaluation.protocol import reproduce as run_reproduce
    from cfedit.worlds import get_world, world_names

    names = tuple(world or world_names())
    for name in names:
        get_world(name)  # unknown names fail before any training
    from cfedit.evaluation.report import check_folder_path

    cfgs = {name: config_from(config, mechanism, steps, seed, get_world(name)) for name in names}
    eval_cfg = EvalConfig(n_units=n, n_samples=samples, seed=seed + 1)
    summary = run_reproduce(check_folder_path(output), names, cfgs, eval_cfg, log=console.print, resume=resume)
    for name in names:
        _print(json.loads((output / name / "results.json").read_text()))
    console.print(f"reproduce finished in {summary['seconds']:.0f}s; see {output / 'README.md'}")
