import pytest

from cfedit.core.domains import Domains
from cfedit.core.query import Atom, Query, parse_query
from cfedit.errors import QueryError

DOM = Domains({"D": [str(d) for d in range(10)], "C": ["green", "red"], "B": ["0", "1"]})


def test_parse_edit_query_and_round_trip():
    text = "P(B[C=green]=1 | D=7, C=red, B=0)"
    q = parse_query(text, DOM)
    assert q.outcome == (Atom("B", 1, (("C", 0),)),)
    assert q.given == (Atom("D", 7), Atom("C", 1), Atom("B", 0))
    assert q.format(DOM) == text
    assert parse_query(q.format(DOM), DOM) == q
    assert q == Query.edit({"C": 0}, {"B": 1}, {"D": 7, "C": 1, "B": 0})


def test_joint_and_several_interventions():
    q = parse_query("P(B=0, B[C=green, D=2]=1)", DOM)
    assert q.worlds == ((), (("C", 0), ("D", 2)))


@pytest.mark.parametrize(
    "text, caret, message",
    [
        ("P(B[C=blue]=1)", 6, "valid values are green, red"),
        ("P(Z=1)", 2, "unknown factor 'Z'"),
        ("P(B=1 | D=7", 11, "expected '\\)'"),
        ("Q(B=1)", 0, "expected 'P'"),
        ("P(B=1) extra", 7, "unexpected text"),
    ],
)
def test_errors_point_at_the_token(text, caret, message):
    with pytest.raises(QueryError, match=message) as e:
        parse_query(text, DOM)
    last = str(e.value).splitlines()[-1]
    assert last.index("^") - 2 == caret


def test_inconsistent_queries_rejected():
    with pytest.raises(QueryError, match="set to code 0 in its own world"):
        parse_query("P(C[C=green]=red)", DOM)
    with pytest.raises(QueryError, match="two different values"):
        parse_query("P(B=1 | B=0)", DOM)


# ---------------------------------------------------------------- values are names; malformed queries
def test_values_are_names_never_codes():
    dom = Domains({"X": ["1", "2"], "Z": ["0", "1"]})
    with pytest.raises(QueryError, match="'0' is not a value of X; valid values are 1, 2"):
        parse_query("P(Z[X=1]=1 | X=0, Z=0)", dom)
    assert parse_query("P(Z[X=1]=1 | X=2, Z=0)", dom).given[0] == Atom("X", 1)  # the name 2 is code 1


@pytest.mark.parametrize("text", ["P(B=²)", "P(D=" + "7" * 5000 + ")", "P(B=1 | " + "C=red, " * 3000 + "C=)",
                                  "P(" + "D" * 5000 + "=1)", "P(B=1)" + ")" * 5000])
def test_malformed_and_huge_queries_give_short_pointed_messages(text):
    with pytest.raises(QueryError) as e:
        parse_query(text, DOM)
    lines = str(e.value).splitlines()
    assert len(lines) == 3 and all(len(ln) < 400 for ln in lines)
    assert lines[2].strip() == "^"
