"""The web editor's API over a run with continuous factors (world morpho: digit D, thickness T, intensity I):
the factors as intervals, edits under a number, the certificate over the world's declared bins, hostile
values, and a run of no world (no certificate, and why)."""

import pytest

from cfedit.bounds import optimal_bounds
from cfedit.core.query import parse_query
from cfedit.worlds import get_world
from cfedit.worlds.morpho import Binning, binned_table

pytestmark = pytest.mark.slow  # every test here uses the trained run of conftest.py

W = get_world("morpho")
BINNED = Binning().domains


def test_model_describes_continuous_factors_as_intervals(morpho_client):
    m = morpho_client.get("/api/model").json()
    assert m["world"] == "morpho" and m["factors"]["D"] == [str(d) for d in range(10)]  # categorical: as before
    assert m["factors"]["T"] == {"kind": "continuous", "low": 1.5, "high": 6.5, "step": 0.01, "bins": [2.0, 2.5, 3.0, 3.5]}
    assert m["factors"]["I"] == {"kind": "continuous", "low": 64.0, "high": 255.0, "step": 1.0, "bins": [100.0, 150.0, 200.0]}
    assert "declared bins of T, I" in m["p_v"] and m["queries"] == list(W.binned.queries)  # the bounds box's queries are binned
    schema = morpho_client.get("/openapi.json").json()["components"]["schemas"]["EditRequest"]["properties"]["do"]
    assert schema["properties"]["T"] == {"type": "number", "minimum": 1.5, "maximum": 6.5}


def test_examples_are_read_as_numbers(morpho_client):
    for e in morpho_client.get("/api/examples").json()["examples"]:
        assert e["reading"]["D"] in BINNED.values("D")
        assert 1.5 <= float(e["reading"]["T"]) <= 6.5 and 64 <= float(e["reading"]["I"]) <= 255


@pytest.mark.parametrize("value", [4.0, 4, "4"])
def test_edit_under_a_number_is_certified_over_the_bins(morpho_client, value):
    """do(T=4) as a float, an integer or text: every edit has T = 4; the certificate's action is the bin of
    4, its evidence the bins of the factual reading, and each row's bounds are optimal_bounds of the binned
    query it names over the exact binned law."""
    r = morpho_client.post("/api/edit", json={"example": 0, "do": {"T": value}, "k": 3, "seed": 1})
    assert r.status_code == 200, r.text
    res = r.json()
    assert all(e["factors"]["T"] == "4" and 1.5 <= float(e["reading"]["T"]) <= 6.5 for e in res["edits"])
    c = res["certificate"]
    v = res["factual"]["reading"]
    assert c["do"] == {"T": "4"} and c["binned_do"] == {"T": "3.5-6.5"} and "declared bins" in c["binning"]
    assert c["binned_factual"] == {f: BINNED.decode(f, int(W.domains.bin(f, float(v[f])))) for f in ("T", "I")}
    assert set(c["distributions"]["I"]) == set(BINNED.values("I")) and sum(c["distributions"]["I"].values()) == pytest.approx(1)
    assert c["queries"] and {q["factor"] for q in c["queries"]} <= {"D", "I"}
    table = binned_table(False, Binning())
    for q in c["queries"]:
        direct = optimal_bounds(parse_query(q["query"], BINNED), W.graph, BINNED, table)
        assert (q["lower"], q["upper"]) == pytest.approx((direct.lower, direct.upper), abs=1e-9)
        assert q["query"].startswith(f"P({q['factor']}[T=3.5-6.5]=")


def test_labels_given_as_numbers(morpho_client):
    r = morpho_client.post("/api/edit", json={"example": 1, "do": {"I": 220.5, "D": "2"}, "k": 2,
                                               "labels": {"D": "7", "T": 2.7, "I": "160"}})
    assert r.status_code == 200, r.text
    c = r.json()["certificate"]
    assert c["factual"] == {"D": "7", "T": "2.7", "I": "160"} and c["binned_factual"] == {"T": "2.5-3", "I": "150-200"}
    assert c["do"] == {"I": "220.5", "D": "2"} and {q["factor"] for q in c["queries"]} == {"T"}


HOSTILE = [
    ('{"T": "thick"}', 400, "T is continuous: give a number in [1.5, 6.5], got 'thick'"),
    ('{"T": NaN}', 400, "nan is outside the range of T"),
    ('{"T": "nan"}', 400, "nan is outside the range of T"),
    ('{"T": Infinity}', 400, "inf is outside the range of T"),
    ('{"T": -Infinity}', 400, "-inf is outside the range of T"),
    ('{"T": 1e400}', 400, "inf is outside the range of T"),
    ('{"T": 1e308}', 400, "1e+308 is outside the range of T"),
    ('{"T": ' + "9" * 400 + "}", 400, "is outside the range of T"),
    ('{"T": 7}', 400, "7 is outside the range of T: give a number in [1.5, 6.5]"),
    ('{"I": -1.5}', 400, "-1.5 is outside the range of I: give a number in [64, 255]"),
    ('{"D": 2.5}', 400, "do: D is categorical: give one of its value names as text (0, 1, 2"),
    ('{"D": 2}', 400, "do: D is categorical"),
    ('{"D": "2.5"}', 400, "'2.5' is not a value of D"),
    ('{"T": true}', 422, "do.T: give a value name (text), or a number for a continuous factor"),
    ('{"T": null}', 422, "do.T: give a value name (text), or a number for a continuous factor"),
    ('{"T": [4]}', 422, "do.T: give a value name (text), or a number for a continuous factor"),
    ('{"X": 4}', 400, "unknown factor 'X'"),
]


@pytest.mark.parametrize("do, status, message", HOSTILE)
def test_hostile_values_get_one_clear_refusal(morpho_client, do, status, message):
    body = '{"example": 0, "k": 1, "do": ' + do + "}"
    r = morpho_client.post("/api/edit", content=body, headers={"content-type": "application/json"})
    assert r.status_code == status, r.text
    detail = r.json()["detail"]
    assert message in detail and "\n" not in detail and "Traceback" not in detail and len(detail) <= 300


def test_hostile_labels(morpho_client):
    for labels, message in (({"D": "7", "T": 9.0, "I": 120}, "item 0: 9 is outside the range of T"),
                            ({"D": 7, "T": 2.0, "I": 120}, "labels: D is categorical")):
        r = morpho_client.post("/api/edit", json={"example": 0, "k": 1, "do": {"T": 4}, "labels": labels})
        assert r.status_code == 400 and message in r.json()["detail"], r.text


def test_bounds_box_answers_binned_queries(morpho_client):
    text = "P(I[T=3-3.5]=200-255 | D=1, T=2-2.5, I=100-150)"
    b = morpho_client.post("/api/bounds", json={"query": text}).json()
    direct = optimal_bounds(parse_query(text, BINNED), W.graph, BINNED, binned_table(False, Binning()))
    assert (b["lower"], b["upper"]) == pytest.approx((direct.lower, direct.upper)) and b["query"] == text
    r = morpho_client.post("/api/bounds", json={"query": "P(I[T=4]=200-255 | T=1.8)"})
    assert r.status_code == 400 and "'4' is not a value of T; valid values are 1.5-2, 2-2.5" in r.json()["detail"]  # bins, named


def test_a_continuous_run_of_no_world_edits_and_says_why_there_is_no_certificate(tiny_morpho_run):
    from fastapi.testclient import TestClient

    from cfedit.runs import Run
    from cfedit.server.app import ServeConfig, create_app

    client = TestClient(create_app(Run(tiny_morpho_run[0], None, "mine"), config=ServeConfig(n_examples=0, allowed_hosts=("testserver",))))
    m = client.get("/api/model").json()
    assert m["world"] is None and m["queries"] == [] and m["p_v"].startswith("none")
    x = get_world("morpho").ascm("eval", oracle=False)
    from cfedit.server.images import png_base64

    img = png_base64(x.factual(x.units(1, seed=2))[0])
    r = client.post("/api/edit", json={"image": img, "do": {"T": 4.25}, "k": 2})
    assert r.status_code == 200, r.text
    c = r.json()["certificate"]
    assert c["queries"] == [] and "no optimal bounds" in c["note"] and "belongs to no world" in c["note"]
    assert all(e["factors"]["T"] == "4.25" for e in r.json()["edits"])
    r = client.post("/api/bounds", json={"query": "P(I[T=3-3.5]=200-255 | T=2-2.5)"})
    assert r.status_code == 400 and "belongs to no world" in r.json()["detail"]
