"""The results of an evaluation, typed: what :func:`cfedit.evaluation.protocol.evaluate` and
:func:`cfedit.evaluation.userdata.evaluate_userdata` measure, what reports and the CLI print, and what
``results.json`` holds (:meth:`~cfedit.core.results.Result.to_json`; :meth:`EvaluationResults.from_json`
reads it back). Every parameter of a measurement is a field beside it (``composition_error`` with
``composition_steps``, ``reversibility_error`` with ``reversibility_factor``, ``faithfulness`` by factor).

A query's verdict for an editor is *untested* when no evaluated unit shows the query's evidence (its
estimate has n = 0): it is counted and shown apart (:class:`VerdictCounts`), never as inconsistent.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cfedit.core.results import Result
from cfedit.errors import CfeditError
from cfedit.evaluation.metrics import Estimate
from cfedit.evaluation.misread import Misread

RESULTS_VERSION = 2  # layout of results.json and summary.json (2: typed fields; 1, unversioned: keys that carried parameters)
TOLERANCE = 1e-9  # an estimate's interval meets [lo, hi] when it meets [lo - TOLERANCE, hi + TOLERANCE]


def _num(x: float | None, digits: int = 3) -> str:
    return "-" if x is None or not math.isfinite(x) else f"{x:.{digits}f}"


def dumps(result: Result) -> str:
    """``result`` as strict JSON text (a non-finite number is ``null``; ``allow_nan=False`` checks it)."""
    return json.dumps(result.to_json(), indent=2, allow_nan=False)


# ------------------------------------------------------------------------------ an editor's metrics
@dataclass(frozen=True, kw_only=True)
class Realism(Result):
    """Frechet distance of edits to real images, in a reference network's features."""

    distance: Estimate  # the distance, its 95% interval (delete-half jackknife) and the number of edited images
    floor: float  # the same distance between two sets of real images of that size
    network: str  # fingerprint of the feature network: distances compare only under the same one

    def format(self) -> str:
        return f"{self.distance.format()} floor {_num(self.floor)} net {self.network}"


@dataclass(frozen=True, kw_only=True)
class Throughput(Result):
    """Edits per second of wall-clock time, over ``edits`` edits (every sample counted)."""

    per_second: float
    edits: int

    def format(self) -> str:
        return f"{_num(self.per_second, 1)} (n={self.edits})"


@dataclass(frozen=True, kw_only=True)
class InterventionScores(Result):
    """Effectiveness and preservation of one editor under one intervention."""

    action: str  # the intervention, e.g. "C=green"
    effectiveness: Estimate  # P(every intervened factor reads as set)
    preservation: Estimate  # P(every non-descendant of the intervened factors reads as before)
    ground_truth_error: Estimate | None = None  # mean absolute pixel error to the true counterfactual image (a world only)
    realism: Realism | None = None  # FD of this intervention's edits alone to real images under it (its own floor)


@dataclass(frozen=True, kw_only=True)
class EditorScores(Result):
    """One editor's metrics (see the evaluation protocol); a metric not measured is None."""

    effectiveness: Estimate  # pooled over the interventions (their mean, the widest interval)
    preservation: Estimate  # pooled likewise
    interventions: tuple[InterventionScores, ...]  # each intervention apart
    null_edit_error: Estimate  # mean absolute pixel error of the null edit
    composition_steps: int = 0  # null edits chained for composition_error (0: not measured)
    composition_error: Estimate | None = None  # error after composition_steps chained null edits
    reversibility_factor: str = ""  # factor flipped and edited back for reversibility_error ("": not measured)
    reversibility_error: Estimate | None = None  # error of the round trip to the factual image
    faithfulness: Mapping[str, Estimate] = field(default_factory=dict)  # per factor: the edit reads as the v' it was made from
    null_edit_agreement: Mapping[str, Estimate] = field(default_factory=dict)  # per factor: the null edit reads as the factual image
    ground_truth_error: Estimate | None = None  # error to the true counterfactual image (a world only)
    minimality_excess: Estimate | None = None  # the edit's distance to the factual minus the truth's (a world only)
    realism: Realism | None = None
    throughput: Throughput | None = None

    def cells(self) -> dict[str, str]:
        """The report's metric cells by column title (the metrics measured, in a fixed order)."""
        out = {"effectiveness": self.effectiveness.format(), "preservation": self.preservation.format()}
        out.update({f"faithfulness ({k})": e.format() for k, e in self.faithfulness.items()})
        out.update({f"null-edit agreement ({k})": e.format() for k, e in self.null_edit_agreement.items()})
        for title, e in (("ground-truth error", self.ground_truth_error), ("minimality excess", self.minimality_excess),
                         ("null-edit error", self.null_edit_error)):
            if e is not None:
                out[title] = e.format()
        if self.composition_error is not None:
            out[f"composition error ({self.composition_steps} null edits)"] = self.composition_error.format()
        if self.reversibility_error is not None:
            out[f"reversibility error ({self.reversibility_factor})"] = self.reversibility_error.format()
        if self.realism is not None:
            out["realism FD"] = self.realism.format()
        if self.throughput is not None:
            out["edits per second"] = self.throughput.format()
        return out


# ------------------------------------------------------------------------------ the queries
def meets(e: Estimate, lo: float, hi: float) -> bool:
    """Whether the estimate's 95% interval meets [lo, hi] (within :data:`TOLERANCE`)."""
    return bool(e.overlaps(lo - TOLERANCE, hi + TOLERANCE))


@dataclass(frozen=True, kw_only=True)
class Verdict(Result):
    """One editor on one query: the estimate read off its edits, and whether it is consistent. Every verdict
    is None when the query is untested (no evaluated unit shows its evidence: ``estimate.n == 0``)."""

    estimate: Estimate  # P^(W_x' = w | V = v) read off the edits; n: evaluated units that show the evidence v
    inside: bool | None  # the 95% interval meets the bounds (user data: their simultaneous 95% band)
    inside_reader_aware: bool | None  # ... meets them widened by the reader's misread rate
    inside_pointwise: bool | None = None  # user data: ... meets the query's pointwise 95% range of the bounds

    @classmethod
    def judge(cls, estimate: Estimate, bounds: tuple[float, float], reader_aware: tuple[float, float],
              pointwise: tuple[float, float] | None = None) -> Verdict:
        if estimate.n == 0:
            return cls(estimate=estimate, inside=None, inside_reader_aware=None)
        return cls(estimate=estimate, inside=meets(estimate, *bounds), inside_reader_aware=meets(estimate, *reader_aware),
                   inside_pointwise=None if pointwise is None else meets(estimate, *pointwise))

    @property
    def tested(self) -> bool:
        return self.estimate.n > 0

    def format(self) -> str:
        if not self.tested:
            return "untested (n=0: no evaluated image was read as the evidence)"
        return (f"{self.estimate.format()} {'inside' if self.inside else 'OUTSIDE'} "
                f"(reader-aware: {'inside' if self.inside_reader_aware else 'OUTSIDE'})")


@dataclass(frozen=True, kw_only=True)
class BoundsRanges(Result):
    """The sampling uncertainty of bounds computed from label rows (user data): bootstrap ranges."""

    certified: bool  # the point bounds are certified optimal
    lower_range: tuple[float, float]  # 2.5% and 97.5% quantiles of the lower bound's replicates
    upper_range: tuple[float, float]  # likewise for the upper bound
    pointwise: tuple[float, float]  # the query's pointwise 95% range of its bounds
    band: tuple[float, float]  # the simultaneous 95% band over all the report's queries
    resamples: int  # resamples that showed the query's evidence
    skipped: int  # resamples without it


@dataclass(frozen=True, kw_only=True)
class QueryResult(Result):
    """A documented (or automatic) query: its bounds, and each editor's verdict."""

    query: str
    truth: float | None  # the world's exact value (None without a world)
    lower: float  # optimal bounds from P(V) and the diagram
    upper: float
    identified: bool
    misread_bound: float  # eps: the reader's misread bound summed over the outcome's factors
    reader_aware_band: tuple[float, float]  # the bounds (user data: the band) widened by eps
    methods: Mapping[str, Verdict]  # by editor name
    ranges: BoundsRanges | None = None  # user data: the bounds' bootstrap ranges
    kept: bool | None = None  # user data: every outcome factor is a non-descendant of the action
    automatic: bool | None = None  # user data: chosen from the diagram and the data, not given by the user


# ------------------------------------------------------------------------------ the reader and the labels
@dataclass(frozen=True, kw_only=True)
class ReaderReport(Result):
    """What read the factors of factual and edited images, and how well it reads held-out labelled images."""

    kind: str  # "oracle" (the world's), "trained" (trained here, apart from the editor) or "external" (the user's)
    accuracy: Mapping[str, Estimate]  # per factor: share of labelled images read as their label (world: the evaluated units)
    misreads: Mapping[str, Misread]  # per factor: its worst class (the reader-aware verdict's eps_f)
    network: str = ""  # fingerprint of the reader's network ("" for the world's oracle)
    rows: int = 0  # label rows it trained on here (0: the world's oracle or an external reader)
    held_out: int = 0  # labelled images its accuracy is measured on
    trained_on: str | None = None  # an external reader: what it says it was trained on


@dataclass(frozen=True, kw_only=True)
class Compatibility(Result):
    """The labels' table against the diagram's equality constraints (:func:`cfedit.evaluation.userdata.check_compatible`)."""

    tv: float  # total variation to the table of pooled conditionals
    p_value: float  # parametric-bootstrap p-value
    resamples: int
    flagged: bool  # p below the flag level: check the diagram


@dataclass(frozen=True, kw_only=True)
class BoundsSource(Result):
    """Which label rows the bounds come from (:mod:`cfedit.evaluation.labelrows`)."""

    source: str  # "all" (the folder's pooled with the run's training counts) or "eval"
    rows: int
    evaluation_rows: int
    training_rows: int
    note: str
    warning: str | None = None


@dataclass(frozen=True, kw_only=True)
class BootstrapSummary(Result):
    """The bootstrap of the bounds (:mod:`cfedit.evaluation.bootstrap`)."""

    resamples: int
    interval: str  # percentile, basic, normal or bias-aware
    level: float  # the simultaneous band's level
    simultaneous_alpha: float  # the one-sided level per bound the band uses
    covered: float  # share of the replicates inside the band at once


@dataclass(frozen=True, kw_only=True)
class LabelData(Result):
    """A user-data evaluation's labels: the bounds' rows, their compatibility with the diagram, the bootstrap,
    and how many labelled images the automatic queries need (:func:`cfedit.evaluation.userdata.rows_needed`)."""

    label_rows: int
    compatibility: Compatibility
    bounds_from: BoundsSource
    bootstrap: BootstrapSummary
    rows_needed: int  # the smallest folder that gives every automatic query min_evidence expected evaluated images
    min_evidence: int  # expected evaluated images showing a query's evidence that count as enough to test it


# ------------------------------------------------------------------------------ the whole evaluation
@dataclass(frozen=True, kw_only=True)
class VerdictCounts(Result):
    """One editor's verdicts over a report's queries."""

    queries: int
    untested: int  # no evaluated unit shows the evidence: neither consistent nor inconsistent
    inside: int
    inside_reader_aware: int
    inside_pointwise: int | None = None  # user data only

    @property
    def tested(self) -> int:
        return self.queries - self.untested

    def format(self) -> str:
        """``inside/tested (aware reader-aware)``, then the untested count if any."""
        out = f"{self.inside}/{self.tested} ({self.inside_reader_aware} reader-aware)"
        return out + (f", {self.untested} untested" if self.untested else "")


@dataclass(frozen=True, kw_only=True)
class EvaluationResults(Result):
    """Everything one evaluation measured: ``results.json`` is its :meth:`~cfedit.core.results.Result.to_json`."""

    version: int = RESULTS_VERSION
    world: str  # the world's name, or "user data <folder>"
    n_units: int  # evaluated factual units (held-out images)
    k_samples: int  # edit samples per unit
    config: Mapping[str, Any]  # the evaluation's settings
    editors: Mapping[str, EditorScores]  # by editor name, in the order evaluated
    queries: tuple[QueryResult, ...]
    reader: ReaderReport
    labels: LabelData | None = None  # user data only
    note: str = ""  # how to read the report ("": the world protocol's reading)
    grids: Mapping[str, str] = field(default_factory=dict)  # caption -> PNG file in the report folder
    seconds: float | None = None  # wall-clock time of the evaluation
    training_seconds: float | None = None  # `reproduce`: the ANCM's training

    @property
    def methods(self) -> tuple[str, ...]:
        return tuple(self.editors)

    def counts(self, method: str) -> VerdictCounts:
        vs = [q.methods[method] for q in self.queries if method in q.methods]
        tested = [v for v in vs if v.tested]
        return VerdictCounts(queries=len(vs), untested=len(vs) - len(tested), inside=sum(bool(v.inside) for v in tested),
                             inside_reader_aware=sum(bool(v.inside_reader_aware) for v in tested),
                             inside_pointwise=None if self.labels is None else sum(bool(v.inside_pointwise) for v in tested))

    def headline(self, method: str) -> dict:
        """One editor's headline figures as plain numbers (what a shipped editor's manifest entry records):
        queries inside the bounds (strict and reader-aware, of those tested), effectiveness and preservation per
        intervention, null-edit error, error to the true counterfactual image, realism and its floor (pooled, and per
        intervention), edits/s."""
        e, c = self.editors[method], self.counts(method)
        val = lambda est: None if est is None else round(float(est.value), 4)  # noqa: E731
        out = {"units": self.n_units, "samples": self.k_samples, "queries": c.queries, "queries_tested": c.tested,
               "queries_inside": c.inside, "queries_inside_reader_aware": c.inside_reader_aware,
               "effectiveness": {i.action: val(i.effectiveness) for i in e.interventions},
               "preservation": {i.action: val(i.preservation) for i in e.interventions},
               "null_edit_mae": val(e.null_edit_error), "ground_truth_mae": val(e.ground_truth_error),
               "ground_truth_mae_by_action": {i.action: val(i.ground_truth_error) for i in e.interventions}}
        if e.realism is not None:
            out.update(realism_fd=val(e.realism.distance), realism_floor=round(float(e.realism.floor), 4),
                       realism_network=e.realism.network)
        if any(i.realism is not None for i in e.interventions):
            out["realism_fd_by_action"] = {i.action: {"fd": val(i.realism.distance), "floor": round(float(i.realism.floor), 4)}
                                           for i in e.interventions if i.realism is not None}
        if e.throughput is not None:
            out["edits_per_second"] = round(float(e.throughput.per_second), 1)
        return out

    @classmethod
    def from_json(cls, data: Any, where: str | None = None) -> EvaluationResults:
        """Read ``results.json``'s content; another layout version is refused with a message."""
        if isinstance(data, dict) and data.get("version") != RESULTS_VERSION:
            raise CfeditError(f"{where or 'results'}: layout version {str(data.get('version'))[:20]}; this cfedit reads "
                              f"version {RESULTS_VERSION} (re-run the evaluation)")
        return super().from_json(data, where)

    @classmethod
    def load(cls, path) -> EvaluationResults:
        """The results of a ``results.json`` file."""
        return cls.from_json(read_results_json(path), str(path))


@dataclass(frozen=True, kw_only=True)
class WorldSummary(Result):
    """One world of ``reproduce``: its training, evaluation and each editor's verdict counts."""

    steps: int  # image-stage training steps
    mechanism: str  # the image mechanism's kind
    training_seconds: float
    evaluation_seconds: float
    counts: Mapping[str, VerdictCounts]  # by editor


@dataclass(frozen=True, kw_only=True)
class ReproduceSummary(Result):
    """``reproduce``'s summary.json."""

    version: int = RESULTS_VERSION
    worlds: Mapping[str, WorldSummary]
    seconds: float


def read_results_json(path) -> Any:
    """The parsed content of a ``results.json`` (a missing, unreadable or non-JSON file is a clear error)."""
    from cfedit.core.files import read_text

    try:
        return json.loads(read_text(path, "results file"))
    except json.JSONDecodeError as e:
        raise CfeditError(f"{path} is not JSON: {e}") from None


def read_headline(path, method: str = "ancm") -> dict:
    """The headline figures of ``method`` in a ``results.json`` written by ``cfedit evaluate``: a categorical world's
    (:meth:`EvaluationResults.headline`) or a world with continuous factors' (:func:`cfedit.evaluation.continuous.headline`)."""
    data = read_results_json(path)
    if isinstance(data, dict) and "measurement_floor" in data:
        from cfedit.evaluation.continuous import headline

        return headline(data, method)
    return EvaluationResults.from_json(data, str(path)).headline(method)
