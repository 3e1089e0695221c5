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
