"""A certificate for the edits of one image: what the editor did, next to what any causal model could do.

Editing one image i under do(X = x') with k samples (docs: concepts/verdicts.md), :func:`certify` returns

* the factual reading v = h(i) (or the labels the caller gives), as the editor used it;
* for each factor, the distribution of its counterfactual value over the k edits, read off the edited
  images by the editor's own labeller h (ctf-consistency reads h_W(I_x'));
* for each query the edit implies, P(W_{x'} = w | V = v) for every factor W not intervened on: its optimal
  bounds from G and P(V) (:func:`cfedit.bounds.optimal_bounds`), whether it is identified, the editor's
  estimate from the k samples with the 95% Wilson interval the evaluation uses for proportions
  (:func:`cfedit.evaluation.metrics.ctf_estimate`; the k edits of one image are independent draws given the
  image), and whether that interval meets the bounds (*consistent*, the evaluation's ``inside`` test).

Rows whose value no edit shows and whose lower bound is 0 are left out (their count is kept): such a row
is always consistent, so leaving it out hides no failure. The row of W's factual value ("kept") is always
shown; for a non-descendant of X it has bounds [1, 1].

P(V) comes from the run's world when it belongs to one (exact), else from the editor's fitted NCM (the law
the ANCM reproduces), for evidence its training labels hold: the run's :class:`~cfedit.runs.QueryBounds`
says which, and memoises the bounds of each query it is asked.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import torch

from cfedit.bounds import Bounds
from cfedit.core.domains import Domains
from cfedit.core.intervention import Intervention
from cfedit.core.query import Query
from cfedit.editors.base import EditItem, Editor, EditResult
from cfedit.errors import CfeditError, QueryError
from cfedit.evaluation.metrics import Estimate, ctf_estimate
from cfedit.runs import QueryBounds

Reader = Callable[[np.ndarray], Mapping[str, np.ndarray]]
"""Images (N, C, H, W) in [0, 1] -> codes (N,) per factor."""


@dataclass(frozen=True)
class Row:
    """One implied query P(W_{x'} = w | V = v), its bounds and the editor's estimate."""

    query: Query
    factor: str
    value: int
    kept: bool  # w is W's factual value
    bounds: Bounds
    estimate: Estimate  # from the k edits' readings, Wilson 95%
    consistent: bool  # the estimate's interval meets the bounds
    truth: float | None = None  # the world's value, when the run belongs to a world


@dataclass(frozen=True)
class Certificate:
    """The certificate of one image's edits (see the module docstring)."""

    do: Intervention
    factual: dict[str, int]  # v: the labels given, or the labeller's reading of the image
    readings: dict[str, np.ndarray]  # (k,) codes read off each edited image by the labeller
    distributions: dict[str, np.ndarray]  # per factor, the share of the k readings taking each value
    rows: tuple[Row, ...]
    omitted: int  # rows left out: no edit shows the value and its lower bound is 0 (always consistent)
    source: str  # where P(V) came from
    note: str  # why there are no rows, when there are none
    result: EditResult = field(repr=False, compare=False)  # the edits themselves (images (1, k, C, H, W), v')

    @property
    def k(self) -> int:
        return len(next(iter(self.readings.values())))

    def to_dict(self, domains: Domains) -> dict:
        """JSON-able form, value names instead of codes."""
        return {
            "do": {f: domains.decode(f, c) for f, c in self.do.items()},
            "factual": {f: domains.decode(f, c) for f, c in self.factual.items()},
            "k": self.k,
            "distributions": {f: {domains.decode(f, c): float(p) for c, p in enumerate(d)} for f, d in self.distributions.items()},
            "queries": [{
                "query": r.query.format(domains), "factor": r.factor, "value": domains.decode(r.factor, r.value), "kept": r.kept,
                "lower": float(r.bounds.lower), "upper": float(r.bounds.upper), "identified": bool(r.bounds.identified),
                "certified": bool(r.bounds.certified),
                "estimate": None if r.estimate.n == 0 else float(r.estimate.value), "estimate_lower": float(r.estimate.lower),
                "estimate_upper": float(r.estimate.upper), "n": int(r.estimate.n), "consistent": r.consistent,
                **({"truth": r.truth} if r.truth is not None else {}),
            } for r in self.rows],
            "omitted": self.omitted,
            "p_v": self.source,
            "note": self.note,
        }


def label_reader(editor: Editor) -> Reader:
    """The editor's labeller h as a reader of numpy images."""
    def read(images: np.ndarray) -> dict[str, np.ndarray]:
        with torch.no_grad():
            x = torch.as_tensor(np.asarray(images, np.float32)).to(editor.device)
            return {f: t.cpu().numpy() for f, t in editor.label(x).items()}
    return read


def certify(editor: Editor, image: np.ndarray, do: Intervention | Mapping[str, object], k: int, seed: int, bounds: QueryBounds,
            labels: Mapping[str, object] | None = None, reader: Reader | None = None) -> Certificate:
    """Edit ``image`` (C, H, W) in [0, 1] under ``do`` (names or codes, one factor or several) with ``k``
    samples, and certify the edits against the optimal bounds of every implied query (module docstring).

    Args:
        editor: the editor.
        image: one image (C, H, W) in [0, 1].
        do: the action, one factor or several (value names or codes).
        k: edits to draw.
        seed: the same seed gives the same edits.
        bounds: where the bounds come from (:class:`QueryBounds`: a world's exact P(V), else the run's NCM).
        labels: the image's factors (every one), instead of the labeller's reading.
        reader: reads the edited images (default: the editor's labeller).

    Returns:
        The :class:`Certificate`: the edits, their readings and one row per implied query.

    Raises:
        CfeditError: an empty action, an unknown factor or value, or an image of another shape.
    """
    x_do = _action(editor, do)
    img = np.asarray(image, np.float32)[None]
    given = {f: [v] for f, v in labels.items()} if labels is not None else None
    return _certificate(editor, x_do, k, editor.edit(img, x_do, k, labels=given, seed=seed), bounds, reader)


def certify_each(editor: Editor, items: list[EditItem], bounds: QueryBounds, reader: Reader | None = None) -> list[Certificate]:
    """:func:`certify` of several images at once, each item with its own action, k, seed and labels; the edits
    run as one batch where the editor can (:meth:`~cfedit.editors.base.Editor.edit_each`), each item drawing
    from its own generator. Raises as :func:`certify` does for the first item it refuses."""
    items = [EditItem(np.asarray(it.image, np.float32), _action(editor, it.do), it.k, it.seed, it.labels) for it in items]
    return [_certificate(editor, it.do, it.k, r, bounds, reader) for it, r in zip(items, editor.edit_each(items))]


def _action(editor: Editor, do: Intervention | Mapping[str, object]) -> Intervention:
    x_do = Intervention.of(editor.domains, do)
    if not x_do:
        raise CfeditError("certify needs an intervention: at least one FACTOR=VALUE")
    return x_do


def _certificate(editor: Editor, x_do: Intervention, k: int, r: EditResult, bounds: QueryBounds, reader: Reader | None) -> Certificate:
    """The certificate of one image's k edits ``r`` under ``x_do`` (module docstring)."""
    dom = editor.domains
    v = {f: int(r.factual[f][0]) for f in dom.names}
    flat = r.images[0]  # (k, C, H, W)
    read = {f: np.asarray(a, np.int64).reshape(k) for f, a in (reader or label_reader(editor))(flat).items()}
    dist = {f: np.bincount(read[f], minlength=dom.size(f)) / k for f in dom.names}
    rows, omitted, note = [], 0, ""
    factual_k = {f: np.full(k, c) for f, c in v.items()}  # each of the k edits is one trial of the same unit
    for f in dom.names:
        if f in x_do:
            continue
        for w in range(dom.size(f)):
            q = Query.edit(x_do, {f: w}, v)
            try:
                b = bounds(q)
            except QueryError as e:  # the reading has probability zero under P(V): no query is defined
                note = f"no bounds: {e}"
                break
            if w != v[f] and dist[f][w] == 0 and b.lower <= 1e-9:
                omitted += 1
                continue
            est = ctf_estimate(q, factual_k, read)
            ok = bool(est.n > 0 and est.overlaps(b.lower - 1e-9, b.upper + 1e-9))
            rows.append(Row(q, f, w, w == v[f], b, est, ok, bounds.truth(q)))
        if note:
            rows, omitted = [], 0
            break
    return Certificate(x_do, v, read, dist, tuple(rows), omitted, bounds.source, note, r)
