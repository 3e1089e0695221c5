"""``cfedit train``, ``cfedit edit``, ``cfedit demo``: the ANCM editor from the command line."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer

from cfedit.cli import app
from cfedit.cli.common import MAX_SEED, ThreadsOpt, console, derived_seed, print_table, use_threads
from cfedit.cli.sources import DataSource
from cfedit.core.figures import save_grid
from cfedit.errors import DataError

MechanismOpt = Annotated[Optional[str], typer.Option("--mechanism", help="image mechanism: vae (default) or another registered backend")]
ConfigOpt = Annotated[Optional[Path], typer.Option("--config", help="TOML file of editor settings (docs: guides/training.md); flags win")]
MAX_SAMPLES = 256  # edit samples of one image in one grid (a PNG of 257 tiles)
StepsOpt = Annotated[Optional[int], typer.Option(min=1, help="image-stage steps [default: from the config, 1200]")]


def config_from(config: Path | None, mechanism: str | None, steps: int | None, seed: int | None, world=None):
    """The editor config: defaults (the world's, if given), then the TOML file, then the flags."""
    from cfedit.editors.ancm import ANCMConfig

    base = ANCMConfig.from_toml(config, world.editor_settings if world is not None else None)
    return base.updated(mechanism=mechanism, steps=steps, seed=seed)


@app.command("train")
def train(
    output: Annotated[Path, typer.Option("-o", "--output", help="folder for the editor (and its resumable state)")],
    world: Annotated[Optional[str], typer.Option("--world", help="train on a ground-truth world (e.g. backdoor)")] = None,
    images: Annotated[Optional[Path], typer.Option("--images", help="folder of PNG images (your own data)")] = None,
    labels: Annotated[Optional[Path], typer.Option("--labels", help="CSV: column 'file' + one column per factor")] = None,
    graph: Annotated[Optional[Path], typer.Option("--graph", help="causal diagram (.cg or one-line form) of your data")] = None,
    celeba: Annotated[Optional[Path], typer.Option("--celeba", help="a CelebA or CelebA-HQ folder (docs: guides/your-data.md)")] = None,
    factors: Annotated[Optional[str], typer.Option("--factors", help="CelebA attributes [default: Male,Young,Gray_Hair]")] = None,
    size: Annotated[int, typer.Option("--size", help="CelebA image size: 64 or 128")] = 64,
    n: Annotated[Optional[int], typer.Option("-n", min=1, max=1_000_000, help="units to draw from the world [default: the "
                                             "world's, 60,000; 10,000 for morpho]; "
                                             "CelebA: the first n training images [default: all]")] = None,
    steps: StepsOpt = None,
    seed: Annotated[Optional[int], typer.Option(min=0, max=MAX_SEED, help="seed [default: from the config, 0]")] = None,
    mechanism: MechanismOpt = None,
    config: ConfigOpt = None,
    resume: Annotated[bool, typer.Option(help="continue from the folder's last training checkpoint")] = True,
    threads: ThreadsOpt = None,
) -> None:
    """Fit an ANCM editor; under torchrun it trains with DistributedDataParallel."""
    use_threads(threads)
    from cfedit.core.files import check_folder_path
    from cfedit.core.graph import CausalGraph
    from cfedit.data import LabelledImages
    from cfedit.editors.ancm import ANCM

    src = DataSource.of(world=world, images=images, labels=labels, graph=graph, celeba=celeba, factors=factors)
    from cfedit.worlds import get_world

    cfg = config_from(config, mechanism, steps, seed, get_world(world) if world is not None else None)
    check_folder_path(output)
    if src.kind == "world":
        w = get_world(world)
        g, data = w.graph, w.dataset(w.train_units if n is None else n, seed=cfg.seed, split="train")
    elif src.kind == "celeba":
        from cfedit.data import celeba as cb

        g, attrs = src.celeba_graph()
        data = cb.load_celeba(celeba, attrs, size=size, split="train", limit=n)
    else:
        from cfedit.data import domains_from_csv

        g = CausalGraph.load(graph)
        data = LabelledImages.from_folder(images, labels, domains_from_csv(labels, g.nodes))
    t0 = time.time()
    ANCM.fit(g, data, cfg, out_dir=output, resume=resume)
    if os.environ.get("RANK", "0") == "0":  # under torchrun only the first process reports
        console.print(f"wrote {output} in {time.time() - t0:.0f}s")


@app.command("edit")
def edit(
    checkpoint: Annotated[str, typer.Argument(help="folder written by `cfedit train`, or pretrained:NAME (a shipped editor)")],
    image: Annotated[Path, typer.Option("--image", help="PNG image to edit")],
    do: Annotated[list[str], typer.Option("--do", help="intervention, e.g. C=green (repeatable)")],
    n: Annotated[int, typer.Option("-n", min=1, max=MAX_SAMPLES, help="counterfactual samples")] = 8,
    output: Annotated[Path, typer.Option("-o", "--output", help="PNG grid to write")] = Path("edits.png"),
    label: Annotated[Optional[list[str]], typer.Option("--label", help="the image's factors, e.g. D=7 (else read by the labeller)")] = None,
    seed: Annotated[int, typer.Option(min=0, max=MAX_SEED, help="random seed")] = 0,
    extremes: Annotated[Optional[str], typer.Option("--extremes", help="a query P(W[X=x']=w | V=v) about this image: edit "
                                                    "at the two models attaining its lower and upper bound")] = None,
    certify: Annotated[bool, typer.Option("--certify", help="also print the certificate: each factor's distribution "
                                          "over the samples, each implied query's optimal bounds, consistent or not")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="with --certify: print the certificate as JSON")] = False,
    world: Annotated[Optional[str], typer.Option("--world", help="with --certify: the run's world, for its exact P(V) (over the "
                                                 "declared bins of continuous factors) [default: the world matching the run, "
                                                 "else the run's own NCM]")] = None,
    threads: ThreadsOpt = None,
) -> None:
    """Counterfactual samples of one image under do(X = x'); the factual image comes first in the grid."""
    if as_json and not certify:
        raise DataError("--json prints the certificate: give --certify too")
    if certify and extremes is not None:
        raise DataError("--certify and --extremes are two different outputs: give one of them")
    use_threads(threads, quiet=as_json)
    from cfedit.core.files import check_png_path, read_image
    from cfedit.core.intervention import Intervention
    from cfedit.runs import Run

    check_png_path(output)
    if output.exists() and image.exists() and output.resolve() == image.resolve():
        raise DataError(f"the output {output} is the input image: give another -o")
    run = Run.load(checkpoint, world=world)
    model = run.editor
    x = read_image(image, model.image_shape[0])[None]
    x_do = Intervention.of(model.domains, do)
    labels = None
    if label:
        given = model.domains.parse_assignments(label)
        labels = {k: [v] for k, v in given.items()}
    if extremes is not None:
        return _edit_at_extremes(model, x, x_do, extremes, n, labels, seed, output)
    if certify:
        from cfedit.evaluation.certificate import certify as certify_edits

        cert = certify_edits(model, x[0], x_do, n, seed, run.bounds, labels={k: v[0] for k, v in labels.items()} if labels else None)
        r = cert.result
    else:
        r = model.edit(x, x_do, n, labels=labels, seed=seed)
    cap = lambda v, i: " ".join(f"{k}={model.domains.decode(k, v[k][i])}" for k in model.domains.names)  # noqa: E731
    caps = [cap(r.factual, 0)] + [cap({k: a[0] for k, a in r.factors.items()}, j) for j in range(n)]
    path = save_grid(output, np.concatenate([x, r.images[0]]), [c[:14] for c in caps], ncol=min(9, n + 1))
    msg = f"wrote {path}: the image, then {n} samples under do({x_do.format(model.domains)})"
    if not certify:
        console.print(msg)
    elif as_json:
        typer.echo(json.dumps({**cert.to_dict(model.domains), "grid": str(path)}, indent=2))
    else:
        console.print(msg)
        print_certificate(cert.to_dict(model.domains))


def print_certificate(c: dict) -> None:
    """The certificate of :func:`cfedit.evaluation.certificate.certify` (its JSON form) as two tables."""
    fmt = lambda d: ", ".join(f"{v} {p:.2f}" for v, p in d.items() if p > 0)  # noqa: E731
    binned = c.get("binned_factual", {})
    print_table(f"readings of the {c['k']} edits (the labeller's)", ["factor", "factual", "counterfactual distribution"],
                [(f, c["factual"][f] + (f" (bin {binned[f]})" if f in binned else ""), fmt(d)) for f, d in c["distributions"].items()])
    rows = [(q["query"], f"[{q['lower']:.3f}, {q['upper']:.3f}]", "yes" if q["identified"] else "no",
             f"{q['estimate']:.3f} [{q['estimate_lower']:.3f}, {q['estimate_upper']:.3f}] (n={q['n']})",
             "yes" if q["consistent"] else "NO", *([f"{q['truth']:.3f}"] if "truth" in q else [])) for q in c["queries"]]
    truth = ["truth"] if any("truth" in q for q in c["queries"]) else []
    print_table(f"certificate: optimal bounds given the image's reading (P(V): {c['p_v']})",
                ["query", "optimal bounds", "identified", "estimate [95% CI]", "consistent", *truth], rows)
    if c["omitted"]:
        console.print(f"{c['omitted']} queries not shown: no edit shows their value and their lower bound is 0 (consistent)")
    if c["note"]:
        console.print(c["note"])
    if c.get("binning"):
        console.print(c["binning"])


def _edit_at_extremes(model, x, x_do, query: str, n: int, labels, seed: int, output: Path) -> None:
    """``edit --extremes``: one row per extremal model, its first tile captioned with the bound it attains."""
    from cfedit.editors.bounded import EXTREMES, edit_at_extremes

    out = edit_at_extremes(model, x, query, n, labels=labels, do=x_do, seed=seed)
    dom, rows, caps, table = model.domains, [], [], []
    for which in EXTREMES:
        r = out.edits[which]
        rows += [x, r.images[0]]
        shown = list(dict.fromkeys(a.var for a in out.query.outcome))  # the factors the query asks about
        caps += [f"{which} {out.attained(which):.3f}"] + [" ".join(f"{k}={dom.decode(k, r.factors[k][0, j])}" for k in shown)[:14]
                                                           for j in range(n)]
        hits = np.ones(n, dtype=bool)
        for a in out.query.outcome:
            hits &= r.factors[a.var][0] == a.value
        table.append((which, f"{out.attained(which):.4f}", f"{hits.mean():.3f} ({hits.sum()}/{n})"))
    b = out.bounds
    print_table(f"{out.query.format(dom)}: optimal bounds [{b.lower:.4f}, {b.upper:.4f}] under the editor's fitted P(V)",
                ["model", "query's value in the model", "share of these samples meeting the outcome"], table)
    if out.note:
        console.print(f"P(V) of the models: the run's NCM; {out.note}")
    path = save_grid(output, np.concatenate(rows), caps, ncol=n + 1)
    console.print(f"wrote {path}: one row per extremal model (the image, then {n} samples under do({dom.format(x_do)}))")


@app.command("migrate")
def migrate(
    run: Annotated[Path, typer.Argument(help="run folder written by an older cfedit (checkpoint version 1)")],
) -> None:
    """Record integrity digests in a run written before checkpoints had them (version 1), which cfedit
    otherwise refuses. Its files cannot be checked first: migrate only a run whose origin you trust."""
    from cfedit.editors.ancm import ANCM

    folder = run / "editor" if (run / "editor" / "config.json").is_file() else run
    if ANCM.migrate(folder):
        console.print(f"{folder}: digests recorded (checkpoint version 1 -> current); it now loads with every check")
    else:
        console.print(f"{folder} already records its digests, and they match: nothing to do")


@app.command("demo")
def demo(
    output: Annotated[Path, typer.Option("-o", "--output", help="folder for the editor, figure and table")] = Path("runs/demo"),
    steps: StepsOpt = None,
    n: Annotated[int, typer.Option("-n", min=1, help="held-out units to evaluate")] = 2000,
    samples: Annotated[int, typer.Option(min=1, help="counterfactual samples per unit")] = 8,
    seed: Annotated[int, typer.Option(min=0, max=MAX_SEED, help="random seed")] = 0,
    mechanism: MechanismOpt = None,
    config: ConfigOpt = None,
    world: Annotated[str, typer.Option("--world", help="the ground-truth world to train and edit on")] = "backdoor",
    resume: Annotated[bool, typer.Option(help="with --train: continue an interrupted demo's training in the output folder")] = True,
    train: Annotated[bool, typer.Option("--train", help="train an editor from scratch (minutes) instead of using the shipped "
                                        "pretrained:WORLD")] = False,
    threads: ThreadsOpt = None,
) -> None:
    """Edit held-out images of a world (Backdoor by default) with its shipped editor (or, with --train, one trained
    now), print the ctf-consistency table, save a figure."""
    use_threads(threads)
    from cfedit.core.files import check_folder_path
    from cfedit.data import WORLD_TRAIN_UNITS
    from cfedit.editors.ancm import ANCM
    from cfedit.evaluation.protocol import EvalConfig, evaluate
    from cfedit.evaluation.report import write_report
    from cfedit.worlds import get_world

    t0 = time.time()
    w = get_world(world)
    if w.domains.continuous_names:
        raise DataError(f"world {world!r} has continuous factors: train it with `cfedit train --world {world} -o RUN` and "
                        f"evaluate it with `cfedit evaluate RUN --world {world}`")
    eval_cfg = EvalConfig(n_units=n, n_samples=samples, seed=derived_seed(seed, 1), realism=False, composition_steps=0, reversibility="")
    check_folder_path(output)
    if train:
        cfg = config_from(config, mechanism, steps, seed, w)
        console.print(f"[bold]{w.description}[/bold]\ntraining the ANCM editor ({cfg.image.kind}) on {WORLD_TRAIN_UNITS:,} "
                      f"training units ({cfg.steps} image steps)")
        data = w.dataset(WORLD_TRAIN_UNITS, seed=seed)
        model = ANCM.fit(w.graph, data, cfg, out_dir=output / "editor", resume=resume)
        del data
    else:
        if steps is not None or mechanism is not None or config is not None:
            raise DataError("--steps, --mechanism and --config set up a training: add --train (the default demo uses the shipped editor)")
        from cfedit.runs import PRETRAINED_PREFIX, Run

        model = Run.load(PRETRAINED_PREFIX + world, world).editor
        console.print(f"[bold]{w.description}[/bold]\nthe shipped editor {PRETRAINED_PREFIX}{world} "
                      f"({model.config.image.kind}, trained once with {model.config.steps} image steps; --train trains one now)")
    t_train = time.time() - t0
    console.print(f"editing {n} held-out units, {samples} samples each, under every documented intervention")
    res = evaluate(w, {"ancm": model}, eval_cfg)
    rows = []
    for q in res.queries:
        v = q.methods["ancm"]
        b = f"{q.lower:.3f} (identified)" if q.identified else f"[{q.lower:.3f}, {q.upper:.3f}]"
        rows.append((q.query, b, v.estimate.format(), f"{q.truth:.3f}",
                     "untested" if not v.tested else "yes" if v.inside else "NO"))
    print_table(f"ctf-consistency on {n} held-out units, {samples} samples each (read by the world's oracle)",
                ["query", "optimal bounds", "ANCM estimate [95% CI]", "truth", "inside"], rows)
    print_table("effectiveness and preservation", ["do", "effectiveness", "preservation (non-descendants)"],
                [(i.action, i.effectiveness.format(), i.preservation.format()) for i in res.editors["ancm"].interventions])
    tv = model.training_record.report.get("ncm_tv")
    console.print(f"null-edit reconstruction MAE: {res.editors['ancm'].null_edit_error.format(4)}"
                  + (f"; NCM TV to the training labels' P(V): {tv:.4f}" if isinstance(tv, float) else ""))
    counts = res.counts("ancm")
    console.print(f"{counts.inside}/{counts.tested} documented queries inside their optimal bounds (strict; "
                  f"{counts.inside_reader_aware} reader-aware)" + (f", {counts.untested} untested" if counts.untested else ""))
    report = write_report(res, output / "report", title=f"cfedit demo: the ANCM editor on the {w.name} world")
    a = w.ascm("eval", oracle=False)
    units = a.units(8, derived_seed(seed, 2))
    x = a.factual(units)
    (act1, k1), (act2, k2) = ((w.domains.encode(d), k) for d, k in zip(w.figure_actions[:2], (4, 3)))
    r = model.edit(x, act1, k1, labels=units.v, seed=seed)
    r2 = model.edit(x, act2, k2, labels=units.v, seed=seed)
    grid = np.concatenate([x[:, None], r.images, r2.images], axis=1).reshape(-1, *x.shape[1:])
    name1, name2 = w.domains.format(act1), w.domains.format(act2)
    caps = [c for i in range(8) for c in (["factual"] + [name1] * k1 + [name2] * k2)]
    path = save_grid(output / "edits.png", grid, [c[:14] for c in caps], ncol=1 + k1 + k2)
    console.print(f"wrote {report}/report.md (the tables and an interval plot)")
    console.print(f"wrote {path}: each row a factual image, {k1} samples under do({name1}), {k2} under do({name2})")
    console.print(f"demo finished in {time.time() - t0:.0f}s ({'training' if train else 'loading'} {t_train:.0f}s)")
