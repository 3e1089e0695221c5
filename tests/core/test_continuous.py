"""Continuous factors: domains (an interval with declared bins) and queries with comparisons and means."""

import numpy as np
import pytest

from cfedit.core.domains import Continuous, Domains
from cfedit.core.query import Atom, Expectation, Query, parse_counterfactual, parse_query
from cfedit.errors import DomainError, QueryError

DOM = Domains({"D": [str(d) for d in range(10)], "T": Continuous(1.5, 6.5, bins=(2.0, 3.0)), "I": Continuous(64, 255)})


def test_continuous_domain_validates_its_interval_and_edges():
    assert Continuous(0, 1).edges == (0.0, 1.0) and Continuous(0, 1).n_bins == 1
    for bad in [(1, 1, ()), (2, 1, ()), (0, float("inf"), ()), (0, 1, (0.5, 0.5)), (0, 1, (1.0,)), (0, 1, (0.7, 0.3))]:
        with pytest.raises(DomainError):
            Continuous(*bad)
    with pytest.raises(DomainError, match="needs numbers"):
        Continuous("a", 1)


def test_bins_are_right_closed_and_ends_absorb_outliers():
    c = DOM.continuous("T")
    assert c.bin([1.5, 2.0, 2.0001, 3.0, 3.5, 6.5]).tolist() == [0, 0, 1, 1, 2, 2]
    assert c.bin([0.0, 9.0]).tolist() == [0, 2]
    assert c.bin_names == ("1.5-2", "2-3", "3-6.5")


def test_mixed_domains_encode_numbers_and_names():
    assert DOM.names == ("D", "T", "I")
    assert DOM.continuous_names == ("T", "I") and DOM.categorical_names == ("D",)
    assert DOM.encode({"D": "7", "T": 2, "I": "120.5"}) == {"D": 7, "T": 2.0, "I": 120.5}
    assert DOM.parse_assignments("T=1.8, D=3") == {"T": 1.8, "D": 3}
    assert isinstance(DOM.code("T", np.int64(3)), float)
    assert DOM.format({"T": 2.25, "D": 7}) == "T=2.25, D=7"
    assert DOM.codes("T", np.array([1.5, 2, 6.5])).dtype == np.float64
    assert DOM.codes("T", ["2", 3.5]).tolist() == [2.0, 3.5]


@pytest.mark.parametrize("value, match", [
    (7.0, "outside the range of T"), ("nan", "outside the range of T"), ("thick", "give a number in \\[1.5, 6.5\\]"),
    (True, "give a number"), (None, "give a number"), (float("inf"), "outside the range of T"),
    pytest.param(10**400, "outside the range of T", id="huge-int"),  # no float holds it: refused, not an OverflowError
])
def test_bad_continuous_values_name_the_range(value, match):
    with pytest.raises(DomainError, match=match):
        DOM.code("T", value)


def test_array_values_out_of_range_are_named_by_position():
    with pytest.raises(DomainError, match="item 1: 9 is outside the range of T"):
        DOM.codes("T", np.array([2.0, 9.0]))
    with pytest.raises(DomainError, match="item 1"):
        DOM.codes("T", [2.0, "x"])


def test_listing_and_counting_refuse_a_continuous_factor():
    for call in (lambda: DOM.values("T"), lambda: DOM.size("T"), lambda: DOM.shape, lambda: DOM.n_configs(["D", "T"]),
                 lambda: DOM.config_index(["T"], {"T": 2.0})):
        with pytest.raises(DomainError, match="T is continuous"):
            call()
    with pytest.raises(DomainError, match="D is categorical"):
        DOM.continuous("D")


def test_as_dict_round_trips_and_binned_domains_are_categorical():
    assert Domains(DOM.as_dict()) == DOM
    assert DOM.as_dict()["T"] == {"range": [1.5, 6.5], "bins": [2.0, 3.0]}
    assert Domains({"I": Continuous(64, 255), "T": Continuous(1.5, 6.5, (2.0, 3.0)), "D": list("0123456789")}) != DOM  # order
    b = DOM.binned()
    assert b.values("T") == ("1.5-2", "2-3", "3-6.5") and b.values("I") == ("64-255",) and b.shape == (10, 3, 1)
    assert b.encode({"T": "2-3"}) == {"T": 1}  # bin names are value names
    with pytest.raises(DomainError, match="range"):
        Domains({"T": {"bins": [1]}})


def test_parse_comparisons_on_continuous_factors():
    q = parse_query("P(T[I=200] > 2.5 | T=1.8)", DOM)
    assert q.outcome == (Atom("T", 2.5, (("I", 200.0),), ">"),) and q.given == (Atom("T", 1.8),)
    assert q.format(DOM) == "P(T[I=200]>2.5 | T=1.8)"
    q = parse_query("P(I[T=3]<=100, T[D=2]>=2 | D=7, T=2, I=90)", DOM)
    assert [a.op for a in q.outcome] == ["<=", ">="]
    assert parse_query(q.format(DOM), DOM) == q
    assert parse_counterfactual("P(T<2)", DOM) == parse_query("P(T<2)", DOM)


def test_parse_expectation():
    e = parse_counterfactual("E[I[T=3] | T=1.5, I=120]", DOM)
    assert e == Expectation("I", (("T", 3.0),), (Atom("T", 1.5), Atom("I", 120.0)))
    assert e.format(DOM) == "E[I[T=3] | T=1.5, I=120]" and e.worlds == ((("T", 3.0),), ())
    assert parse_counterfactual("E[T]", DOM) == Expectation("T")


@pytest.mark.parametrize("text, message, caret", [
    ("P(D<3)", "D is categorical: its values have no order", 3),
    ("P(T=2.5)", "T is continuous: the event T=x has probability zero", 3),
    ("P(T>9)", "9 is outside the range of T", 4),
    ("P(T[I=999]>2)", "999 is outside the range of I", 6),
    ("E[D[T=2]]", "D is categorical: ask P(D=VALUE ...)", 2),
    ("E[T | T=2", "expected ']', found end of text", 9),
    ("E[T] x", "unexpected text after the closing ']'", 5),
])
def test_errors_point_at_the_token(text, message, caret):
    with pytest.raises(QueryError) as e:
        parse_counterfactual(text, DOM)
    msg = str(e.value)
    assert message in msg
    assert msg.splitlines()[-1].index("^") - 2 == caret


def test_parse_query_refuses_an_expectation_with_a_pointer():
    with pytest.raises(QueryError, match="parse_counterfactual"):
        parse_query("E[T]", DOM)


def test_atom_holds_applies_its_relation():
    x = np.array([1.0, 2.0, 3.0])
    assert Atom("T", 2.0, (), "<").holds(x).tolist() == [True, False, False]
    assert Atom("T", 2.0, (), ">=").holds(x).tolist() == [False, True, True]
    assert Atom("T", 2.0).holds(x).tolist() == [False, True, False]
    with pytest.raises(QueryError, match="unknown relation"):
        Atom("T", 2.0, (), "!=")


def test_comparison_atoms_are_not_taken_for_conflicting_values():
    Query((Atom("T", 2.0, (), ">"), Atom("T", 3.0, (), "<")))  # 2 < T < 3: one event, two bounds
    with pytest.raises(QueryError, match="two different values"):
        Query((Atom("I", 100.0),), (Atom("T", 2.0), Atom("T", 3.0)))
