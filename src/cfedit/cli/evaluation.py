"""``cfedit evaluate`` and ``cfedit reproduce``: the evaluation suite and the paper's comparison."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from cfedit.cli import app
from cfedit.cli.common import MAX_SEED, ThreadsOpt, console, derived_seed, print_table, use_threads
from cfedit.cli.editing import ConfigOpt, MechanismOpt, StepsOpt, config_from
from cfedit.errors import CfeditError


def _print(results) -> None:
    """The report's tables of :class:`~cfedit.evaluation.results.EvaluationResults`."""
    from cfedit.evaluation.report import ctf_rows, intervention_rows, metric_rows

    head, rows = ctf_rows(results)
    print_table(f"ctf-consistency ({results.world}, {results.n_units} held-out units)", head, rows)
    head, rows = metric_rows(results)
    print_table("metrics", head, rows)
    head, rows = intervention_rows(results)
    if rows:
        print_table("per intervention", head, rows)


@app.command("evaluate")
def evaluate(
    run: Annotated[str, typer.Argument(help="run folder written by `cfedit train` (or demo / reproduce), or pretrained:NAME")],
    world: Annotated[Optional[str], typer.Option("--world", help="ground-truth world the run was trained on")] = None,
    images: Annotated[Optional[Path], typer.Option("--images", help="your own labelled images, instead of a world")] = None,
    labels: Annotated[Optional[Path], typer.Option("--labels", help="with --images: CSV, column 'file' + one per factor")] = None,
    celeba: Annotated[Optional[Path], typer.Option("--celeba", help="a CelebA or CelebA-HQ folder, instead of a world")] = None,
    factors: Annotated[Optional[str], typer.Option("--factors", help="with --celeba: attributes [default: Male,Young,Gray_Hair]")] = None,
    split: Annotated[str, typer.Option("--split", help="with --celeba: train, valid, test or all (a folder without a "
                                       "partition file)")] = "test",
    graph: Annotated[Optional[Path], typer.Option("--graph", help="with --images/--celeba: the diagram (default: the run's)")] = None,
    reader: Annotated[Optional[Path], typer.Option("--reader", help="without a world: a reader folder (saved in reader/ of a "
                                                   "user-data report) to read the factors, instead of training one")] = None,
    query: Annotated[Optional[list[str]], typer.Option("-q", "--query", help="without a world: a query to add (repeatable)")] = None,
    queries: Annotated[Optional[Path], typer.Option("--queries", help="without a world: file of queries, one per line")] = None,
    top: Annotated[int, typer.Option(min=0, help="without a world: frequent configurations per action in the automatic queries")] = 2,
    bootstrap: Annotated[int, typer.Option(min=0, help="without a world: resamples of the label rows for the bounds' range")] = 100,
    interval: Annotated[Optional[str], typer.Option("--interval", help="without a world: the bounds' bootstrap range, "
                                                    "percentile, basic, normal or bias-aware [default: normal]")] = None,
    bounds_from: Annotated[Optional[str], typer.Option("--bounds-from", help="without a world: the label rows of the bounds, "
                                                       "all (the folder's pooled with the run's training labels) or eval "
                                                       "(the folder's) [default: all when the run records them]")] = None,
    output: Annotated[Optional[Path], typer.Option("-o", "--output", help="report folder (default reports/WORLD)")] = None,
    n: Annotated[Optional[int], typer.Option("-n", min=1, help="held-out factual units [default: 2000; 200 on a world with "
                                             "continuous factors, whose edits are measured one by one]")] = None,
    samples: Annotated[int, typer.Option(min=1, help="edit samples per unit")] = 8,
    realism: Annotated[bool, typer.Option(help="compute the realism Frechet distance")] = True,
    seed: Annotated[int, typer.Option(min=0, max=MAX_SEED, help="random seed")] = 1,
    threads: ThreadsOpt = None,
) -> None:
    """Evaluate a trained editor and the baselines on a world, or the editor on your own labelled images
    (--images/--labels or --celeba: bounds from the labels, a reader trained apart); write report.md / .html / results.json."""
    use_threads(threads)
    from cfedit.cli.sources import DataSource

    src = DataSource.of(graph_needed=False, world=world, images=images, labels=labels, graph=graph, celeba=celeba, factors=factors)
    if src.kind != "world":
        from cfedit.evaluation.userdata import UserEvalConfig

        cfg = UserEvalConfig(n_units=n or 2000, n_samples=samples, realism=realism, seed=seed, top=top, bootstrap=bootstrap,
                             bounds_from=bounds_from, **({"interval": interval} if interval is not None else {}))
        return _evaluate_userdata(run, images, labels, celeba, factors, split, graph, reader, query or [], queries, output, cfg)
    from cfedit.core.files import check_folder_path
    from cfedit.evaluation.protocol import EvalConfig, evaluate_run
    from cfedit.runs import Run

    loaded = Run.load(run, world)
    out = check_folder_path(output or Path("reports") / world)
    if loaded.world.domains.continuous_names:
        return _evaluate_continuous(loaded, out, n or 200, seed)
    eval_cfg = EvalConfig(n_units=n or 2000, n_samples=samples, realism=realism, seed=seed)
    res = evaluate_run(loaded.editor, loaded.world, out, eval_cfg, log=console.print)
    _print(res)
    from cfedit.evaluation.report import verdict_line

    for m in res.methods:
        console.print(f"{m}: {verdict_line(res, m)}")
    console.print(f"wrote {out / 'report.md'}, {out / 'report.html'} and figures ({res.seconds:.0f}s)")


def _evaluate_continuous(loaded, out: Path, n: int, seed: int) -> None:
    """A world with continuous factors (Morpho-MNIST): measured effectiveness, digit accuracy, composition,
    reversibility and the documented queries (one edit per unit; no realism figure)."""
    from cfedit.evaluation.continuous import ContinuousEvalConfig, evaluate_continuous_run, tables

    cfg = ContinuousEvalConfig(n_units=n, query_units=min(n, 100), seed=seed)
    res = evaluate_continuous_run(loaded.editor, loaded.world, out, cfg, log=console.print)
    for title, head, rows in tables(res):
        print_table(title, head, rows)
    console.print(f"wrote {out / 'report.md'} and {out / 'results.json'} ({res.seconds:.0f}s)")


def _evaluate_userdata(run, images, labels, celeba, factors, split, graph, reader, query, queries, output, cfg) -> None:
    from cfedit.core.files import check_folder_path
    from cfedit.evaluation.userdata import evaluate_celeba, evaluate_folder

    out = check_folder_path(output or Path("reports") / (images or celeba).name)
    if celeba is not None:
        from cfedit.data.celeba import parse_factors

        res = evaluate_celeba(run, celeba, out, factors=parse_factors(factors), graph=graph, split=split, config=cfg,
                              queries=query, query_file=queries, log=console.print, reader=reader)
    else:
        res = evaluate_folder(run, images, labels, out, graph=graph, config=cfg, queries=query, query_file=queries,
                              log=console.print, reader=reader)
    _print(res)
    c, lab = res.counts(res.methods[0]), res.labels
    untested = (f"; {c.untested} of {c.queries} queries untested: no evaluated image was read as their evidence, so they "
                f"count neither as consistent nor as inconsistent (a folder of about {lab.rows_needed:,} labelled images "
                f"would give every automatic query's evidence {lab.min_evidence} expected evaluated images)" if c.untested else "")
    console.print(f"{c.inside}/{c.tested} tested queries consistent (the estimate's 95% interval meets the bounds' "
                  f"simultaneous 95% band; {c.inside_pointwise} meet each query's pointwise 95% range; {c.inside_reader_aware} "
                  f"meet the band widened by the reader's misread rate){untested}; bounds from {lab.bounds_from.note}; "
                  "figures are conditional on the reader, whose accuracy on held-out images is "
                  + ", ".join(f"{k} {e.value:.3f}" for k, e in res.reader.accuracy.items()))
    if lab.bounds_from.warning:
        console.print(f"[red]warning: {lab.bounds_from.warning}[/red]")
    if lab.compatibility.flagged:
        cc = lab.compatibility
        console.print(f"[red]warning: the labels break the diagram's equality constraints (TV {cc.tv:.4f}, "
                      f"p = {cc.p_value:.3g}); check the diagram[/red]")
    console.print(f"wrote {out / 'report.md'}, {out / 'report.html'} and figures ({res.seconds:.0f}s)")


@app.command("reproduce")
def reproduce(
    output: Annotated[Path, typer.Option("-o", "--output", help="reports folder")] = Path("reports"),
    world: Annotated[Optional[list[str]], typer.Option("--world", help="worlds [default: every registered world]")] = None,
    steps: StepsOpt = None,
    n: Annotated[int, typer.Option("-n", min=1, help="held-out factual units per world")] = 2000,
    samples: Annotated[int, typer.Option(min=1, help="edit samples per unit")] = 8,
    seed: Annotated[int, typer.Option(min=0, max=MAX_SEED, help="random seed")] = 0,
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
        if get_world(name).domains.continuous_names:  # unknown names fail here too, before any training
            raise CfeditError(f"world {name!r} has continuous factors: train it with `cfedit train --world {name} -o RUN` and "
                              f"evaluate it with `cfedit evaluate RUN --world {name}`")
    from cfedit.core.files import check_folder_path

    cfgs = {name: config_from(config, mechanism, steps, seed, get_world(name)) for name in names}
    eval_cfg = EvalConfig(n_units=n, n_samples=samples, seed=derived_seed(seed, 1))
    summary = run_reproduce(check_folder_path(output), names, cfgs, eval_cfg, log=console.print, resume=resume)
    from cfedit.evaluation.results import EvaluationResults

    for name in names:
        _print(EvaluationResults.load(output / name / "results.json"))
    console.print(f"reproduce finished in {summary.seconds:.0f}s; see {output / 'README.md'}")
