"""Which label rows the bounds of a user-data evaluation come from: the evaluation folder's, or all the user has.

The optimal bounds are a function of P(V) and the diagram only, so every labelled row the user holds
estimates them, not only the evaluation folder's. A run trained by ``cfedit train`` records how often each
factor configuration occurs among its training labels (``config.json`` ``fit.label_counts``,
:attr:`cfedit.editors.ancm.ANCM.label_counts`). :func:`bounds_rows` pools that count table with the
evaluation folder's (``all``): P(V) is the summed table over its total, and the bootstrap redraws that many
rows from it (a multinomial draw of the pooled count table is the same as resampling the pooled rows).
``eval`` keeps the evaluation folder's rows alone (today's behaviour, and the fallback for a run that
records no counts).

Pooling assumes the evaluation rows are not among the training rows: a row counted twice narrows the
bootstrap range as if it were new data. The run records counts, not rows, so only one case can be told:
an evaluation table equal to the training table, cell for cell, is almost surely the same rows (then the
editor is also judged on the images it trained on). That case falls back to ``eval`` with a warning, and
an explicit ``all`` is refused. A partial overlap (the evaluation rows a subset of the training rows)
cannot be seen from counts: the user who evaluates on training images should pass ``eval``. (The run's
``train_state.safetensors`` holds a digest of the whole training set, which can tell the same full set
only, as the count table does.)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cfedit.errors import CfeditError, DataError

BOUNDS_FROM = ("all", "eval")


@dataclass(frozen=True)
class BoundsRows:
    """The count table the bounds use, and where it comes from."""

    counts: np.ndarray  # counts of each factor configuration, axes in domains.names order
    source: str  # "all" (evaluation + training rows) or "eval" (the evaluation folder's rows)
    eval_rows: int  # rows of the evaluation folder
    train_rows: int  # training rows pooled in (0 for "eval")
    note: str  # which rows, and why, for the report: "the evaluation folder's 10,000 label rows (...)"
    warning: str | None = None  # the evaluation rows may be the training rows

    @property
    def n(self) -> int:
        return int(self.counts.sum())

    @property
    def p_v(self) -> np.ndarray:
        return self.counts / self.counts.sum()


def bounds_rows(eval_counts: np.ndarray, train_counts: np.ndarray | None, bounds_from: str | None = None) -> BoundsRows:
    """The rows the bounds use: ``all`` pools the training labels' counts (``train_counts``, None when the run
    records none) with the evaluation folder's; ``eval`` uses the folder's alone; None: ``all`` when the run
    records counts and they differ from the folder's, else ``eval``, saying why (module docstring)."""
    if bounds_from is not None and bounds_from not in BOUNDS_FROM:
        raise CfeditError(f"bounds-from must be one of {', '.join(BOUNDS_FROM)}, got {bounds_from!r}")
    ev = np.asarray(eval_counts, dtype=np.int64)
    n_eval = int(ev.sum())
    if train_counts is not None and np.shape(train_counts) != ev.shape:
        raise DataError(f"the run's training label counts have shape {np.shape(train_counts)}, the evaluation labels' {ev.shape}")
    same = train_counts is not None and bool(np.array_equal(np.asarray(train_counts), ev))
    warning = (f"the evaluation labels have exactly the count table of the run's {n_eval:,} training labels: they are very "
               "likely the same rows, so the editor is judged on images it trained on, and pooling would count every "
               "row twice" if same else None)
    if bounds_from == "all" and train_counts is None:
        raise CfeditError("bounds from all the label rows need the run's record of its training labels (config.json "
                          "fit.label_counts), which this run does not have (trained by an older cfedit, or too many "
                          "configurations): use bounds from the evaluation rows (--bounds-from eval)")
    if bounds_from == "all" and same:
        raise DataError(f"{warning}: use bounds from the evaluation rows (--bounds-from eval)")
    if bounds_from == "eval" or train_counts is None or same:
        why = ("as asked" if bounds_from == "eval" else
               "the run records no counts of its training labels" if train_counts is None else
               "the evaluation rows look like the training rows")
        return BoundsRows(ev, "eval", n_eval, 0, f"the evaluation folder's {n_eval:,} label rows ({why})", warning)
    tr = np.asarray(train_counts, dtype=np.int64)
    n_train = int(tr.sum())
    return BoundsRows(ev + tr, "all", n_eval, n_train,
                      f"all {n_eval + n_train:,} label rows: the evaluation folder's {n_eval:,} pooled with the "
                      f"{n_train:,} the run trained on (their counts, recorded in the run; this assumes the evaluation rows "
                      "are not among the training rows; give --bounds-from eval if they are)", warning)
