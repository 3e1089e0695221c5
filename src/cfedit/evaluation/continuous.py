"""The evaluation of editors on a world with continuous factors (Morpho-MNIST: digit D, thickness T, intensity I).

The peers' metrics (deepscm, Monteiro et al. 2023, Ribeiro et al. 2023), on held-out units of the world's
evaluation split, each editor given the units' true factors as v (so the comparison isolates the causal
step; no labeller error enters):

* **effectiveness** per action do(x'): the mean absolute error of the *measured* thickness and intensity of
  each edit (:func:`~cfedit.worlds.morphometrics.measure`) against the unit's true counterfactual values
  V_{x'}(u), the values a perfect editor would draw (T = t' under do(T = t'), I moved by the world's
  mechanism; T and I kept under do(D = d));
* **digit accuracy** per action: the share of edits whose digit the world's reader reads as the intended one;
* **composition**: the mean absolute pixel error after ``composition_steps`` chained null edits;
* **reversibility**: edit a factor to another value and back to the unit's own, mean absolute pixel error
  to the factual image;
* **ctf-consistency** of the world's documented queries: for each query of the edit form (outcome in one
  intervened world, factual evidence), units are drawn from P(U | evidence) (point evidence on a continuous
  factor abducts its noise by inversion), rendered, edited under the query's action, and the query is read
  off the measured edits; it is compared with the world's truth (:class:`~cfedit.scm.SampledSCM`, with its
  Monte Carlo error). The documented continuous queries are identified in these worlds under their
  mechanisms (each outcome's noise is recovered from the evidence, or the outcome is a non-descendant of
  the action), so the truth is the point the estimate should meet: an editor is *consistent* on a query
  when its estimate's 95% interval meets the truth's, widened for an expectation by the measurement floor
  (the mean absolute error of measuring the factual images against their own factors). The oracle's row
  shows what measuring alone does to a perfect editor.

Results come back typed (:class:`ContinuousResults`, ``to_json()``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from cfedit.core.config import check_ranges
from cfedit.core.files import atomic_write
from cfedit.core.intervention import Intervention
from cfedit.core.query import Expectation, Query, parse_counterfactual
from cfedit.editors.base import Editor
from cfedit.editors.oracle import Oracle
from cfedit.errors import CfeditError
from cfedit.evaluation import metrics
from cfedit.scm import ASCM, Units
from cfedit.worlds import World

EditorFactory = Callable[[ASCM, Units], Editor]
"""Builds an editor for the units under evaluation (the :class:`~cfedit.editors.oracle.Oracle` class is one)."""

MAX_UNITS = 5000  # units per action and per query (each edit is rendered or measured one by one)


@dataclass(frozen=True, kw_only=True)
class ContinuousEvalConfig:
    n_units: int = 200  # held-out units edited under each action, at most MAX_UNITS
    query_units: int = 100  # units drawn from P(U | evidence) for each documented query, at most MAX_UNITS
    seed: int = 1  # units and edit sampling
    actions: tuple[str, ...] = ()  # actions as "T=4" text; empty: the world's figure actions
    composition_steps: int = 5  # null edits chained for the composition metric (below 2: skip it)
    reversibility: str | None = None  # factor edited away and back (None: the world's; "": skip)
    truth_samples: int = 100_000  # sampled units behind each query's truth

    def __post_init__(self) -> None:
        check_ranges(self, {"n_units": (int, 1, MAX_UNITS), "query_units": (int, 1, MAX_UNITS), "seed": (int, 0, 2**31 - 1),
                            "composition_steps": (int, 0, 100), "truth_samples": (int, 100, 10**7)})
        object.__setattr__(self, "actions", tuple(self.actions))


def _json(e: metrics.Estimate | None) -> dict | None:
    return None if e is None else {"value": e.value, "lower": e.lower, "upper": e.upper, "n": e.n}


@dataclass(frozen=True)
class ActionResult:
    """One editor under one action: measured effectiveness and the reader's digit accuracy."""

    action: str  # "T=4"
    thickness_mae: metrics.Estimate  # pixels, measured on the edits against the units' true counterfactual T
    intensity_mae: metrics.Estimate  # grey levels (0-255), likewise for I
    digit_accuracy: metrics.Estimate  # share of edits whose digit reads as the intended one

    def to_json(self) -> dict:
        return {"action": self.action, "thickness_mae": _json(self.thickness_mae), "intensity_mae": _json(self.intensity_mae),
                "digit_accuracy": _json(self.digit_accuracy)}


@dataclass(frozen=True)
class MethodResult:
    """One editor's figures over every action, with its composition and reversibility errors."""

    name: str
    actions: tuple[ActionResult, ...]
    null_edit_error: metrics.Estimate  # mean absolute pixel error of one null edit
    composition_error: metrics.Estimate | None  # the same after composition_steps chained null edits (None: skipped)
    reversibility_error: metrics.Estimate | None  # edit away and back (None: skipped)
    seconds: float

    def to_json(self) -> dict:
        return {"name": self.name, "actions": [a.to_json() for a in self.actions], "null_edit_error": _json(self.null_edit_error),
                "composition_error": _json(self.composition_error), "reversibility_error": _json(self.reversibility_error),
                "seconds": self.seconds}


@dataclass(frozen=True)
class QueryResult:
    """A documented query: the world's truth and each editor's estimate read off its measured edits."""

    query: str
    truth: float
    truth_stderr: float  # Monte Carlo standard error of the truth (0: exact)
    tolerance: float  # what measuring alone may move an expectation: the measurement floor's MAE (upper end) of W
    estimates: Mapping[str, metrics.Estimate]  # per editor, with a 95% interval over the units
    consistent: Mapping[str, bool]  # per editor: its 95% interval meets the truth's, widened by the tolerance

    def to_json(self) -> dict:
        return {"query": self.query, "truth": self.truth, "truth_stderr": self.truth_stderr, "tolerance": self.tolerance,
                "estimates": {k: _json(e) for k, e in self.estimates.items()}, "consistent": dict(self.consistent)}


@dataclass(frozen=True)
class ContinuousResults:
    """Everything :func:`evaluate_continuous` measured."""

    world: str
    config: ContinuousEvalConfig
    reversibility: str  # the factor the reversibility metric edited away and back ("": none)
    measurement_floor: ActionResult  # the factual images measured against their own factors (what reading alone costs)
    methods: tuple[MethodResult, ...]
    queries: tuple[QueryResult, ...]
    skipped_queries: tuple[tuple[str, str], ...]  # (query, why it is not read off edits)
    seconds: float

    def method(self, name: str) -> MethodResult:
        for m in self.methods:
            if m.name == name:
                return m
        raise CfeditError(f"no method {name!r}; methods are {', '.join(m.name for m in self.methods)}")

    def headline(self, method: str) -> dict:
        """One editor's headline figures as plain numbers (what a shipped editor's manifest entry records)."""
        return headline(self.to_json(), method)

    def to_json(self) -> dict:
        return {"world": self.world, "config": asdict(self.config), "reversibility": self.reversibility,
                "measurement_floor": self.measurement_floor.to_json(),
                "methods": [m.to_json() for m in self.methods], "queries": [q.to_json() for q in self.queries],
                "skipped_queries": [list(s) for s in self.skipped_queries], "seconds": self.seconds}


def headline(results: Mapping, method: str) -> dict:
    """The headline figures of ``method`` in a continuous evaluation's ``results.json`` content: effectiveness MAEs and
    digit accuracy per action, null-edit, composition and reversibility errors, documented queries consistent."""
    methods = {m["name"]: m for m in results["methods"]}
    if method not in methods:
        raise CfeditError(f"no method {method!r}; methods are {', '.join(methods)}")
    m = methods[method]
    val = lambda e: None if e is None else round(float(e["value"]), 4)  # noqa: E731
    qs = [q for q in results["queries"] if method in q["consistent"]]
    return {"units": results["config"]["n_units"], "queries": len(qs), "queries_consistent": sum(bool(q["consistent"][method]) for q in qs),
            "thickness_mae": {a["action"]: val(a["thickness_mae"]) for a in m["actions"]},
            "intensity_mae": {a["action"]: val(a["intensity_mae"]) for a in m["actions"]},
            "digit_accuracy": {a["action"]: val(a["digit_accuracy"]) for a in m["actions"]},
            "null_edit_mae": val(m["null_edit_error"]), "composition_mae": val(m["composition_error"]),
            "reversibility_mae": val(m["reversibility_error"])}


def _mae(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Mean absolute pixel error per image."""
    return np.abs(np.asarray(a, np.float32) - np.asarray(b, np.float32)).reshape(len(a), -1).mean(axis=1)


def _check_world(world: World) -> None:
    missing = [k for k in ("D", "T", "I") if k not in world.domains]
    if missing or not world.domains.continuous_names:
        raise CfeditError(f"world {world.name!r} is not a Morpho-MNIST world (factors D, T continuous, I continuous); "
                          "evaluate it with `cfedit evaluate` (the categorical protocol)")


def _score(action: str, read: Mapping[str, np.ndarray], intended: Mapping[str, np.ndarray]) -> ActionResult:
    t_err = np.abs(np.asarray(read["T"], float) - np.asarray(intended["T"], float))
    i_err = np.abs(np.asarray(read["I"], float) - np.asarray(intended["I"], float))
    hits = np.asarray(read["D"]) == np.asarray(intended["D"])
    return ActionResult(action, metrics.mean_estimate(t_err), metrics.mean_estimate(i_err), metrics.wilson(float(hits.sum()), hits.size))


def _edit(editor: Editor, x: np.ndarray, do: Intervention, v: Mapping[str, np.ndarray], seed: int) -> tuple[np.ndarray, dict]:
    r = editor.edit(x, do, 1, labels=v, seed=seed)
    return r.images[:, 0], {k: a[:, 0] for k, a in r.factors.items()}


def evaluate_continuous(world: World, editors: Mapping[str, Editor | EditorFactory],
                        config: ContinuousEvalConfig = ContinuousEvalConfig(), log: Callable[[str], None] = lambda s: None
                        ) -> ContinuousResults:
    """Run the metrics of this module for each editor (an :class:`Editor`, or a factory such as ``Oracle``
    that is given the world's ASCM and the units)."""
    _check_world(world)
    t_all = time.perf_counter()
    dom = world.domains
    actions = [Intervention.of(dom, a) for a in (config.actions or tuple(world.figure_actions))]
    if not actions or any(len(a) == 0 for a in actions):
        raise CfeditError("give at least one action, each setting a factor (e.g. T=4)")
    rev = world.reversibility if config.reversibility is None else config.reversibility
    if rev:
        dom.check(rev)
    a = world.ascm("eval")
    units = a.units(config.n_units, config.seed)
    x = a.factual(units)
    v = {k: np.asarray(units.v[k]) for k in dom.names}
    floor = _score("none (factual images)", a.oracle(x), v)
    truth = {do: a.scm.counterfactual(units.u, dict(do)) for do in actions}
    queries, skipped = _documented_queries(world)
    query_units = {text: _query_units(a, q, config) for text, q in queries}
    methods, rows = [], {text: {} for text, _ in queries}
    for name, editor in editors.items():
        t0 = time.perf_counter()
        log(f"[{world.name}] evaluating {name}")
        ed = editor if isinstance(editor, Editor) else editor(a, units)
        per_action = []
        for do in actions:
            y, _ = _edit(ed, x, do, v, config.seed)
            per_action.append(_score(do.format(dom), a.oracle(y), truth[do]))
        null, comp = _composition(ed, x, v, config)
        back = _reversibility(a, editor, units, x, v, rev, actions, config) if rev else None
        for text, q in queries:
            qu, qx = query_units[text]
            qed = editor if isinstance(editor, Editor) else editor(a, qu)
            rows[text][name] = _read_query(a, qed, q, qu, qx, config)
        methods.append(MethodResult(name, tuple(per_action), null, comp, back, time.perf_counter() - t0))
    results = []
    for text, q in queries:
        est = world.scm.expectation(q, config.truth_samples, config.seed) if isinstance(q, Expectation) else \
            world.scm.probability(q, config.truth_samples, config.seed)
        lo, hi = est.interval()
        tol = _tolerance(floor, q, dom)
        results.append(QueryResult(text, est.value, est.stderr, tol, rows[text],
                                   {m: bool(e.n > 0 and e.overlaps(lo - tol - 1e-9, hi + tol + 1e-9)) for m, e in rows[text].items()}))
    return ContinuousResults(world.name, config, rev, floor, tuple(methods), tuple(results), tuple(skipped), time.perf_counter() - t_all)


def _tolerance(floor: ActionResult, q: Query | Expectation, domains) -> float:
    """How far measurement alone may move the query: the upper end of the measurement floor's MAE of an
    expectation's factor, plus the resolution of float32 images (1e-6 of the factor's range); a probability: 0,
    its events are read as measured."""
    if not isinstance(q, Expectation):
        return 0.0
    c = domains.continuous(q.var)
    return {"T": floor.thickness_mae.upper, "I": floor.intensity_mae.upper}.get(q.var, 0.0) + 1e-6 * (c.hi - c.lo)


def _composition(editor: Editor, x: np.ndarray, v: Mapping[str, np.ndarray], config: ContinuousEvalConfig):
    y, _ = _edit(editor, x, Intervention(), v, config.seed)
    null = metrics.reconstruction_error(x, y)
    if config.composition_steps < 2:
        return null, None
    for i in range(config.composition_steps - 1):
        y, _ = _edit(editor, y, Intervention(), v, config.seed + i + 1)
    return null, metrics.mean_estimate(_mae(y, x))


def _reversibility(a: ASCM, editor: Editor | EditorFactory, units: Units, x: np.ndarray, v: Mapping[str, np.ndarray], k: str,
                   actions: list[Intervention], config: ContinuousEvalConfig) -> metrics.Estimate:
    """Edit factor k of every unit to a target and back to the unit's own value (the edit's factors as labels):
    the mean absolute pixel error to the factual image. The target is the first action's value of k, else the
    middle of its interval (a categorical k: each value in turn, for the units whose value differs). A
    continuous k goes back to a value of its own per unit, so those back edits are made one unit at a time."""
    dom = a.domains
    whole = editor if isinstance(editor, Editor) else editor(a, units)
    fact = np.asarray(v[k])
    back = np.zeros_like(x)
    if dom.is_continuous(k):
        target = next((do[k] for do in actions if k in do), (dom.continuous(k).lo + dom.continuous(k).hi) / 2)
        y, v_y = _edit(whole, x, Intervention({k: target}), v, config.seed)
        for i in range(len(x)):
            one = editor if isinstance(editor, Editor) else editor(a, _subset(units, [i]))
            back[i] = _edit(one, y[i:i + 1], Intervention({k: float(fact[i])}), {n: t[i:i + 1] for n, t in v_y.items()},
                            config.seed)[0][0]
        return metrics.mean_estimate(_mae(back, x))
    done = np.zeros(len(x), dtype=bool)
    for target in range(dom.size(k)):
        rows = ~done & (fact != target)
        if not rows.any():
            continue
        y, v_y = _edit(whole, x, Intervention({k: target}), v, config.seed)
        for source in np.unique(fact[rows]):
            sub = rows & (fact == source)
            back[sub] = _edit(whole, y, Intervention({k: int(source)}), v_y, config.seed)[0][sub]
        done |= rows
    return metrics.mean_estimate(_mae(back[done], x[done]))


def _subset(units: Units, index) -> Units:
    return Units({k: np.asarray(t)[index] for k, t in units.u.items()}, np.asarray(units.u_image)[index],
                 {k: np.asarray(t)[index] for k, t in units.v.items()})


def _documented_queries(world: World) -> tuple[list[tuple[str, Query | Expectation]], list[tuple[str, str]]]:
    """The world's queries that edits can answer (the edit form), and the others with the reason."""
    keep, skipped = [], []
    for text in world.queries:
        q = parse_counterfactual(text, world.domains)
        if isinstance(q, Expectation):
            ok = bool(q.do) and not any(a.do for a in q.given)
        else:
            ok = q.is_edit_form
        if ok:
            keep.append((text, q))
        else:
            skipped.append((text, "not of the edit form (an outcome in one intervened world, factual evidence): edits do not answer it"))
    return keep, skipped


def _query_units(a: ASCM, q: Query | Expectation, config: ContinuousEvalConfig) -> tuple[Units, np.ndarray]:
    """``query_units`` units drawn from P(U | the query's evidence) (importance weights resampled), and their images."""
    rng = np.random.default_rng(config.seed + 7)
    n_draw = max(50 * config.query_units, 20_000)
    u, w = a.scm.abduct(q.given, n_draw, rng)
    if w.sum() <= 0:
        raise CfeditError(f"no unit of {n_draw:,} drawn meets the evidence of {q.format(a.domains)}")
    pick = rng.choice(n_draw, size=config.query_units, p=w / w.sum())
    u = {k: np.asarray(t)[pick] for k, t in u.items()}
    units = Units(u, a.image.prior(config.query_units, rng), a.scm.evaluate(u))
    return units, a.factual(units)


def _read_query(a: ASCM, editor: Editor, q: Query | Expectation, units: Units, x: np.ndarray,
                config: ContinuousEvalConfig) -> metrics.Estimate:
    """The query read off the editor's edits of the units under its action: the mean of the measured W (an
    expectation), or the share of edits whose measured values meet the outcome (a probability)."""
    do = Intervention(dict(q.do if isinstance(q, Expectation) else q.outcome[0].do))
    y, _ = _edit(editor, x, do, {k: np.asarray(t) for k, t in units.v.items()}, config.seed)
    read = a.oracle(y)
    if isinstance(q, Expectation):
        return metrics.mean_estimate(np.asarray(read[q.var], float))
    hits = np.ones(len(y), dtype=bool)
    for atom in q.outcome:
        hits &= atom.holds(np.asarray(read[atom.var]))
    return metrics.wilson(float(hits.sum()), len(hits))


def editors_for_continuous(ancm) -> dict[str, Editor | EditorFactory]:
    """The ANCM, the baselines that apply to continuous factors (non-causal and independent share its image
    mechanism; Markovian where the diagram has a bidirected edge, else it is the ANCM's own model class) and the
    oracle. The associational baseline reads P(V | x') from the nearest units of a sample of the fitted NCM."""
    from cfedit.editors.baselines import Associational, Independent, NonCausal, markovian

    eds: dict[str, Editor | EditorFactory] = {"ancm": ancm, "non-causal": NonCausal(ancm), "associational": Associational(ancm),
                                              "independent": Independent(ancm)}
    if ancm.graph.bidirected:
        eds["markovian"] = markovian(ancm)
    eds["oracle"] = Oracle
    return eds


# ---------------------------------------------------------------------------------- tables, report, a trained run
def _cell(e: metrics.Estimate | None, digits: int = 3) -> str:
    return "-" if e is None else e.format(digits)


def tables(results: ContinuousResults) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, rows) of the effectiveness, digit accuracy, composition / reversibility and ctf tables."""
    r = results
    names = [m.name for m in r.methods]
    actions = [a.action for a in r.methods[0].actions] if r.methods else []
    eff = []
    for m in r.methods:
        for a in m.actions:
            eff.append([m.name, a.action, _cell(a.thickness_mae), _cell(a.intensity_mae, 2), _cell(a.digit_accuracy)])
    f = r.measurement_floor
    eff.append(["(measurement floor)", f.action, _cell(f.thickness_mae), _cell(f.intensity_mae, 2), _cell(f.digit_accuracy)])
    steps = r.config.composition_steps
    edits = [[m.name, _cell(m.null_edit_error, 4), _cell(m.composition_error, 4), _cell(m.reversibility_error, 4), f"{m.seconds:.0f}"]
             for m in r.methods]
    ctf = []
    for q in r.queries:
        truth = f"{q.truth:.3f}" + (f" +- {1.96 * q.truth_stderr:.3f}" if q.truth_stderr else "")
        ctf.append([q.query, truth, *(f"{_cell(q.estimates[n])} {'yes' if q.consistent[n] else 'NO'}" for n in names)])
    ctf += [[text, "-", *([f"skipped: {why}"] + ["-"] * (len(names) - 1))] for text, why in r.skipped_queries]
    return [
        (f"effectiveness: measured MAE against the true counterfactual values ({r.world}, {r.config.n_units} held-out units; "
         f"actions {', '.join(actions)})", ["method", "action", "thickness MAE (px)", "intensity MAE (0-255)", "digit accuracy"], eff),
        ("edits: mean absolute pixel error", ["method", "null edit", f"composition ({steps} null edits)",
                                              f"reversibility ({r.reversibility or 'skipped'})", "seconds"], edits),
        (f"documented queries read off measured edits ({r.config.query_units} units each; consistent: the 95% interval meets "
         "the truth's, widened by the measurement floor)", ["query", "truth", *names], ctf),
    ]


def write_report(results: ContinuousResults, folder: Path) -> Path:
    """``results.json`` and ``report.md`` (the tables) in ``folder``; returns the report's path."""
    from cfedit.evaluation.report import markdown_table

    folder.mkdir(parents=True, exist_ok=True)
    atomic_write(folder / "results.json", json.dumps(results.to_json(), indent=2, default=float))
    md = [f"# cfedit evaluation: {results.world}", "",
          "Edits of held-out units measured by Morpho-MNIST's morphometrics (thickness, intensity) and read by the world's "
          "digit reader; each editor is given the units' true factors. See the module documentation of "
          "cfedit.evaluation.continuous for the definitions.", ""]
    for title, head, rows in tables(results):
        md += [f"## {title}", "", markdown_table(head, rows), ""]
    md.append(f"Evaluation time: {results.seconds:.0f} s.")
    return atomic_write(folder / "report.md", "\n".join(md) + "\n")


def evaluate_continuous_run(ancm, world: World, output: str | Path, config: ContinuousEvalConfig = ContinuousEvalConfig(),
                            log: Callable[[str], None] = lambda s: None) -> ContinuousResults:
    """Evaluate a trained ANCM on a continuous world and the baselines built on it; write the report folder."""
    from cfedit.runs import check_belongs

    check_belongs(ancm, world)
    results = evaluate_continuous(world, editors_for_continuous(ancm), config, log)
    write_report(results, Path(output))
    return results
