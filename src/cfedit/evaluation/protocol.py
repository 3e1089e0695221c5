"""The evaluation protocol over several editors, and the paper's comparison (docs: guides/evaluation.md).

:func:`evaluate` draws held-out units from a world, edits them with every method under each intervention
that the world's documented queries use, reads the edits with the world's oracle (never a method's own
labeller), and returns the typed results (:class:`~cfedit.evaluation.results.EvaluationResults`) that
:func:`cfedit.evaluation.report.write_report` writes. Feature
counterfactuals are estimated as ctf-consistency defines them, from the oracle's readings of both the
factual and the edited images, P^(h_W(I), h_W(I_x') | h(I) = v). Editors are given the oracle's reading of
each factual image as its factors, the same v the estimates condition on (it equals the unit's true factors
on all but ~0.1% of units): so the comparison isolates the causal step, and an editor is never asked about
a unit with factors other than those it is scored on. Beside that strict verdict, each query gets the
reader-aware one of :mod:`cfedit.evaluation.misread`: the bounds widened by the oracle's misread rate (its
worst class on the same held-out factual images), so that an editor is not failed on a "kept" query for
misreads the oracle also makes on the world's own images.
:func:`reproduce` trains the ANCM on each world and runs the comparison against the baselines.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from cfedit.core.config import check_ranges
from cfedit.core.domains import Domains
from cfedit.core.figures import save_grid
from cfedit.core.files import atomic_write
from cfedit.core.query import parse_query
from cfedit.editors.ancm import ANCMConfig
from cfedit.editors.base import Editor
from cfedit.editors.oracle import Oracle
from cfedit.errors import CfeditError
from cfedit.evaluation import metrics
from cfedit.evaluation.misread import misread_rates, reader_aware_band
from cfedit.evaluation.report import markdown_table, write_report
from cfedit.evaluation.results import (
    EditorScores,
    EvaluationResults,
    InterventionScores,
    QueryResult,
    ReaderReport,
    Realism,
    ReproduceSummary,
    Throughput,
    Verdict,
    WorldSummary,
    dumps,
)
from cfedit.runs import check_belongs
from cfedit.scm import ASCM, Units
from cfedit.worlds import World

EditorFactory = Callable[[ASCM, Units], Editor]
"""Builds an editor for the units under evaluation (the :class:`~cfedit.editors.oracle.Oracle` class is one)."""


MAX_UNITS = 10_000  # held-out units of one evaluation (the edits of every method are held in memory)
MAX_SAMPLES = 32  # edit samples per unit


@dataclass(frozen=True, kw_only=True)
class EvalConfig:
    n_units: int = 2000  # held-out factual units (the world's evaluation split), at most MAX_UNITS
    n_samples: int = 8  # edit samples per unit and intervention (fewer: noisier ctf estimates), at most MAX_SAMPLES
    seed: int = 1  # units and edit sampling
    realism: bool = True  # compute the Frechet distance (trains / loads a reference network)
    reversibility: str | None = None  # factor flipped and edited back for the reversibility metric (None: the world's; "": skip)
    composition_steps: int = 10  # null edits chained for the composition metric (below 2: skip it)

    def __post_init__(self) -> None:
        check_ranges(self, {"n_units": (int, 1, MAX_UNITS), "n_samples": (int, 1, MAX_SAMPLES), "seed": (int, 0, 2**31 - 1),
                            "composition_steps": (int, 0, 1000)})


def _mae(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Mean absolute pixel error per image."""
    return np.abs(np.asarray(a, np.float32) - np.asarray(b, np.float32)).reshape(len(a), -1).mean(axis=1)


def check_queries(world) -> list:
    if not world.queries:
        raise CfeditError(f"world {world.name!r} documents no queries: nothing to check ctf-consistency against")
    qs = [parse_query(q, world.domains) for q in world.queries]
    for text, q in zip(world.queries, qs):
        if not q.is_edit_form:
            raise CfeditError(f"query {text!r} is not of the edit form P(W[X=x]=w | V=v)")
    return qs


def _quiet(message: str) -> None:
    pass


def evaluate(world: World, editors: Mapping[str, Editor | EditorFactory], config: EvalConfig = EvalConfig(),
             log: Callable[[str], None] = _quiet) -> EvaluationResults:
    """Run the protocol for each editor (an :class:`Editor`, or a factory such as ``Oracle`` that is given
    the world's ASCM and the units); returns the typed results (:mod:`cfedit.evaluation.results`)."""
    from cfedit.bounds import optimal_bounds

    queries = check_queries(world)
    rev = world.reversibility if config.reversibility is None else config.reversibility
    if rev and rev not in world.domains.names:
        raise CfeditError(f"reversibility factor {rev!r} is not one of {', '.join(world.domains.names)}")
    a = world.ascm("eval")
    units = a.units(config.n_units, config.seed)
    x = a.factual(units)
    before = a.oracle(x)
    labels = {k: np.asarray(r) for k, r in before.items()}  # the evidence v = h(I) that the estimates condition on
    hits = {k: int(np.sum(before[k] == units.v[k])) for k in world.domains.names}
    misreads = misread_rates(before, units.v, world.domains)  # per factor, its worst class (the reader-aware verdict)
    dos = list(dict.fromkeys(q.outcome[0].do for q in queries))
    truth_cf = {d: a.counterfactual(units, dict(d)) for d in dos}
    p_v = world.scm.observational()
    bounds = [optimal_bounds(q, world.graph, world.domains, p_v) for q in queries]
    scores: dict[str, EditorScores] = {}
    readings: dict[str, dict] = {}
    reference = None  # the realism reference, built at the first method that needs it
    for name, editor in editors.items():
        if not isinstance(editor, Editor):
            editor = editor(a, units)
        log(f"[{world.name}] evaluating {name}")
        read_by_do, first_images, t_edit, n_edit, made_from = {}, {}, 0.0, 0, {}
        for d in dos:
            t0 = time.perf_counter()
            r = editor.edit(x, dict(d), config.n_samples, labels=labels, seed=config.seed)
            t_edit += time.perf_counter() - t0
            n_edit += r.images.shape[0] * r.images.shape[1]
            flat = read_distinct(a.oracle, r.images.reshape(-1, *r.images.shape[2:]))
            read_by_do[d] = {k: v.reshape(config.n_units, config.n_samples) for k, v in flat.items()}
            first_images[d] = r.images[:, 0]
            made_from[d] = r.factors
        readings[name] = read_by_do
        eff = [metrics.effectiveness(read_by_do[d], dict(d)) for d in dos]
        pres = [metrics.preservation(before, read_by_do[d], list(world.graph.non_descendants(dict(d)))) for d in dos]
        stack = lambda per: {k: np.concatenate([per[d][k] for d in dos]) for k in world.domains.names}  # noqa: E731
        edit_dist = np.concatenate([_mae(first_images[d], x) for d in dos])
        true_dist = np.concatenate([_mae(truth_cf[d][1], x) for d in dos])
        null, composition = null_edit_metrics(editor, x, labels, config)
        pooled, by_do = None, [None] * len(dos)
        if config.realism:
            reference = reference or _realism_reference(world, dos, config.n_units, config)
            pooled, by_do = _realism(reference, [first_images[d] for d in dos], config)
        scores[name] = EditorScores(
            effectiveness=pool_estimates(eff), preservation=pool_estimates(pres),
            interventions=tuple(InterventionScores(action=world.domains.format(dict(d)), effectiveness=e, preservation=p,
                                                   ground_truth_error=metrics.mean_estimate(_mae(first_images[d], truth_cf[d][1])),
                                                   realism=r)
                                for d, e, p, r in zip(dos, eff, pres, by_do)),
            faithfulness=metrics.faithfulness(stack(read_by_do), stack(made_from)),  # the oracle's reading of an edit = the editor's own v'
            ground_truth_error=metrics.mean_estimate(np.concatenate([_mae(first_images[d], truth_cf[d][1]) for d in dos])),
            minimality_excess=metrics.mean_estimate(edit_dist - true_dist),
            null_edit_error=null, composition_steps=config.composition_steps if composition is not None else 0,
            composition_error=composition, reversibility_factor=rev or "",
            reversibility_error=reversibility_metric(editor, x, labels, rev, config, world.domains),
            realism=pooled,
            throughput=Throughput(per_second=n_edit / max(t_edit, 1e-9), edits=n_edit))
    rows = []
    for text, q, b in zip(world.queries, queries, bounds):
        eps, aware = reader_aware_band(q, float(b.lower), float(b.upper), misreads)
        verdicts = {name: Verdict.judge(metrics.ctf_estimate(q, before, readings[name][q.outcome[0].do]),  # h(I) and h(I_x')
                                        (float(b.lower), float(b.upper)), aware) for name in editors}
        rows.append(QueryResult(query=text, truth=world.scm.probability(q), lower=float(b.lower), upper=float(b.upper),
                                identified=bool(b.identified), misread_bound=eps, reader_aware_band=aware, methods=verdicts))
    reader = ReaderReport(kind="oracle", accuracy={k: metrics.wilson(h, config.n_units) for k, h in hits.items()},
                          misreads=misreads, held_out=config.n_units)
    return EvaluationResults(world=world.name, n_units=config.n_units, k_samples=config.n_samples, config=asdict(config),
                             editors=scores, queries=tuple(rows), reader=reader)


def read_distinct(reader: Callable[[np.ndarray], Mapping[str, np.ndarray]], images: np.ndarray) -> dict[str, np.ndarray]:
    """``reader(images)``, reading each distinct image once: an editor's k samples of one image repeat the
    same edit whenever they agree on v' (:meth:`~cfedit.imaging.base.ImageMechanism.generate_distinct`)."""
    images = np.asarray(images)
    rows = np.ascontiguousarray(images.reshape(len(images), -1))
    keys = rows.view(np.dtype((np.void, rows.shape[1] * rows.itemsize))).ravel()  # each image's bytes: equal iff identical
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    if len(first) == len(images):
        return {k: np.asarray(v) for k, v in reader(images).items()}
    return {k: np.asarray(v)[inverse.reshape(-1)] for k, v in reader(images[first]).items()}


def pool_estimates(ests: list[metrics.Estimate]) -> metrics.Estimate:
    """Pool proportions over interventions (equal-size groups): the mean, with the widest interval."""
    v = float(np.mean([e.value for e in ests]))
    return metrics.Estimate(v, min(e.lower for e in ests), max(e.upper for e in ests), sum(e.n for e in ests))


def null_edit(editor, x, labels, config) -> np.ndarray:
    """The null edit of each image once (the first step of :func:`null_edit_metrics`)."""
    return editor.edit(x, {}, 1, labels=labels, seed=config.seed).images[:, 0]


def null_edit_metrics(editor, x, labels, config, once: np.ndarray | None = None) -> tuple[metrics.Estimate, metrics.Estimate | None]:
    """Reconstruction (the null edit once) and composition (the null edit chained ``composition_steps`` times;
    None when ``composition_steps`` is below 2). ``once``: the :func:`null_edit` of ``x`` when already made."""
    once = null_edit(editor, x, labels, config) if once is None else once
    if config.composition_steps < 2:
        return metrics.reconstruction_error(x, once), None
    y = once
    for i in range(config.composition_steps - 1):
        y = editor.edit(y, {}, 1, labels=labels, seed=config.seed + i + 1).images[:, 0]
    return metrics.reconstruction_error(x, once), metrics.mean_estimate(_mae(y, x))


def reversibility_metric(editor: Editor, x: np.ndarray, labels: dict, k: str, config: EvalConfig,
                         domains: Domains) -> metrics.Estimate | None:
    """Edit X to each other value, then back to each unit's factual value (the edit's own factors as
    labels); the error of the round trip to the factual image. Whole batches each time, so that every
    editor (the oracle too, which holds its units) is treated alike. None when ``k`` is empty (not measured)."""
    if not k:
        return None
    fact = np.asarray(labels[k])
    back = np.zeros_like(x)
    for target in range(domains.size(k)):
        rows = fact != target
        if not rows.any():
            continue
        r = editor.edit(x, {k: target}, 1, labels=labels, seed=config.seed)
        y, v_y = r.images[:, 0], {n: a[:, 0] for n, a in r.factors.items()}
        for source in np.unique(fact[rows]):
            sub = rows & (fact == source)
            back[sub] = editor.edit(y, {k: int(source)}, 1, labels=v_y, seed=config.seed).images[sub, 0]
    return metrics.mean_estimate(_mae(back, x))


def _realism_reference(world, dos: list, n: int, config) -> tuple:
    """What every method's realism is measured against (built once per evaluation): the feature network, the
    world's images under each do(x') for n other units, and a third such set for the floor (a list each, one
    array per do(x'))."""
    from cfedit.evaluation.realism import feature_net

    a = world.ascm("eval", oracle=False)
    ref_units = a.units(n, config.seed + 100)
    floor_units = a.units(n, config.seed + 200)
    ref = [a.counterfactual(ref_units, dict(d))[1] for d in dos]
    floor = [a.counterfactual(floor_units, dict(d))[1] for d in dos]
    return feature_net(world), ref, floor


def _realism(reference: tuple, edits: list[np.ndarray], config) -> tuple[Realism, list[Realism]]:
    """FD of the edits under each do(x') (pooled, and per do(x')) to the world's images under the same do(x') for
    other units; the floor is the same distance for a third set of the world's images (:func:`_realism_reference`)."""
    from cfedit.evaluation.realism import realism_parts

    net, ref, floor = reference
    pooled, parts = realism_parts(net, edits, ref, floor, seed=config.seed)
    return realism_result(pooled, net.fingerprint), [realism_result(r, net.fingerprint) for r in parts]


def realism_result(r, network: str) -> Realism:
    """The typed result of a :class:`cfedit.evaluation.realism.Realism` measured in the features of ``network``."""
    return Realism(distance=metrics.Estimate(r.value, r.low, r.high, r.n), floor=r.floor, network=network)


def editors_for(ancm) -> dict[str, Editor | EditorFactory]:
    """ANCM, the four baselines (sharing its image mechanism; the Markovian NCM fitted to the ANCM's P(V))
    and the oracle, by name."""
    from cfedit.editors.baselines import BASELINES

    return {"ancm": ancm, **{name: build(ancm) for name, build in BASELINES.items()}, "oracle": Oracle}


def save_grids(world: World, editors: Mapping[str, Editor | EditorFactory], folder: Path, do: Mapping[str, int],
               n: int = 8, seed: int = 7) -> dict:
    """A grid per intervention: factual row, one row per method, the true counterfactual row. (Figures only:
    editors get the units' true factors here, the oracle's reading in :func:`evaluate`.)"""
    a = world.ascm("eval", oracle=False)
    units = a.units(n, seed)
    x = a.factual(units)
    rows, caps = [x], ["factual"] * n
    for name, ed in editors.items():
        ed = ed if isinstance(ed, Editor) else ed(a, units)
        rows.append(ed.edit(x, dict(do), 1, labels=dict(units.v), seed=seed).images[:, 0])
        caps += [name[:12]] * n
    label = world.domains.format(do).replace(" ", "").replace(",", "_").replace("=", "-")
    path = save_grid(folder / f"grid_{label}.png", np.concatenate(rows), caps, ncol=n)
    return {f"do({world.domains.format(do)}): factual, then each method (last row: oracle = truth)": path.name}


def evaluate_run(ancm, world: World, output: str | Path, config: EvalConfig = EvalConfig(),
                 log: Callable[[str], None] = _quiet) -> EvaluationResults:
    """Evaluate a trained ANCM and the baselines built on it; write the report folder; return results."""
    check_belongs(ancm, world)
    check_queries(world)
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    eds = editors_for(ancm)
    t0 = time.perf_counter()
    results = evaluate(world, eds, config, log)
    seconds = time.perf_counter() - t0
    grids: dict[str, str] = {}
    for do in world.figure_actions:
        grids.update(save_grids(world, eds, output, world.domains.encode(do)))
    results = replace(results, seconds=seconds, grids=grids)
    write_report(results, output)
    return results


def reproduce(output: str | Path = "reports", worlds: tuple[str, ...] | None = None,
              ancm_config: ANCMConfig | Mapping[str, ANCMConfig] | None = None, config: EvalConfig = EvalConfig(),
              log: Callable[[str], None] = _quiet, resume: bool = True) -> ReproduceSummary:
    """The paper's comparison from scratch: train an ANCM per world (``worlds``, default every registered
    one; ``ancm_config``: one config, or one per world name, default each world's ``editor_settings``),
    evaluate it and the baselines."""
    from cfedit.data import WORLD_TRAIN_UNITS
    from cfedit.editors.ancm import ANCM
    from cfedit.worlds import get_world, world_names

    worlds = tuple(worlds or world_names())
    configs = {n: (ancm_config.get(n) if isinstance(ancm_config, Mapping) else ancm_config)
               or ANCMConfig.from_dict(get_world(n).editor_settings) for n in worlds}

    output = Path(output)
    summaries: dict[str, WorldSummary] = {}
    t_all = time.perf_counter()
    for name in worlds:
        w = get_world(name)
        cfg = configs[name]
        steps, seed = cfg.steps, cfg.seed
        t0 = time.perf_counter()
        log(f"[{name}] training the ANCM ({steps} image steps) on {WORLD_TRAIN_UNITS} training units")
        ancm = ANCM.fit(w.graph, w.dataset(WORLD_TRAIN_UNITS, seed=seed),
                        cfg, out_dir=output / name / "editor", log=log, resume=resume)
        t_train = time.perf_counter() - t0
        res = replace(evaluate_run(ancm, w, output / name, config, log), training_seconds=t_train)
        atomic_write(output / name / "results.json", dumps(res))
        summaries[name] = WorldSummary(steps=steps, mechanism=cfg.image.kind, training_seconds=t_train,
                                       evaluation_seconds=res.seconds or 0.0, counts={m: res.counts(m) for m in res.methods})
    summary = ReproduceSummary(worlds=summaries, seconds=time.perf_counter() - t_all)
    _write_summary(summary, output)
    return summary


def _write_summary(summary: ReproduceSummary, output: Path) -> None:
    methods = list(next(iter(summary.worlds.values())).counts) if summary.worlds else []
    rows = [[w, *(s.counts[m].format() for m in methods), f"{s.training_seconds:.0f}",
             f"{s.evaluation_seconds:.0f}"] for w, s in summary.worlds.items()]
    md = ["# cfedit reproduce", "", "Documented queries whose estimate's 95% interval meets the optimal bounds, per "
          "method, out of the queries tested (some held-out unit shows the query's evidence), and in brackets the same "
          "with the bounds widened by the oracle's measured misread rate (the reader-aware verdict; details and figures "
          "in each world's report.md):", "",
          markdown_table(["world", *methods, "training s", "evaluation s"], rows), "",
          f"Total time: {summary.seconds:.0f} s (image-stage training steps: "
          f"{', '.join(f'{w} {s.steps}' for w, s in summary.worlds.items())}).", ""]
    md += [f"- [{w}]({w}/report.md)" for w in summary.worlds]
    atomic_write(output / "README.md", "\n".join(md) + "\n")
    atomic_write(output / "summary.json", dumps(summary))
