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

Continuous factors (Morpho-MNIST's thickness and intensity) are certified over their declared bins, with the
world's exact binned law (:class:`cfedit.worlds.base.BinnedLaw`): the edit do(X = x) becomes the binned action
on the bin holding x, the evidence is the bins of the factual values, and the outcomes are the bins of the
edits' readings. The bounds hold exactly for the binned query, an approximation of the edit's (the
certificate's :attr:`Certificate.binning` says so in words). Without such a law (a run of the user's own
data) the certificate has no rows and its note says why.
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
class Binned:
    """How a certificate of continuous factors reads them: over their declared bins."""

    domains: Domains  # categorical: each continuous factor replaced by its declared bins (value names "lo-hi")
    do: Intervention  # the binned action: each continuous value's bin (codes of ``domains``)
    factual: dict[str, int]  # the bins of the factual values
    text: str  # the approximation, in words


@dataclass(frozen=True)
class Certificate:
    """The certificate of one image's edits (see the module docstring)."""

    do: Intervention
    factual: dict[str, int | float]  # v: the labels given, or the labeller's reading of the image
    readings: dict[str, np.ndarray]  # (k,) codes (values of a continuous factor) read off each edited image by the labeller
    distributions: dict[str, np.ndarray]  # per factor, the share of the k readings taking each value (each bin, if continuous)
    rows: tuple[Row, ...]  # queries over the binned domains when there are continuous factors
    omitted: int  # rows left out: no edit shows the value and its lower bound is 0 (always consistent)
    source: str  # where P(V) came from
    note: str  # why there are no rows, when there are none
    result: EditResult = field(repr=False, compare=False)  # the edits themselves (images (1, k, C, H, W), v')
    binning: Binned | None = None  # continuous factors: the bins the rows and distributions are over

    @property
    def k(self) -> int:
        return len(next(iter(self.readings.values())))

    def to_dict(self, domains: Domains) -> dict:
        """JSON-able form, value names instead of codes (a continuous value as a number, the rows and
        distributions over its bins, with ``binning``, ``binned_do`` and ``binned_factual``)."""
        b = self.binning
        rows = b.domains if b is not None else domains
        return {
            "do": {f: domains.decode(f, c) for f, c in self.do.items()},
            "factual": {f: domains.decode(f, c) for f, c in self.factual.items()},
            "k": self.k,
            "distributions": {f: {rows.decode(f, c): float(p) for c, p in enumerate(d)} for f, d in self.distributions.items()},
            "queries": [{
                "query": r.query.format(rows), "factor": r.factor, "value": rows.decode(r.factor, r.value), "kept": r.kept,
                "lower": float(r.bounds.lower), "upper": float(r.bounds.upper), "identified": bool(r.bounds.identified),
                "certified": bool(r.bounds.certified),
                "estimate": None if r.estimate.n == 0 else float(r.estimate.value), "estimate_lower": float(r.estimate.lower),
                "estimate_upper": float(r.estimate.upper), "n": int(r.estimate.n), "consistent": r.consistent,
                **({"truth": r.truth} if r.truth is not None else {}),
            } for r in self.rows],
            "omitted": self.omitted,
            "p_v": self.source,
            "note": self.note,
            "binning": b.text if b is not None else "",
            "binned_do": {f: b.domains.decode(f, c) for f, c in b.do.items() if domains.is_continuous(f)} if b is not None else {},
            "binned_factual": ({f: b.domains.decode(f, c) for f, c in b.factual.items() if domains.is_continuous(f)}
                               if b is not None else {}),
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
    cont = dom.continuous_names
    v = {f: (float if f in cont else int)(r.factual[f][0]) for f in dom.names}
    flat = r.images[0]  # (k, C, H, W)
    read = {f: np.asarray(a, np.float64 if f in cont else np.int64).reshape(k) for f, a in (reader or label_reader(editor))(flat).items()}
    binning, qdom, q_do, q_v, q_read = None, dom, x_do, v, read
    if cont:  # continuous factors: queries, readings and distributions over their declared bins
        qdom = dom.binned()
        to_bin = lambda f, a: dom.bin(f, a) if f in cont else np.asarray(a)  # noqa: E731
        q_do = Intervention({f: int(to_bin(f, c)) for f, c in x_do.items()})
        q_v = {f: int(to_bin(f, c)) for f, c in v.items()}
        q_read = {f: to_bin(f, a) for f, a in read.items()}
        binning = Binned(qdom, q_do, q_v, _binning_text(dom, x_do, q_do, bounds))
    dist = {f: np.bincount(q_read[f], minlength=qdom.size(f)) / k for f in dom.names}
    rows, omitted, note = [], 0, ""
    if bounds.unavailable:
        return Certificate(x_do, v, read, dist, (), 0, bounds.source, bounds.unavailable, r, binning)
    if bounds.domains != qdom:
        raise CfeditError(f"the bounds are over the factors {bounds.domains.as_dict()}, the certificate's over {qdom.as_dict()}")
    factual_k = {f: np.full(k, c) for f, c in q_v.items()}  # each of the k edits is one trial of the same unit
    for f in dom.names:
        if f in x_do:
            continue
        for w in range(qdom.size(f)):
            q = Query.edit(q_do, {f: w}, q_v)
            try:
                b = bounds(q)
            except QueryError as e:  # the reading has probability zero under P(V): no query is defined
                note = f"no bounds: {e}"
                break
            if w != q_v[f] and dist[f][w] == 0 and b.lower <= 1e-9:
                omitted += 1
                continue
            est = ctf_estimate(q, factual_k, q_read)
            ok = bool(est.n > 0 and est.overlaps(b.lower - 1e-9, b.upper + 1e-9))
            rows.append(Row(q, f, w, w == q_v[f], b, est, ok, bounds.truth(q)))
        if note:
            rows, omitted = [], 0
            break
    return Certificate(x_do, v, read, dist, tuple(rows), omitted, bounds.source, note, r, binning)


def _binning_text(dom: Domains, x_do: Intervention, q_do: Intervention, bounds: QueryBounds) -> str:
    """The binning approximation of a certificate of continuous factors, in words."""
    cont = dom.continuous_names
    bins = "; ".join(f"{f}: {', '.join(dom.continuous(f).bin_names)}" for f in cont)
    acted = [f for f in x_do if f in cont]
    action = (", ".join(f"do({f}={dom.decode(f, x_do[f])}) is taken as the binned action do({f} in "
                        f"{dom.binned().decode(f, q_do[f])})" for f in acted) + "; ") if acted else ""
    law = bounds.world.binned.action if bounds.world is not None and bounds.world.binned is not None else ""
    return (f"{', '.join(cont)} continuous: the certificate is over their declared bins ({bins}). {action}the evidence is the bins "
            f"of the factual values and each outcome the bin of an edit's reading, so the bounds hold exactly for the binned query, "
            f"an approximation of the edit's that tightens as the bins shrink" + (f" (binned action: {law})" if law else "")
            + (". A truth is the world's value of the binned query, sampled" if bounds.world is not None else "") + ".")
