import numpy as np
import pytest

from cfedit.core.domains import Domains
from cfedit.errors import DomainError

DOM = Domains({"D": [str(d) for d in range(10)], "C": ["green", "red"], "B": ["0", "1"]})


def test_codes_from_names_and_integers():
    assert DOM.encode({"C": "red", "D": "7", "B": 1}) == {"C": 1, "D": 7, "B": 1}
    assert DOM.parse_assignments(["C=green", "D=3,B=0"]) == {"C": 0, "D": 3, "B": 0}
    assert DOM.format({"C": 0, "D": 3}) == "C=green, D=3"


def test_errors_list_what_is_valid():
    with pytest.raises(DomainError, match="unknown factor 'X'; factors are D, C, B"):
        DOM.encode({"X": 1})
    with pytest.raises(DomainError, match="valid values are green, red"):
        DOM.parse_assignments("C=blue")
    with pytest.raises(DomainError, match="valid values are 0, 1"):
        DOM.encode({"B": 2})
    with pytest.raises(DomainError, match="assigned twice"):
        DOM.parse_assignments("C=red, C=green")
    with pytest.raises(DomainError, match="FACTOR=VALUE"):
        DOM.parse_assignments("C")


# ---------------------------------------------------------------- text is a name, never a code
def test_text_that_is_not_a_value_name_is_refused_even_when_it_looks_like_a_code():
    dom = Domains({"X": ["1", "2"], "C": ["green", "red"]})
    assert dom.code("X", "1") == 0 and dom.code("X", " 2 ") == 1  # names, blanks aside
    for text in ["0", "-1", "3", "#0", "01"]:
        with pytest.raises(DomainError, match=rf"'{text}' is not a value of X; valid values are 1, 2"):
            dom.code("X", text)
    with pytest.raises(DomainError, match="'0' is not a value of C; valid values are green, red"):
        dom.parse_assignments("C=0")
    with pytest.raises(DomainError, match="'1' is not a value of C"):
        dom.encode({"C": "1"})


def test_integers_from_python_and_numpy_are_codes():
    import numpy as np

    dom = Domains({"X": ["1", "2"]})
    assert dom.code("X", 0) == 0 and dom.code("X", np.int64(1)) == 1 and dom.encode({"X": np.uint8(1)}) == {"X": 1}
    with pytest.raises(DomainError, match=r"code -1 is out of range for X; valid values are 1, 2 \(codes 0 to 1\)"):
        dom.code("X", -1)
    with pytest.raises(DomainError, match="give a value name"):
        dom.code("X", 1.0)  # a float is neither a name nor a code


# ---------------------------------------------------------------- malformed values
@pytest.mark.parametrize("value,why", [("²", "other than ASCII"), ("light blue", "other than ASCII"),
                                       ("a,b", "other than ASCII"), ("", "is empty"), ("9" * 101, "longer than 100")])
def test_value_names_must_be_writable_in_queries(value, why):
    with pytest.raises(DomainError, match=why):
        Domains({"X": ["ok", value]})


def test_malformed_and_huge_values_are_refused_with_a_short_message():
    for text in ["D=²", "D=" + "7" * 5000, "D" * 5000, "C=red, C=" + "g" * 5000]:
        with pytest.raises(DomainError) as e:
            DOM.parse_assignments(text)
        assert len(str(e.value)) < 400, str(e.value)[:100]
    with pytest.raises(DomainError, match=r"\.\.\. \(5,000 characters\)"):
        DOM.encode({"D": "7" * 5000})


def test_codes_keep_each_items_type():
    """A list keeps each item's type (a name and a code); an array of text is names only; bad items are named."""
    dom = Domains({"X": ["1", "2"]})
    assert dom.codes("X", ["1", 1, np.int64(0)]).tolist() == [0, 1, 0]
    with pytest.raises(DomainError, match="'0' is not a value of X"):
        dom.codes("X", np.array(["0"]))
    with pytest.raises(DomainError, match="item 1: code 5 is out of range"):
        dom.codes("X", np.array([0, 5]))
