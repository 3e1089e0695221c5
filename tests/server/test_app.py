"""The web editor's API through the framework's test client: happy paths, and every refusal with its 4xx."""

import base64
import io
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cfedit.bounds import optimal_bounds
from cfedit.core.query import parse_query
from cfedit.server import images
from cfedit.worlds import get_world

pytestmark = pytest.mark.slow  # every test here uses the trained run of conftest.py

W = get_world("backdoor")


def encode(arr: np.ndarray, fmt: str = "PNG", mode: str = "RGB") -> str:
    img = Image.fromarray((np.clip(arr, 0, 1).transpose(1, 2, 0) * 255).round().astype(np.uint8), "RGB").convert(mode)
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return base64.b64encode(buf.getvalue()).decode()


def decoded(b64: str) -> np.ndarray:
    with Image.open(io.BytesIO(base64.b64decode(b64))) as img:
        assert img.format == "PNG"
        return np.asarray(img.convert("RGB"))


@pytest.fixture(scope="module")
def unit():
    """A held-out unit's image and true factors."""
    a = W.ascm("eval", oracle=False)
    u = a.units(1, seed=5)
    return a.factual(u)[0], {k: W.domains.decode(k, int(v[0])) for k, v in u.v.items()}


def test_model_describes_the_run(client):
    m = client.get("/api/model").json()
    assert m["graph"] == {"nodes": ["D", "C", "B"], "directed": [["D", "B"], ["C", "B"]], "bidirected": [["D", "C"]]}
    assert m["factors"] == W.domains.as_dict() and m["image_shape"] == [3, 28, 28]
    assert m["world"] == "backdoor" and m["queries"] == list(W.queries) and "exact P(V)" in m["p_v"]
    assert m["training"]["steps"] == 40 and m["training"]["config"]["image"]["kind"] == "vae" and m["limits"]["max_k"] == 64


def test_examples_are_held_out_images_with_readings(client):
    ex = client.get("/api/examples").json()
    assert "evaluation pool" in ex["source"] and [e["id"] for e in ex["examples"]] == [0, 1, 2, 3]
    for e in ex["examples"]:
        assert decoded(e["png"]).shape == (28, 28, 3) and set(e["reading"]) == {"D", "C", "B"}


def test_edit_an_example(client):
    """k edits with the intervened factor set in every one, a reading each, distributions over the k
    readings, and a certificate whose bounds are optimal_bounds of the query it names; same seed, same edits."""
    body = {"example": 1, "do": {"C": "green"}, "k": 6, "seed": 3}
    r = client.post("/api/edit", json=body)
    assert r.status_code == 200, r.text
    res = r.json()
    assert len(res["edits"]) == 6 and all(e["factors"]["C"] == "green" for e in res["edits"])
    assert all(decoded(e["png"]).shape == (28, 28, 3) for e in res["edits"])
    cert = res["certificate"]
    assert cert["do"] == {"C": "green"} and cert["factual"] == res["factual"]["reading"] and cert["k"] == 6
    for f, d in cert["distributions"].items():
        counts = {v: sum(e["reading"][f] == v for e in res["edits"]) / 6 for v in W.domains.values(f)}
        assert d == pytest.approx(counts)
    p_v = W.scm.observational()
    assert cert["queries"]
    for q in cert["queries"]:
        b = optimal_bounds(parse_query(q["query"], W.domains), W.graph, W.domains, p_v)
        assert (q["lower"], q["upper"]) == pytest.approx((b.lower, b.upper)) and q["identified"] == b.identified
        assert q["consistent"] == (q["estimate_upper"] >= q["lower"] - 1e-9 and q["estimate_lower"] <= q["upper"] + 1e-9)
    kept_d = next(q for q in cert["queries"] if q["factor"] == "D" and q["kept"])
    assert kept_d["lower"] == kept_d["upper"] == pytest.approx(1)  # D is no descendant of C
    assert client.post("/api/edit", json=body).json() == res


def test_several_interventions_and_given_labels(client, unit):
    x, v = unit
    r = client.post("/api/edit", json={"image": encode(x), "do": {"C": "green", "B": "1"}, "k": 3, "labels": v})
    assert r.status_code == 200, r.text
    res = r.json()
    assert res["factual"]["reading"] == v and res["factual"]["resized_from"] is None
    assert all(e["factors"]["C"] == "green" and e["factors"]["B"] == "1" for e in res["edits"])
    assert {q["factor"] for q in res["certificate"]["queries"]} == {"D"}


def test_uploads_png_jpeg_gray_and_other_sizes(client, unit):
    """A PNG upload is read like the example; JPEG and grayscale are converted; another size is resized."""
    x, _ = unit
    for data in (encode(x), "data:image/png;base64," + encode(x), encode(x, "JPEG"), encode(x, "PNG", "L"), encode(x, "PNG", "RGBA")):
        r = client.post("/api/edit", json={"image": data, "do": {"B": "0"}, "k": 2})
        assert r.status_code == 200, r.text
    big = np.repeat(np.repeat(x, 3, axis=1), 3, axis=2)  # 84 x 84
    r = client.post("/api/edit", json={"image": encode(big), "do": {"B": "0"}, "k": 2})
    assert r.status_code == 200 and r.json()["factual"]["resized_from"] == [84, 84]


def test_uploads_are_read_upright(client, unit, oriented):
    """A photo stored turned, with the EXIF orientation that a phone writes, is edited as it displays: the
    factual image the server answers with is the upright one, and an upright 28 x 56 photo is resized from 28 x 56."""
    x, _ = unit
    up = (x.transpose(1, 2, 0) * 255).round().astype(np.uint8)
    for o in (3, 6, 8):
        r = client.post("/api/edit", json={"image": base64.b64encode(oriented(up, o, "PNG")).decode(), "do": {"B": "0"}, "k": 1})
        assert r.status_code == 200, r.text
        assert np.array_equal(decoded(r.json()["factual"]["png"]), up), o
    tall = np.repeat(up, 2, axis=0)
    r = client.post("/api/edit", json={"image": base64.b64encode(oriented(tall, 6, "JPEG")).decode(), "do": {"B": "0"}, "k": 1})
    assert r.status_code == 200 and r.json()["factual"]["resized_from"] == [28, 56]


def gif() -> str:
    buf = io.BytesIO()
    Image.new("RGB", (28, 28)).save(buf, format="GIF")
    return base64.b64encode(buf.getvalue()).decode()


def truncated_png() -> str:
    """A PNG cut in half: its header reads, its pixels do not."""
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (28, 28, 3), dtype=np.uint8)).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()[: len(buf.getvalue()) // 2]).decode()


def huge_png() -> str:
    """A PNG of 2049 x 2049 pixels that compresses to a few KB: refused from its header."""
    buf = io.BytesIO()
    Image.new("L", (2049, 2049)).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


@pytest.mark.parametrize("body, status, message", [
    ({"image": base64.b64encode(b"\x89PNG" + bytes(images.MAX_UPLOAD_BYTES)).decode(), "do": {"C": "green"}}, 413, "limit of 5 MiB"),
    ({"image": huge_png(), "do": {"C": "green"}}, 413, "2049x2049 pixels"),
    ({"image": base64.b64encode(b"plain text, not an image").decode(), "do": {"C": "green"}}, 415, "not an image"),
    ({"image": gif(), "do": {"C": "green"}}, 415, "GIF"),
    ({"image": "not base64 at all!", "do": {"C": "green"}}, 400, "base64"),
    ({"image": truncated_png(), "do": {"C": "green"}}, 400, "cannot be decoded"),
    ({"example": 0, "do": {"C": "green"}, "k": 65}, 422, "k: Input should be less than or equal to 64"),
    ({"example": 0, "do": {"C": "green"}, "k": 0}, 422, "k:"),
    ({"example": 0, "do": {"X": "1"}}, 400, "unknown factor 'X'"),
    ({"example": 0, "do": {"C": "blue"}}, 400, "'blue' is not a value of C"),
    ({"example": 0, "do": {}}, 422, "do:"),
    ({"example": 0, "do": {"C": "green"}, "labels": {"D": "7"}}, 400, "labels lack factor"),
    ({"example": 0, "do": {"C": "green"}, "labels": {"D": "7", "C": "red", "B": "9"}}, 400, "'9' is not a value of B"),
    ({"do": {"C": "green"}}, 400, "give either an image"),
    ({"example": 0, "image": "AAAA", "do": {"C": "green"}}, 400, "give either an image"),
    ({"example": 4, "do": {"C": "green"}}, 404, "no example 4"),
    ({"example": "zero", "do": {"C": "green"}}, 422, "example:"),
    *[({"example": 0, "do": {"C": "green"}, key: bad}, 422, f"{key}: Input should be a valid integer")
      for key in ("k", "seed", "example") for bad in (True, 1.0, "8")],
    ({"example": 0, "do": {"C": 1}}, 400, "do: C is categorical: give one of its value names as text (green, red), not the number 1"),
    ({"example": 0, "do": {"C": 0.5}}, 400, "do: C is categorical"),
    ({"example": 0, "do": {"C": "green"}, "labels": {"D": 7, "C": "red", "B": "0"}}, 400, "labels: D is categorical"),
    ({"example": 0, "do": {"C": True}}, 422, "do.C: give a value name (text), or a number for a continuous factor"),
    ({"example": 0, "do": {"C": "g" * 101}}, 422, "do.C: String should have at most 100 characters"),
    ({"image": True, "do": {"C": "green"}}, 422, "image: Input should be a valid string"),
])
def test_edit_refusals(client, body, status, message):
    r = client.post("/api/edit", json=body)
    assert r.status_code == status and r.headers["content-type"] == "application/json", r.text
    assert message in r.json()["detail"]


def test_body_limits_and_malformed_json(client):
    r = client.post("/api/edit", content=b"{" + b" " * (8 << 20), headers={"content-type": "application/json"})
    assert r.status_code == 413 and "request body is larger" in r.json()["detail"]

    def chunks():  # no Content-Length: counted as it arrives
        for _ in range(9):
            yield b" " * (1 << 20)
    r = client.post("/api/edit", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413
    r = client.post("/api/edit", content=b'{"example": 0, "do": ', headers={"content-type": "application/json"})
    assert r.status_code == 422 and "JSON" in r.json()["detail"]


def test_bounds(client):
    text = "P(B[C=green]=1 | D=7, C=red, B=0)"
    b = client.post("/api/bounds", json={"query": text}).json()
    direct = optimal_bounds(parse_query(text, W.domains), W.graph, W.domains, W.scm.observational())
    assert (b["lower"], b["upper"], b["identified"], b["certified"]) == (pytest.approx(direct.lower), pytest.approx(direct.upper),
                                                                         direct.identified, direct.certified)
    assert b["truth"] == pytest.approx(W.scm.probability(parse_query(text, W.domains))) and b["query"] == text
    r = client.post("/api/bounds", json={"query": "P(B[C=gren]=1)"})
    assert r.status_code == 400 and "'gren' is not a value of C" in r.json()["detail"]
    r = client.post("/api/bounds", json={"query": "P(B=1 | B=0)"})
    assert r.status_code == 400 and "two different values" in r.json()["detail"]
    assert client.post("/api/bounds", json={"query": "P(" * 600}).status_code == 422


def test_concurrent_edits_match_sequential_ones(client):
    """Requests share no mutable state: eight edits at once give what each gives alone."""
    bodies = [{"example": i % 4, "do": {"C": "green"} if i % 2 else {"D": "2"}, "k": 4, "seed": i} for i in range(8)]
    alone = [client.post("/api/edit", json=b).json() for b in bodies]
    with ThreadPoolExecutor(8) as pool:
        together = list(pool.map(lambda b: client.post("/api/edit", json=b).json(), bodies))
    assert together == alone


def test_the_page_works_offline(client):
    """The page and its two files come from the package; nothing loads from another host."""
    html = client.get("/").text
    assert "<svg" not in html and 'src="app.js"' in html and 'href="style.css"' in html  # relative: the page also works under /w/NAME/
    for path in ("/", "/app.js", "/style.css"):
        r = client.get(path)
        assert r.status_code == 200
        assert not re.search(r"(src|href)=\"(https?:)?//|import\s.*https?://|url\(https?:", r.text), path
    assert client.get("/app.js").headers["content-type"].startswith("text/javascript")
    assert client.get("/docs").status_code == 200 and "/api/edit" in client.get("/openapi.json").json()["paths"]
    assert client.get("/../pyproject.toml").status_code == 404 and client.get("/static/../app.py").status_code == 404


def test_a_host_that_does_not_name_the_server_is_refused(client):
    """DNS rebinding: a page on attacker.example that points its name at this machine sends that name as Host."""
    assert client.get("/api/model").status_code == 200  # Host: testserver, the name this app was given
    for host in ("attacker.example", "attacker.example:8000", "testserver.attacker.example"):
        r = client.get("/api/model", headers={"host": host})
        assert r.status_code == 400 and "does not answer to the host" in r.json()["detail"], host
    assert client.get("/api/model", headers={"host": "127.0.0.1:8000"}).status_code == 200


def test_the_server_never_unpickles():
    src = Path(__file__).resolve().parents[2] / "src" / "cfedit" / "server"
    for f in src.rglob("*.py"):
        text = f.read_text()
        assert not re.search(r"\bpickle\b|torch\.load|np\.load|allow_pickle", text), f


def test_examples_from_a_folder(tiny_run, tmp_path, unit, cli):
    """--examples DIR: its PNG/JPEG files (sorted, resized to the run's size) are the examples; a folder
    without images, or no folder, is refused."""
    from fastapi.testclient import TestClient

    from cfedit.errors import CfeditError
    from cfedit.runs import Run
    from cfedit.server.app import ServeConfig, create_app

    x, _ = unit
    (tmp_path / "b.png").write_bytes(base64.b64decode(encode(np.repeat(np.repeat(x, 2, axis=1), 2, axis=2))))
    (tmp_path / "a.jpg").write_bytes(base64.b64decode(encode(x, "JPEG")))
    (tmp_path / "notes.txt").write_text("not an example")
    app = create_app(Run(tiny_run[0], None, "test"), tmp_path, ServeConfig(allowed_hosts=("testserver",)))
    ex = TestClient(app).get("/api/examples").json()
    assert ex["source"] == f"folder {tmp_path.name}" and len(ex["examples"]) == 2
    assert all(decoded(e["png"]).shape == (28, 28, 3) for e in ex["examples"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(CfeditError, match="no PNG or JPEG"):
        create_app(Run(tiny_run[0], None, 'test'), tmp_path / "empty")
    code, _, err = cli("serve", str(tiny_run[1]), "--examples", str(tmp_path / "missing"))
    assert code == 2 and "is not a folder" in err


def test_several_runs_are_served_side_by_side_each_under_its_name(tiny_run):
    """create_multi_app (``cfedit serve`` with no run): / leads to the first run, each run's page and API live
    under /w/NAME/ and name every run for the page's selector; the request limits apply in front of all of them."""
    from fastapi.testclient import TestClient

    from cfedit.runs import Run
    from cfedit.server.app import ServeConfig, create_multi_app

    runs = {"one": Run(tiny_run[0], get_world("backdoor"), "one"), "two": Run(tiny_run[0], None, "two")}
    client = TestClient(create_multi_app(runs, ServeConfig(n_examples=2, allowed_hosts=("testserver",))))
    r = client.get("/", follow_redirects=False)
    assert r.status_code in (302, 307) and r.headers["location"] == "/w/one/"
    assert client.get("/w/two", follow_redirects=False).headers["location"] == "/w/two/"
    assert client.get("/api/runs").json() == {"runs": ["one", "two"]}
    page = client.get("/w/two/")
    assert page.status_code == 200 and 'src="app.js"' in page.text and 'id="run-select"' in page.text
    one, two = client.get("/w/one/api/model").json(), client.get("/w/two/api/model").json()
    assert (one["run"], one["runs"], one["world"]) == ("one", ["one", "two"], "backdoor")
    assert (two["run"], two["world"]) == ("two", None)
    r = client.post("/w/one/api/edit", json={"example": 0, "do": {"C": "green"}, "k": 2})
    assert r.status_code == 200 and all(e["factors"]["C"] == "green" for e in r.json()["edits"])
    assert client.get("/w/one/api/model", headers={"Host": "attacker.example"}).status_code == 400
    single = client.get("/w/one/app.js")
    assert single.status_code == 200 and 'api("api/model")' in single.text
