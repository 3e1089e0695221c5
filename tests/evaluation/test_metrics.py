"""Metrics: sanity (metric(x, x)), intervals, and the edit-form ctf estimate."""

import numpy as np
import pytest

from cfedit.core.query import parse_query
from cfedit.errors import QueryError
from cfedit.evaluation.metrics import ctf_estimate, effectiveness, faithfulness, preservation, reconstruction_error, wilson
from cfedit.worlds.colored_mnist import DOMAINS


def test_wilson_interval_contains_the_proportion():
    e = wilson(30, 100)
    assert e.value == 0.3 and e.lower < 0.3 < e.upper and e.n == 100
    assert wilson(0, 10).lower == 0.0 and wilson(10, 10).upper == 1.0


def test_identity_metrics():
    x = np.random.default_rng(0).random((5, 3, 4, 4))
    assert reconstruction_error(x, x).value == 0.0
    v = {"D": np.array([1, 2, 3]), "C": np.array([0, 1, 0])}
    assert preservation(v, v, ["D", "C"]).value == 1.0
    assert effectiveness({"C": np.zeros((3, 4), int)}, {"C": 0}).value == 1.0


def test_preservation_with_samples():
    before = {"D": np.array([1, 2])}
    after = {"D": np.array([[1, 1, 0, 1], [2, 2, 2, 2]])}
    assert preservation(before, after, ["D"]).value == pytest.approx(7 / 8)


def test_ctf_estimate_reads_the_edit_form():
    q = parse_query("P(B[C=green]=1 | D=7, C=red)", DOMAINS)
    factual = {"D": np.array([7, 7, 7, 3]), "C": np.array([1, 1, 0, 1]), "B": np.array([0, 1, 0, 0])}
    edited = {"B": np.array([[1, 1], [0, 1], [0, 0], [1, 1]])}
    e = ctf_estimate(q, factual, edited)
    assert e.n == 2 and e.value == pytest.approx(0.75)
    assert 0 <= e.lower <= e.value <= e.upper <= 1
    with pytest.raises(QueryError):
        ctf_estimate(parse_query("P(B=1 | D=7)", DOMAINS), factual, edited)


def test_faithfulness_per_factor():
    read = {"D": np.array([[3, 3], [5, 4]]), "C": np.array([[1, 1], [0, 0]])}
    made = {"D": np.array([[3, 3], [5, 5]]), "C": np.array([[1, 1], [0, 0]])}
    f = faithfulness(read, made)
    assert f["D"].value == pytest.approx(0.75) and f["C"].value == 1.0 and f["D"].n == 2
    assert faithfulness(made, made)["D"].value == 1.0
