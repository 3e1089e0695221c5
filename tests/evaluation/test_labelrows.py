"""Bounds from all the label rows: the evaluation folder's pooled with the run's training counts."""

import numpy as np
import pytest

from cfedit.bounds import count_table, empirical_table, optimal_bounds
from cfedit.core.domains import Domains
from cfedit.core.graph import CausalGraph
from cfedit.core.query import parse_query
from cfedit.errors import CfeditError, DataError
from cfedit.evaluation.labelrows import bounds_rows
from cfedit.evaluation.userdata import label_bounds
from cfedit.worlds import get_world

XY = Domains({"X": ["0", "1"], "Y": ["0", "1"]})


def test_counts_add_and_the_pooled_bounds_are_those_of_the_summed_table():
    """X -> Y: P(Y[X=1]=1 | X=0) is P(Y=1 | X=1). Training counts [[3, 1], [0, 4]], evaluation [[1, 1], [2, 0]]
    (rows X, columns Y): pooled [[4, 2], [2, 4]], so the bound is 4/6 by hand; the evaluation rows alone give 0/2."""
    ev_rows = {"X": np.array([0, 0, 1, 1]), "Y": np.array([0, 1, 0, 0])}
    ev = count_table(ev_rows, XY)
    assert ev.tolist() == [[1, 1], [2, 0]]
    train = np.array([[3, 1], [0, 4]])
    rows = bounds_rows(ev, train)
    assert rows.source == "all" and rows.n == 12 and rows.eval_rows == 4 and rows.train_rows == 8
    assert rows.counts.tolist() == [[4, 2], [2, 4]]
    assert "all 12 label rows" in rows.note and rows.warning is None
    g, q = CausalGraph.parse("X -> Y"), parse_query("P(Y[X=1]=1 | X=0)", XY)
    b = optimal_bounds(q, g, XY, rows.p_v)
    assert b.lower == pytest.approx(4 / 6) and b.upper == pytest.approx(4 / 6)
    only = bounds_rows(ev, train, "eval")
    assert only.source == "eval" and only.n == 4 and "as asked" in only.note
    assert optimal_bounds(q, g, XY, only.p_v).upper == pytest.approx(0.0, abs=1e-9)


def test_pooled_counts_are_the_table_of_the_concatenated_rows_and_the_bootstrap_redraws_them_all():
    """On Backdoor rows: the pooled table is the empirical table of the two row sets concatenated; the bootstrap
    range of an identified bound then has the binomial spread of the pooled n, narrower than the folder's alone."""
    w = get_world("backdoor")
    train, ev = w.scm.sample(6000, seed=1), w.scm.sample(1500, seed=2)
    both = {k: np.concatenate([train[k], ev[k]]) for k in w.domains.names}
    rows = bounds_rows(count_table(ev, w.domains), count_table(train, w.domains))
    np.testing.assert_allclose(rows.p_v, empirical_table(both, w.domains), atol=1e-15)
    q = parse_query("P(B[C=green]=1 | D=7, C=red)", w.domains)
    widths = {}
    for r in (rows, bounds_rows(count_table(ev, w.domains), None)):
        (row,), _ = label_bounds([q], w.graph, w.domains, r.p_v, r.n, resamples=100, seed=0)
        widths[r.source] = row["upper range"][1] - row["lower range"][0]
    cell = (both["D"] == 7) & (both["C"] == 0)
    emp = both["B"][cell].mean()
    se = np.sqrt(emp * (1 - emp) / cell.sum())
    assert 0.7 * 2 * 1.96 * se < widths["all"] < 1.3 * 2 * 1.96 * se, (widths, se)
    assert widths["all"] < 0.7 * widths["eval"]  # 7,500 rows against 1,500: about sqrt(5) narrower


def test_a_run_without_counts_falls_back_to_the_evaluation_rows_with_a_message():
    ev = np.array([[1, 1], [2, 0]])
    rows = bounds_rows(ev, None)
    assert rows.source == "eval" and rows.n == 4 and "records no counts" in rows.note
    with pytest.raises(CfeditError, match="--bounds-from eval"):
        bounds_rows(ev, None, "all")
    with pytest.raises(CfeditError, match="must be one of all, eval"):
        bounds_rows(ev, None, "both")


def test_evaluation_rows_with_the_training_table_are_not_counted_twice():
    ev = np.array([[3, 1], [0, 4]])
    rows = bounds_rows(ev, ev.copy())
    assert rows.source == "eval" and rows.n == 8 and "look like the training rows" in rows.note
    assert "count every row twice" in rows.warning
    with pytest.raises(DataError, match="count every row twice.*--bounds-from eval"):
        bounds_rows(ev, ev.copy(), "all")
    with pytest.raises(DataError, match="shape"):
        bounds_rows(ev, np.ones(3, int))
