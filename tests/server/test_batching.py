"""Request batching: the Batcher's gathering and error handling (fast), and the web editor with batching on
(slow: the trained run of conftest.py), whose answers are each request's own."""

import base64
import io
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

from cfedit.server.batching import Batcher


def test_concurrent_items_are_gathered_and_each_gets_its_own_result():
    seen, gate = [], threading.Event()

    def run(items):
        gate.wait(5)  # the first batch waits, so the others queue up behind it
        seen.append(list(items))
        return [i * 10 for i in items]

    b = Batcher(run, window=0.05, max_items=4, workers=1)
    with ThreadPoolExecutor(9) as pool:
        futures = [pool.submit(b.submit, i) for i in range(9)]
        gate.set()
        assert [f.result(timeout=10) for f in futures] == [i * 10 for i in range(9)]
    assert sorted(i for batch in seen for i in batch) == list(range(9)) and max(map(len, seen)) > 1
    assert all(len(batch) <= 4 for batch in seen)


def test_a_bad_item_fails_alone_and_its_batch_mates_still_get_their_results():
    def run(items):
        if any(i < 0 for i in items):
            raise ValueError(f"negative among {items}")
        return [i + 1 for i in items]

    b = Batcher(run, window=0.05, max_items=8, workers=1)
    with ThreadPoolExecutor(4) as pool:
        futures = {i: pool.submit(b.submit, i) for i in (1, -1, 2, 3)}
    assert [futures[i].result() for i in (1, 2, 3)] == [2, 3, 4]
    with pytest.raises(ValueError, match=r"negative among \[-1\]"):
        futures[-1].result()


def test_batcher_settings_are_checked():
    with pytest.raises(ValueError, match="max_items >= 1"):
        Batcher(lambda items: items, window=0.01, max_items=0, workers=1)


# ---------------------------------------------------------------------------------------------- the web editor
def _pixels(b64: str) -> np.ndarray:
    with Image.open(io.BytesIO(base64.b64decode(b64))) as img:
        return np.asarray(img.convert("RGB")).astype(int)


def _without_pixels(res: dict) -> dict:
    return {**res, "factual": {**res["factual"], "png": None}, "edits": [{**e, "png": None} for e in res["edits"]]}


@pytest.mark.slow
def test_batched_requests_answer_what_each_answers_alone(tiny_run):
    """With batching on, sixteen concurrent edits run in batches, and each answer is what the same request
    gets alone (with batching off): the same factors, readings and certificate; the same pixels up to float
    rounding, so a pixel may differ by one level of 255 (a row of a larger matrix product rounds differently)."""
    from fastapi.testclient import TestClient

    from cfedit.runs import Run
    from cfedit.server.app import ServeConfig, create_app

    hosts = ("testserver",)  # the test client's Host

    run = Run.of(tiny_run[0], "backdoor")
    plain = TestClient(create_app(run, config=ServeConfig(n_examples=4, allowed_hosts=hosts)))
    app = create_app(run, config=ServeConfig(n_examples=4, allowed_hosts=hosts, batch_ms=50, batch_max=8))
    batched = TestClient(app)
    bodies = [{"example": i % 4, "do": {"C": "green"} if i % 2 else {"D": "2", "B": "1"}, "k": (1, 4, 8)[i % 3], "seed": i}
              for i in range(16)]
    bodies[5] = {**bodies[5], "labels": {"D": "3", "C": "red", "B": "0"}}
    alone = [plain.post("/api/edit", json=b).json() for b in bodies]
    with ThreadPoolExecutor(16) as pool:
        together = list(pool.map(lambda b: batched.post("/api/edit", json=b).json(), bodies))
    assert max(app.state.batcher.sizes) > 1  # they did run together
    for a, t in zip(alone, together):
        assert _without_pixels(t) == _without_pixels(a)
        assert t["factual"]["png"] == a["factual"]["png"]
        for ea, et in zip(a["edits"], t["edits"]):
            assert np.abs(_pixels(ea["png"]) - _pixels(et["png"])).max() <= 1
    bad = batched.post("/api/edit", json={"example": 0, "do": {"C": "blue"}, "k": 2})
    assert bad.status_code == 400 and "'blue' is not a value of C" in bad.json()["detail"]


def test_serve_config_checks_the_batching_settings():
    from cfedit.errors import CfeditError
    from cfedit.server.app import ServeConfig

    assert ServeConfig().batch_ms == 0  # off unless asked for: a lone request's pixels are reproducible to the bit
    for bad in ({"batch_ms": -1.0}, {"batch_ms": 5000.0}, {"batch_max": 0}):
        with pytest.raises(CfeditError, match="batch_"):
            ServeConfig(**bad)
