"""Evaluation on a user's own labelled images, without a ground-truth world (docs: guides/your-data.md).

The guarantee of the ANCM is checkable without the truth: the optimal bounds of a feature-level query
come from the diagram G and P(V), which the labels give, and the features of the edits can be read off
the images. :func:`evaluate_userdata`:

1. P(V) is the labels' empirical table: by default the evaluation folder's label rows pooled with the
   counts of the training labels that the run records (:mod:`cfedit.evaluation.labelrows`; ``bounds_from``).
   Its compatibility with G is tested (:func:`check_compatible`); a table that no model over G reproduces
   is refused by the bounds.
2. Queries are chosen from G and the data (:func:`automatic_queries`): for each factor X and value x',
   whether every other factor keeps its value under do(X = x'), given each of the most frequent factual
   configurations (non-descendants of X must be kept: their bounds are [1, 1]); users add their own.
3. Bounds with their sampling uncertainty (:func:`label_bounds`): point bounds from the empirical P(V),
   recomputed on bootstrap resamples of the label rows: each query's pointwise 95% range, and the
   simultaneous 95% band over all the report's queries (:mod:`cfedit.evaluation.bootstrap`). A query
   counts as consistent when the editor's 95% interval meets the simultaneous band (``inside``; the
   pointwise verdict is kept as ``inside pointwise``). Beside it, ``inside (reader-aware)``: the interval
   meets the band widened by the reader's measured misread rate (:mod:`cfedit.evaluation.misread`).
4. A reader trained apart from the editor (:class:`Reader`: its own network and seed, on a share of the
   rows that is then held out of everything else; or an external reader the user trained elsewhere, saved
   by :meth:`Reader.save`) reads the factors of factual and edited images; its accuracy on the held-out
   rows is reported, and every figure is conditional on it. A reader trained here is saved with the report.
5. Effectiveness, preservation, null-edit error and agreement (per factor, the reader reads the null edit as
   it reads the factual image), composition, reversibility, and realism (FD in the reader's features to real
   images of the folder that carry the intervened value, with its floor).

The results are those of a world evaluation (:class:`~cfedit.evaluation.results.EvaluationResults`) with
``truth`` None, each query's bootstrap ranges and the labels' :class:`~cfedit.evaluation.results.LabelData`.
A query that no evaluated image is read as the evidence of is *untested*: counted apart, never inconsistent.
A folder too small to test the automatic queries is warned of at the start, with the folder size that would
(:func:`rows_needed`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from cfedit.bounds import bounds_on_tables, count_table, optimal_bounds, pooled_table
from cfedit.bounds.context import Context
from cfedit.core.config import check_ranges
from cfedit.core.domains import Domains
from cfedit.core.figures import save_grid
from cfedit.core.files import clip, read_text
from cfedit.core.graph import CausalGraph
from cfedit.core.query import Atom, Query
from cfedit.data import LabelledImages
from cfedit.editors.base import CausalEditor, Editor
from cfedit.editors.bounded import edit_form
from cfedit.errors import CfeditError, DataError, QueryError
from cfedit.evaluation import metrics
from cfedit.evaluation.bootstrap import INTERVALS, Band, simultaneous_band
from cfedit.evaluation.labelrows import BOUNDS_FROM, bounds_rows
from cfedit.evaluation.misread import describe, misread_rates, reader_aware_band
from cfedit.evaluation.protocol import (
    MAX_SAMPLES,
    MAX_UNITS,
    null_edit,
    null_edit_metrics,
    pool_estimates,
    read_distinct,
    realism_result,
    reversibility_metric,
)
from cfedit.evaluation.reader import Reader
from cfedit.evaluation.report import write_report
from cfedit.evaluation.results import (
    BootstrapSummary,
    BoundsRanges,
    BoundsSource,
    Compatibility,
    EditorScores,
    EvaluationResults,
    InterventionScores,
    LabelData,
    QueryResult,
    ReaderReport,
    Realism,
    Verdict,
)
from cfedit.runs import Run

FLAG_BELOW = 0.01  # p-value of the compatibility test below which the report flags the labels
MIN_EVIDENCE = 10  # expected evaluated images showing a query's evidence for the folder to count as large enough to test it


@dataclass(frozen=True, kw_only=True)
class UserEvalConfig:
    n_units: int = 2000  # evaluation units edited (rows the reader did not train on), at most MAX_UNITS
    n_samples: int = 8  # edit samples per unit and intervention, at most MAX_SAMPLES
    seed: int = 1  # row split, edit sampling and bootstrap
    reader_share: float = 0.5  # share of the rows the reader trains on; the others are held out of it
    reader_epochs: int = 20  # passes of the reader over its rows
    reader_seed: int = 20_240_712  # the reader's own initialisation seed, apart from any editor's
    top: int = 2  # most frequent factual configurations per action in the automatic queries (0: none)
    bootstrap: int = 100  # resamples of the label rows for the bounds' 95% range
    interval: str = "normal"  # bootstrap range of a bound: percentile, basic, normal, bias-aware (cfedit.evaluation.bootstrap)
    realism: bool = True  # Frechet distance in the reader's features
    reversibility: str | None = None  # factor flipped and edited back (None: the one with fewest values; "": skip)
    composition_steps: int = 10  # null edits chained for the composition metric (below 2: skip)
    bounds_from: str | None = None  # label rows of the bounds: all (with the run's training counts), eval; None: all if recorded

    def __post_init__(self) -> None:
        check_ranges(self, {"n_units": (int, 1, MAX_UNITS), "n_samples": (int, 1, MAX_SAMPLES), "seed": (int, 0, 2**31 - 1),
                            "reader_share": (float, 0.05, 0.95), "reader_epochs": (int, 1, 1000),
                            "reader_seed": (int, 0, 2**31 - 1), "top": (int, 0, 1000), "bootstrap": (int, 0, 100_000),
                            "composition_steps": (int, 0, 1000)})
        if self.interval not in INTERVALS:
            raise CfeditError(f"interval must be one of {', '.join(INTERVALS)}, got {self.interval!r}")
        if self.bounds_from is not None and self.bounds_from not in BOUNDS_FROM:
            raise CfeditError(f"bounds_from must be one of {', '.join(BOUNDS_FROM)}, got {self.bounds_from!r}")


# ------------------------------------------------------------------------------ queries and bounds
def automatic_queries(graph: CausalGraph, domains: Domains, p_v: np.ndarray, top: int = 2) -> list[Query]:
    """For each factor X, value x' and each of the ``top`` most probable configurations v with v_X != x':
    P(W[X=x'] = v_W | V = v) for every other factor W (is W kept?)."""
    flat = np.asarray(p_v).reshape(-1)
    order = [c for c in np.argsort(-flat, kind="stable") if flat[c] > 0]
    configs = [dict(zip(domains.names, (int(i) for i in np.unravel_index(c, domains.shape)))) for c in order]
    out = []
    for x in domains.names:
        for value in range(domains.size(x)):
            for v in [c for c in configs if c[x] != value][:top]:
                given = tuple(Atom(k, v[k]) for k in domains.names)
                out += [Query((Atom(w, v[w], ((x, value),)),), given) for w in domains.names if w != x]
    return out


def is_kept(query: Query, graph: CausalGraph) -> bool:
    """Whether every outcome factor is a non-descendant of the query's action (then it must be kept)."""
    x = dict(query.outcome[0].do)
    return all(a.var in graph.non_descendants(x) for a in query.outcome)


def _constant(query: Query, graph: CausalGraph) -> bool:
    """Whether the query is the same in every model: its outcome factors are kept (non-descendants of the
    action) and named in the evidence, so it is 1 when they ask for their factual values and 0 otherwise."""
    given = {a.var for a in query.given}
    return is_kept(query, graph) and all(a.var in given for a in query.outcome)


def read_queries(texts: Sequence[str], path: str | Path | None, domains: Domains) -> list[Query]:
    """User queries from ``-q`` texts and a file (one per line; blank lines and ``#`` comments skipped),
    each checked to be of the edit form."""
    lines = list(texts)
    if path is not None:
        lines += [ln.strip() for ln in read_text(path, "queries file").splitlines() if ln.strip() and not ln.strip().startswith("#")]
    return [edit_form(t, domains)[0] for t in lines]


def check_compatible(graph: CausalGraph, domains: Domains, p_v: np.ndarray, n: int, resamples: int = 200,
                     seed: int = 0) -> dict:
    """How far the labels' table is from the pooled table that G's equality constraints give (total
    variation), and a parametric-bootstrap p-value: the share of tables of n rows drawn from the pooled
    table at least as far from their own pooled table. ``flagged`` when p < :data:`FLAG_BELOW`."""
    ctx = Context(graph, domains, p_v)
    pooled = pooled_table(graph, domains, ctx.p)
    tv = float(0.5 * np.abs(ctx.p - pooled).sum())
    if tv < 1e-12:
        return {"tv": tv, "p_value": 1.0, "resamples": 0, "flagged": False}
    rng = np.random.default_rng(seed)
    flat = pooled.reshape(-1) / pooled.sum()
    tvs = []
    for _ in range(resamples):
        t = (rng.multinomial(n, flat) / n).reshape(domains.shape)
        c = Context(graph, domains, t)
        tvs.append(0.5 * np.abs(c.p - pooled_table(graph, domains, c.p)).sum())
    p = (1 + sum(x >= tv - 1e-12 for x in tvs)) / (resamples + 1)
    return {"tv": tv, "p_value": float(p), "resamples": resamples, "flagged": bool(p < FLAG_BELOW)}


def bound_replicates(queries: Sequence[Query], graph: CausalGraph, domains: Domains, p_v: np.ndarray, n: int,
                     resamples: int = 100, seed: int = 0,
                     log: Callable[[str], None] | None = None) -> tuple[list[dict], np.ndarray, np.ndarray]:
    """Point bounds of each query from ``p_v`` (the empirical table of n rows), and their bootstrap
    replicates: (rows, lower (R, Q), upper (R, Q)) over ``resamples`` tables of n rows redrawn from the rows
    (multinomial counts on the cells). A resample without the query's evidence gives NaN and is counted in
    the row's ``skipped``. A query whose outcome factors are non-descendants of its action and named in its
    evidence is 1 or 0 in every model (W_{x'} = W): it is not resampled (its replicates are its point).
    Evidence never seen in the rows is refused (:class:`QueryError`); a table no model over G reproduces is
    refused (:class:`DataError`)."""
    rows = []
    for q in queries:
        try:
            b = optimal_bounds(q, graph, domains, p_v)
        except QueryError as e:
            raise QueryError(f"{q.format(domains)}: {e} (its evidence never occurs in the {n:,} label rows)"
                             if "probability zero" in str(e) else f"{q.format(domains)}: {e}") from None
        rows.append({"query": q.format(domains), "lower": b.lower, "upper": b.upper, "identified": b.identified,
                     "certified": b.certified, "skipped": 0})
    constant = [_constant(q, graph) for q in queries]
    lo = np.tile([r["lower"] for r in rows], (resamples, 1)).astype(float)
    hi = np.tile([r["upper"] for r in rows], (resamples, 1)).astype(float)
    rng = np.random.default_rng(seed)
    flat = np.asarray(p_v, dtype=float).reshape(-1)
    t0 = time.perf_counter()
    tables = ((rng.multinomial(n, flat / flat.sum()) / n).reshape(domains.shape) for _ in range(resamples))
    active = [j for j in range(len(queries)) if not constant[j]]
    for r, bs in enumerate(bounds_on_tables([queries[j] for j in active], graph, domains, tables)):
        for j, b in zip(active, bs):
            if b is None:  # the resample lacks the evidence, or no model reproduces it
                rows[j]["skipped"] += 1
                lo[r, j] = hi[r, j] = np.nan
            else:
                lo[r, j], hi[r, j] = b.lower, b.upper
        if log is not None and (r + 1) % 25 == 0:
            log(f"bounds: bootstrap resample {r + 1}/{resamples} ({time.perf_counter() - t0:.0f}s)")
    for row in rows:
        row["resamples"] = resamples - row["skipped"]
    return rows, lo, hi


def label_bounds(queries: Sequence[Query], graph: CausalGraph, domains: Domains, p_v: np.ndarray, n: int,
                 resamples: int = 100, seed: int = 0, log: Callable[[str], None] | None = None, *,
                 interval: str = "normal", level: float = 0.95) -> tuple[list[dict], Band]:
    """:func:`bound_replicates`, with each row's ranges: ``lower range`` and ``upper range`` (the 2.5% and
    97.5% quantiles of the bound's replicates), ``widened`` (the pointwise 95% range of the query's bounds,
    percentile or basic: :mod:`cfedit.evaluation.bootstrap`) and ``band`` (the simultaneous range, which
    holds a share ``level`` of the replicates of every query at once). Returns the rows and the band."""
    rows, lo, hi = bound_replicates(queries, graph, domains, p_v, n, resamples, seed, log)
    band = simultaneous_band([r["lower"] for r in rows], [r["upper"] for r in rows], lo, hi, level=level, interval=interval)
    for j, row in enumerate(rows):
        seen = ~np.isnan(lo[:, j])
        for key, a, point in (("lower range", lo[seen, j], row["lower"]), ("upper range", hi[seen, j], row["upper"])):
            row[key] = [float(np.quantile(a, 0.025)), float(np.quantile(a, 0.975))] if len(a) else [point] * 2
        row["widened"] = [float(x) for x in band.pointwise[j]]
        row["band"] = [float(x) for x in band.simultaneous[j]]
    return rows, band


def evidence_probability(query: Query, domains: Domains, p_v: np.ndarray) -> float:
    """P(V_G = v_G) under ``p_v`` of the query's evidence (the factual factors it conditions on)."""
    given = {a.var: a.value for a in query.given}
    index = tuple(given.get(k, slice(None)) for k in domains.names)
    return float(np.asarray(p_v)[index].sum())


def rows_needed(queries: Sequence[Query], domains: Domains, p_v: np.ndarray, eval_share: float,
                min_evidence: int = MIN_EVIDENCE) -> int:
    """The smallest folder (labelled images) in which every query's evidence is expected on at least
    ``min_evidence`` evaluated images: ceil(min_evidence / (p_min eval_share)), p_min the smallest evidence
    probability under ``p_v`` and ``eval_share`` the share of the folder's rows that are evaluated (those the
    reader does not train on). 0 without queries; a query whose evidence has probability 0 is left out."""
    ps = [p for p in (evidence_probability(q, domains, p_v) for q in queries) if p > 0]
    if not ps:
        return 0
    return math.ceil(min_evidence / (min(ps) * eval_share) - 1e-9)


# ------------------------------------------------------------------------------ the evaluation
def _quiet(message: str) -> None:
    pass


def evaluate_userdata(editor: Editor, data: LabelledImages, graph: CausalGraph, config: UserEvalConfig = UserEvalConfig(),
                      queries: Sequence[Query] = (), name: str = "user data", log: Callable[[str], None] = _quiet,
                      reader: Reader | None = None) -> tuple[EvaluationResults, dict]:
    """Evaluate ``editor`` on labelled images with diagram ``graph``; returns (results, figure inputs).
    ``reader``: an external reader (then every row is held out of it and evaluated); else one is trained
    on ``config.reader_share`` of the rows."""
    dom = data.domains
    if dom != editor.domains:
        raise CfeditError(f"the data's factors {dom.as_dict()} differ from the editor's {editor.domains.as_dict()}")
    if tuple(data.image_shape) != tuple(editor.image_shape):
        raise CfeditError(f"the images are {'x'.join(map(str, data.image_shape))}, the editor's "
                          f"{'x'.join(map(str, editor.image_shape))}")
    n_rows = len(data)
    if n_rows < 20:
        raise DataError(f"{n_rows} labelled images are too few to train a reader and evaluate (give at least 20)")
    rows = bounds_rows(count_table(data.labels, dom), editor.label_counts if isinstance(editor, CausalEditor) else None, config.bounds_from)
    log(f"bounds from {rows.note}")
    if rows.warning:
        log(f"warning: {rows.warning}")
    p_v, n_bounds = rows.p_v, rows.n
    compat = Compatibility(**check_compatible(graph, dom, p_v, n_bounds, seed=config.seed))
    if compat.flagged:
        log(f"warning: the labels break the diagram's equality constraints (TV {compat.tv:.4f}, p = {compat.p_value:.3g})")
    auto = automatic_queries(graph, dom, p_v, config.top)
    qs = auto + list(queries)
    if not qs:
        raise CfeditError("no queries to evaluate: give -q or a --top above 0")
    n_held = n_rows if reader is not None else n_rows - int(round(config.reader_share * n_rows))
    needed = rows_needed(auto, dom, p_v, 1.0 if reader is not None else 1 - config.reader_share)
    _warn_if_small(auto, dom, p_v, n_rows, min(config.n_units, n_held), needed, config.n_units, log)
    log(f"bounds of {len(qs)} queries from {n_bounds:,} label rows, {config.bootstrap} bootstrap resamples")
    bounds, band = label_bounds(qs, graph, dom, p_v, n_bounds, config.bootstrap, config.seed, log, interval=config.interval)
    # -- the reader, on its own share of the rows (the rest is held out of it), or the user's
    perm = np.random.default_rng(config.seed).permutation(n_rows)
    if reader is not None:
        if reader.domains != dom or reader.image_shape != tuple(data.image_shape):
            raise CfeditError(f"the reader reads factors {reader.domains.as_dict()} off "
                              f"{'x'.join(map(str, reader.image_shape))} images; the data has {dom.as_dict()} and "
                              f"{'x'.join(map(str, data.image_shape))} images")
        reader_rows, held, external = perm[:0], perm, True
    else:
        cut = int(round(config.reader_share * n_rows))
        reader_rows, held, external = perm[:cut], perm[cut:], False
        log(f"reader: training on {len(reader_rows):,} rows ({config.reader_epochs} epochs; cached after)")
        reader = Reader.fit(data.subset(reader_rows), config.reader_epochs, config.reader_seed, verbose=False)
    held_read = reader(data.images[held])
    accuracy = {k: metrics.wilson(int(np.sum(held_read[k] == data.labels[k][held])), len(held)) for k in dom.names}
    misreads = misread_rates(held_read, {k: data.labels[k][held] for k in dom.names}, dom)
    units = held[:config.n_units]
    x = data.images[units]
    before = {k: held_read[k][:len(units)] for k in dom.names}  # the evidence v = h(I), given to the editor too
    dos = list(dict.fromkeys(q.outcome[0].do for q in qs))
    log(f"editing {len(units):,} held-out images under {len(dos)} interventions, {config.n_samples} samples each")
    read, first = {}, {}
    for d in dos:
        r = editor.edit(x, dict(d), config.n_samples, labels=before, seed=config.seed)
        flat = read_distinct(reader, r.images.reshape(-1, *r.images.shape[2:]))
        read[d] = {k: v.reshape(len(units), config.n_samples) for k, v in flat.items()}
        first[d] = r.images[:, 0]
    eff = [metrics.effectiveness(read[d], dict(d)) for d in dos]
    pres = [metrics.preservation(before, read[d], list(graph.non_descendants(dict(d)))) for d in dos]
    once = null_edit(editor, x, before, config)
    null, composition = null_edit_metrics(editor, x, before, config, once)
    null_read = read_distinct(reader, once)
    agreement = {k: metrics.wilson(int(np.sum(null_read[k] == before[k])), len(units)) for k in dom.names}
    rev = min(dom.names, key=dom.size) if config.reversibility is None else config.reversibility
    if rev and rev not in dom.names:
        raise CfeditError(f"reversibility factor {rev!r} is not one of {', '.join(dom.names)}")
    pooled, by_do = _realism(reader, data, held, dos, first, config.seed) if config.realism else (None, {})
    scores = EditorScores(
        effectiveness=pool_estimates(eff), preservation=pool_estimates(pres),
        interventions=tuple(InterventionScores(action=dom.format(dict(d)), effectiveness=e, preservation=p, realism=by_do.get(d))
                            for d, e, p in zip(dos, eff, pres)),
        null_edit_error=null, null_edit_agreement=agreement,
        composition_steps=config.composition_steps if composition is not None else 0,
        composition_error=composition, reversibility_factor=rev or "",
        reversibility_error=reversibility_metric(editor, x, before, rev, config, dom),
        realism=pooled)
    rows_out = []
    for q, b in zip(qs, bounds):
        eps, aware = reader_aware_band(q, *b["band"], misreads)
        sim, point = (float(b["band"][0]), float(b["band"][1])), (float(b["widened"][0]), float(b["widened"][1]))
        ranges = BoundsRanges(certified=bool(b["certified"]), lower_range=tuple(b["lower range"]), upper_range=tuple(b["upper range"]),
                              pointwise=point, band=sim, resamples=int(b["resamples"]), skipped=int(b["skipped"]))
        verdict = Verdict.judge(metrics.ctf_estimate(q, before, read[q.outcome[0].do]), sim, aware, point)
        rows_out.append(QueryResult(query=b["query"], truth=None, lower=float(b["lower"]), upper=float(b["upper"]),
                                    identified=bool(b["identified"]), misread_bound=eps, reader_aware_band=aware,
                                    methods={editor.name: verdict}, ranges=ranges, kept=is_kept(q, graph),
                                    automatic=q not in queries))
    labels = LabelData(label_rows=n_rows, compatibility=compat,
                       bounds_from=BoundsSource(source=rows.source, rows=n_bounds, evaluation_rows=rows.eval_rows,
                                                training_rows=rows.train_rows, note=rows.note, warning=rows.warning),
                       bootstrap=BootstrapSummary(resamples=band.replicates, interval=band.interval, level=band.level,
                                                  simultaneous_alpha=band.alpha, covered=band.covered),
                       rows_needed=needed, min_evidence=MIN_EVIDENCE)
    results = EvaluationResults(
        world=name, n_units=len(units), k_samples=config.n_samples, config=asdict(config), editors={editor.name: scores},
        queries=tuple(rows_out), labels=labels,
        reader=ReaderReport(kind="external" if external else "trained", accuracy=accuracy, misreads=misreads,
                            network=reader.fingerprint, rows=len(reader_rows), held_out=len(held), trained_on=reader.trained_on))
    return replace(results, note=_note(results)), {"x": x, "before": before, "reader": reader}


def _warn_if_small(auto: Sequence[Query], dom: Domains, p_v: np.ndarray, n_rows: int, n_eval: int, needed: int,
                   n_units: int, log: Callable[[str], None]) -> None:
    """A warning, before any work, when the folder (or ``n_units``) is too small for every automatic query's
    evidence to be expected on :data:`MIN_EVIDENCE` of the ``n_eval`` evaluated images."""
    if not auto:
        return
    rare = min(auto, key=lambda q: evidence_probability(q, dom, p_v))
    p = evidence_probability(rare, dom, p_v)
    if n_eval * p >= MIN_EVIDENCE:
        return
    evidence = ", ".join(f"{a.var}={dom.decode(a.var, a.value)}" for a in rare.given)
    fix = (f"a folder of at least {needed:,} labelled images" + (f" and -n {math.ceil(MIN_EVIDENCE / p):,}"
           if n_units * p < MIN_EVIDENCE else "")) if needed > n_rows else f"-n {math.ceil(MIN_EVIDENCE / p):,} or more"
    log(f"warning: {n_rows:,} labelled images are too few to test the automatic queries: {n_eval:,} images are evaluated, "
        f"and the rarest evidence ({evidence}, probability {p:.3g} in the labels) is expected on {n_eval * p:.1f} of them. "
        f"{fix} would give every automatic query's evidence at least {MIN_EVIDENCE} expected evaluated images. Queries "
        "whose evidence no evaluated image is read as are reported untested (neither consistent nor inconsistent)")


def _realism(reader: Reader, data: LabelledImages, held: np.ndarray, dos: list, first: dict,
             seed: int) -> tuple[Realism | None, dict]:
    """FD (reader's features) of the edits under each do(x'), pooled and per do(x') (a dict), to held-out real
    images whose labels carry x' (a sample of P(I | X = x'), the only real images of that value), and the floor: the
    same distance for a disjoint set of such real images. Each action contributes as many images to every set.
    (None, {}) when no action has two held-out images that carry its value."""
    from cfedit.evaluation.realism import realism_parts

    rng = np.random.default_rng(seed + 300)
    kept, edits, ref, floor = [], [], [], []
    for d in dos:
        match = held[np.all([data.labels[k][held] == v for k, v in d], axis=0)]
        m = min(len(first[d]), len(match) // 2)
        if m < 2:
            continue
        pick = rng.permutation(match)
        kept.append(d)
        edits.append(first[d][rng.choice(len(first[d]), m, replace=False)])
        ref.append(data.images[pick[:m]])
        floor.append(data.images[pick[m:2 * m]])
    if not edits:
        return None, {}
    pooled, parts = realism_parts(reader, edits, ref, floor, seed=seed)
    return realism_result(pooled, reader.fingerprint), {d: realism_result(r, reader.fingerprint) for d, r in zip(kept, parts)}


def _note(results: EvaluationResults) -> str:
    lab, rd = results.labels, results.reader
    assert lab is not None  # a user-data evaluation
    b, c, src = lab.bootstrap, lab.compatibility, lab.bounds_from
    external = rd.kind == "external"
    who = (f"an external reader given by the user (network {rd.network}, trained on {rd.trained_on or 'data not recorded'}"
           "; the user vouches that neither it nor the editor saw these images)" if external else
           f"a reader trained apart from the editor (its own network {rd.network} and seed, on {rd.rows:,} rows held "
           "out of the evaluation; saved in reader/ beside this report)")
    acc = ", ".join(f"{k} {e.format()}" for k, e in rd.accuracy.items())
    flag = (f" WARNING: the labels break the diagram's equality constraints (total variation {c.tv:.4f} to the "
            f"table of pooled conditionals, p = {c.p_value:.3g}): check the diagram." if c.flagged else
            f" The labels are compatible with the diagram's equality constraints (total variation {c.tv:.4f} to the "
            f"table of pooled conditionals, p = {c.p_value:.3g}).")
    twice = f" WARNING: {src.warning}." if src.warning else ""
    untested = sum(not v.tested for q in results.queries for v in q.methods.values())
    small = (f" WARNING: {untested} of the queries are untested: no evaluated image was read as their evidence (they count "
             f"neither as consistent nor as inconsistent). A folder of about {lab.rows_needed:,} labelled images would give "
             f"every automatic query's evidence at least {lab.min_evidence} expected evaluated images." if untested else "")
    mis = describe(rd.misreads)
    return (f"Evaluation without a ground-truth world: {lab.label_rows:,} labelled images; the optimal bounds "
            f"come from the diagram and the empirical P(V) of {src.note}, recomputed on {b.resamples} bootstrap resamples "
            f"of those rows ({b.interval} intervals): each query's pointwise 95% range, and a simultaneous 95% band "
            f"over all {len(results.queries)} queries (one-sided level {b.simultaneous_alpha:.4f} per bound, which "
            f"holds {b.covered:.1%} of the resamples' bounds of every query at once). A query counts "
            "as consistent ('inside') when the editor's 95% interval meets the simultaneous band. There is no "
            f"truth column. {results.n_units} held-out images were edited, {results.k_samples} sample(s) each.{small} "
            f"Factors of factual and edited images were read by {who}; its accuracy on the "
            f"{rd.held_out:,} {'' if external else 'other '}labelled images: {acc}. Every figure is "
            "conditional on this reader: an edit it misreads counts against the editor. Beside the strict verdict, "
            "'inside (reader-aware)': the interval meets the band widened to [l (1 - eps), u + (1 - u) eps], the range of "
            "the read share of an event whose true probability lies in [l, u] when the reader misreads each factor the "
            "event involves at most eps_f of the time (eps the sum); eps_f is the largest over the factor's classes of "
            "the one-sided upper 95% limit of the held-out misread rate: "
            f"{mis}. It assumes the reader misreads edits no more often than real held-out images of the same class, and "
            "it cannot tell a misread from an edit that does not carry the factor. Realism: Frechet distance in the "
            "reader's features to held-out real images whose labels carry the intervened value (P(I | X = x'), not "
            f"P(I_x')), with the real-vs-real floor.{flag}{twice}")


def save_grids(editor: Editor, fig: dict, graph: CausalGraph, folder: Path, seed: int, n: int = 8, k: int = 3) -> dict:
    """One grid per factor X: eight held-out images whose reading differs from X's most frequent value x*,
    then k rows of edits under do(X = x*)."""
    x, before, dom = fig["x"], fig["before"], editor.domains
    out = {}
    for f in dom.names:
        target = int(np.bincount(before[f], minlength=dom.size(f)).argmax())
        rows = np.flatnonzero(before[f] != target)[:n]
        if not len(rows):
            continue
        r = editor.edit(x[rows], {f: target}, k, labels={kk: v[rows] for kk, v in before.items()}, seed=seed)
        grid = np.concatenate([x[rows][None], r.images.transpose(1, 0, 2, 3, 4)]).reshape(-1, *x.shape[1:])
        label = f"{f}-{dom.decode(f, target)}"
        caps = ["factual"] * len(rows) + [f"do({f}={dom.decode(f, target)})"[:14]] * (k * len(rows))
        path = save_grid(folder / f"grid_{label}.png", grid, caps, ncol=len(rows))
        out[f"do({f}={dom.decode(f, target)}): held-out images, then {k} rows of {editor.name} samples"] = path.name
    return out


def evaluate_folder(run: str | Path, images: str | Path, labels: str | Path, output: str | Path, *,
                    graph: str | Path | None = None, config: UserEvalConfig = UserEvalConfig(), queries: Sequence[str] = (),
                    query_file: str | Path | None = None, log: Callable[[str], None] = _quiet,
                    reader: str | Path | None = None) -> EvaluationResults:
    """``cfedit evaluate RUN --images DIR --labels CSV [--reader DIR]``: load the run, the data (read with the
    run's factors) and the reader folder if given, evaluate, write the report folder; returns the results."""
    editor = Run.load(run).editor
    g = _same_graph(editor, CausalGraph.load(graph) if graph is not None else None, graph)
    qs = read_queries(queries, query_file, editor.domains)
    ext = Reader.load(reader) if reader is not None else None
    data = LabelledImages.from_folder(images, labels, editor.domains)
    return _evaluate_and_write(editor, data, g, qs, output, config, Path(images).name, log, ext)


def evaluate_celeba(run: str | Path, root: str | Path, output: str | Path, *, factors: Sequence[str] | None = None,
                    graph: str | Path | None = None, split: str = "test", limit: int | None = None,
                    config: UserEvalConfig = UserEvalConfig(), queries: Sequence[str] = (),
                    query_file: str | Path | None = None, log: Callable[[str], None] = _quiet,
                    reader: str | Path | None = None) -> EvaluationResults:
    """``cfedit evaluate RUN --celeba DIR [--reader DIR]``: the images of ``split`` ("test" by default, held out of the
    training split that ``cfedit train --celeba`` reads; "all" for a folder without a partition file) at
    the run's image size, factors and diagram as ``cfedit train --celeba`` reads them (:mod:`cfedit.data.celeba`)."""
    from cfedit.data import celeba as cb
    editor = Run.load(run).editor
    _, h, w = editor.image_shape
    if h != w:
        raise CfeditError(f"the run's images are {h}x{w}; CelebA images are read square: this run was not trained on CelebA")
    attrs = tuple(factors) if factors is not None else cb.DEFAULT_FACTORS
    g = _same_graph(editor, CausalGraph.parse(cb.graph_text(attrs, None if graph is None else read_text(graph, "graph file"))),
                    graph or f"the diagram of {', '.join(attrs)}")
    qs = read_queries(queries, query_file, editor.domains)
    ext = Reader.load(reader) if reader is not None else None
    if split in ("train", "all"):
        log(f"warning: the {split!r} split holds the images `cfedit train --celeba` trains on: the editor may have seen "
            "the images it is evaluated on")
    data = cb.load_celeba(root, attrs, size=h, split=split, limit=limit)
    return _evaluate_and_write(editor, data, g, qs, output, config, f"{Path(root).name} ({split})", log, ext)


def _same_graph(editor: Editor, g: CausalGraph | None, where: object) -> CausalGraph:
    """The run's diagram; a diagram given must be the same."""
    if g is not None and g != editor.graph:
        raise CfeditError(f"the run was trained on the graph {clip(editor.graph)}, but {clip(where)} gives {clip(g)}")
    return editor.graph


def _evaluate_and_write(editor: Editor, data: LabelledImages, g: CausalGraph, qs: list[Query], output: str | Path,
                        config: UserEvalConfig, label: str, log: Callable[[str], None],
                        reader: Reader | None = None) -> EvaluationResults:
    t0 = time.perf_counter()
    results, fig = evaluate_userdata(editor, data, g, config, qs, name=f"user data {label}", log=log, reader=reader)
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    if reader is None:  # the reader trained here, for `--reader` elsewhere
        fig["reader"].save(output / "reader")
    results = replace(results, grids=save_grids(editor, fig, g, output, config.seed), seconds=time.perf_counter() - t0)
    write_report(results, output, title=f"cfedit evaluation on user data: {label}")
    return results
