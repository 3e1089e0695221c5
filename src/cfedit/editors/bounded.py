"""Bounded editing: edits at the two extremal models of a query that is not identified.

For a query Q = P(W_{x'} = w | V = v) the compatible SCMs (those over G that reproduce P(V)) range over
the optimal bounds [l, u] (:func:`cfedit.bounds.optimal_bounds`); :func:`cfedit.bounds.extremal_models`
builds one SCM attaining l and one attaining u. :class:`AtModel` edits with the factor level of such an
exact SCM M and the image level of a trained editor:

1. label:   v = h^(i) (or the labels given), as the editor does;
2. abduct:  u ~ P_M(U | V = v) by enumerating M's finite exogenous space; u_I = abduct^(i, v), the editor's;
3. act:     X = x';
4. predict: v' = F^M_{x'}(u); i' = f^_I(v', u_I), the editor's image mechanism.

:func:`edit_at_extremes` returns both sets of edits with the bound each attains, so a user sees how far
the admissible edits of one image range. Notation: ``scm`` -> M, ``u_i`` -> U_I, ``do`` -> x'.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch

from cfedit.bounds import Bounds, extremal_models, optimal_bounds
from cfedit.core.intervention import Intervention
from cfedit.core.query import Query, parse_query
from cfedit.editors.base import CausalEditor, Editor, EditResult
from cfedit.errors import CfeditError, QueryError
from cfedit.scm import SCM, Values

EXTREMES = ("lower", "upper")


class AtModel(Editor):
    """``editor``'s labeller and image mechanism (``editor.image``: ``abduct(images, v)`` and
    ``generate(v, u_i)``) with the factor level of the exact SCM ``scm`` (same factors and values)."""

    batch_size = 1024

    def __init__(self, editor: Editor, scm: SCM, name: str = "at-model"):
        if not isinstance(editor, CausalEditor):
            raise CfeditError(f"editing at a model needs an editor whose image mechanism abducts; {editor.name!r} has none")
        if scm.domains != editor.domains:
            raise CfeditError(f"the model's factors {scm.domains.as_dict()} differ from the editor's {editor.domains.as_dict()}")
        self.editor, self.scm, self.name = editor, scm, name
        self.domains, self.image_shape, self.device = editor.domains, editor.image_shape, editor.device
        self._u, self._p = scm.enumerate_u()
        fact = scm.evaluate(self._u)
        self._row = np.ravel_multi_index(tuple(fact[k] for k in self.domains.names), self.domains.shape)

    def label(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Step 1: the editor's labeller."""
        return self.editor.label(images)

    def abduct(self, images: torch.Tensor, v: Mapping[str, torch.Tensor], n_samples: int,
               generator: torch.Generator) -> tuple[Values, torch.Tensor]:
        """u ~ P_M(U | V = v), exactly (n_samples per image, row-major), and the editor's u_I."""
        codes = {k: np.asarray(t.cpu()) for k, t in v.items()}
        rows = np.ravel_multi_index(tuple(codes[k] for k in self.domains.names), self.domains.shape)
        picks = np.empty((len(rows), n_samples), dtype=np.int64)
        for r in np.unique(rows):
            w = np.where(self._row == r, self._p, 0.0)
            if w.sum() <= 0:
                ev = self.domains.format({k: int(codes[k][rows == r][0]) for k in self.domains.names})
                raise QueryError(f"the factors {ev} have probability zero in the model at the {self.name} bound")
            at = np.flatnonzero(rows == r)
            draws = torch.multinomial(torch.as_tensor(w / w.sum()), len(at) * n_samples, replacement=True, generator=generator)
            picks[at] = draws.numpy().reshape(len(at), n_samples)
        u = {k: a[picks.reshape(-1)] for k, a in self._u.items()}
        return u, self.editor.image.abduct(images, v).repeat_interleave(n_samples, dim=0)

    def predict(self, u_v: Values, u_i: torch.Tensor, do: Mapping[str, int]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Step 4: v' from the model's mechanisms, i' from the editor's image mechanism."""
        v_cf = {k: torch.as_tensor(a, device=self.device) for k, a in self.scm.evaluate(u_v, do).items()}
        return v_cf, self.editor.image.generate(v_cf, u_i)


@dataclass(frozen=True)
class ExtremalEdits:
    """Edits of the same images at the models attaining the lower and upper bound of ``query``."""

    query: Query
    bounds: Bounds
    edits: dict[str, EditResult]  # "lower" and "upper"
    models: dict[str, SCM]
    note: str = ""  # how far the P(V) of the models was checked against the data (empty: p_v was given)

    def attained(self, which: str) -> float:
        """The value of the query in the model at ``which`` (``Bounds.attained``)."""
        return self.bounds.attained[EXTREMES.index(which)]


def edit_form(query: Query | str, domains) -> tuple[Query, Intervention]:
    """``query`` parsed and checked to have the edit form P(W[X=x']=w | V=v); returns it and x'."""
    q = parse_query(query, domains) if isinstance(query, str) else query
    if not q.is_edit_form:
        raise QueryError(f"{q.format(domains)} is not of the edit form P(W[X=x']=w | V=v): one intervened world in "
                         "the outcome, factual evidence")
    return q, q.action


def check_seen(editor: Editor, query: Query) -> str:
    """Refuse (:class:`QueryError`) a query whose evidence never occurs among the training labels of
    ``editor`` (an ANCM records their counts, ``editor.label_counts``): there the NCM's P(V) is its own
    extrapolation, not the data's, and bounds computed from it certify nothing about the data. Returns a
    line saying how often the evidence occurs, or that the run records no counts to check it against."""
    counts = editor.label_counts if isinstance(editor, CausalEditor) else None
    dom = editor.domains
    evidence = ", ".join(a.format(dom) for a in query.given) or "(none)"
    if counts is None:
        return (f"the run records no counts of its training labels (trained by an older cfedit): whether the evidence "
                f"{evidence} occurs in the data was not checked")
    index = tuple(next((a.value for a in query.given if a.var == k), slice(None)) for k in dom.names)
    seen, total = int(np.sum(counts[index])), int(counts.sum())
    if seen == 0:
        raise QueryError(f"the evidence {evidence} never occurs in the run's {total:,} training labels: the NCM's P(V) there "
                         "is an extrapolation, so bounds from it say nothing about the data (ask about evidence the data "
                         "has, or give the data's P(V))")
    return f"the evidence {evidence} occurs in {seen:,} of the run's {total:,} training labels"


def edit_at_extremes(editor: Editor, images: np.ndarray | torch.Tensor, query: Query | str, n_samples: int = 8, *,
                     p_v: np.ndarray | None = None, labels: Mapping[str, object] | None = None,
                     do: Mapping[str, object] | None = None, seed: int = 0) -> ExtremalEdits:
    """Edit ``images`` under the query's action at the two extremal models of ``query`` (edit form).

    ``p_v`` is the P(V) the models reproduce: by default the editor's own (``editor.ncm.table()``, the P(V)
    its NCM fitted), for evidence that its training labels hold (:func:`check_seen`); a ``p_v`` given refuses
    evidence of probability zero in it. ``editor`` needs a causal diagram (``editor.graph``) and an abducting image mechanism.
    Every image's factors (the labels given, else the labeller's reading) must agree with the query's
    evidence, since the models attain the bounds for that evidence. ``do``, when given, must be the query's action.

    Args:
        editor: an editor with a causal diagram and an abducting image mechanism (an :class:`~cfedit.editors.ancm.ANCM`).
        images: (N, C, H, W) floats in [0, 1] whose factors match the query's evidence.
        query: an edit-form query ``P(W[X=x']=w | V=v)``, or its text.
        n_samples: edits per image at each model.
        p_v: the P(V) the models reproduce (default: the editor's NCM's).
        labels: the images' factors, instead of the labeller's reading.
        do: the action, if given (it must be the query's).
        seed: the same seed gives the same edits.

    Returns:
        An :class:`ExtremalEdits`: the bounds, each model's value, and the edits at both models.

    Raises:
        QueryError: a query not in edit form, an action other than the query's, images whose factors do not
            match the evidence, or evidence the run's training labels never hold.
    """
    q, x_do = edit_form(query, editor.domains)
    if do is not None and Intervention.of(editor.domains, do) != x_do:
        raise QueryError(f"the query {q.format(editor.domains)} asks about do({x_do.format(editor.domains)}), not "
                         f"do({Intervention.of(editor.domains, do).format(editor.domains)})")
    do = x_do
    note = ""
    if p_v is None:
        if not isinstance(editor, CausalEditor):
            raise CfeditError(f"editor {editor.name!r} has no fitted P(V): give p_v")
        note = check_seen(editor, q)
        p_v = editor.fitted_p_v()
    p_v = np.asarray(p_v, dtype=float)
    p_v = p_v / p_v.sum()
    bounds = optimal_bounds(q, editor.graph, editor.domains, p_v)
    lower, upper = extremal_models(q, editor.graph, editor.domains, p_v)
    x = torch.as_tensor(np.asarray(images) if not isinstance(images, torch.Tensor) else images)
    if labels is not None:
        v = {k: np.asarray(t) for k, t in editor.encode_labels(labels, len(x)).items()}
    else:
        v = {k: np.asarray(t.cpu()) for k, t in editor.label(x.to(editor.device, torch.float32)).items()}
    for a in q.given:
        bad = np.flatnonzero(v[a.var] != a.value)
        if len(bad):
            i = int(bad[0])
            reading = editor.domains.format({k: int(c[i]) for k, c in v.items()})
            raise QueryError(f"image {i} has factors {reading}, but the query's evidence is "
                             f"{', '.join(b.format(editor.domains) for b in q.given)}: the extremal models attain the "
                             "bounds for that evidence only (give the image's labels, or a query about them)")
    models = {"lower": lower, "upper": upper}
    edits = {w: AtModel(editor, m, w).edit(x, do, n_samples, labels=v, seed=seed) for w, m in models.items()}
    return ExtremalEdits(q, bounds, edits, models, note)
