"""Image grids read back tile by tile, and typed results written as strict JSON and read back."""

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pytest

from cfedit.core.figures import read_grid, save_grid
from cfedit.core.results import Result
from cfedit.errors import CfeditError


@pytest.mark.parametrize("n, ncol, captions", [(7, 3, True), (4, 8, False), (1, 1, True)])
def test_read_grid_inverts_save_grid(tmp_path, rng, n, ncol, captions):
    images = rng.random((n, 3, 5, 6)).astype(np.float32)
    save_grid(tmp_path / "g.png", images, [f"#{i}" for i in range(n)] if captions else None, ncol=ncol)
    back = read_grid(tmp_path / "g.png", n, (3, 5, 6), ncol=ncol, captions=captions)
    np.testing.assert_allclose(back, images, atol=0.5 / 255 + 1e-6)
    with pytest.raises(AssertionError):  # another layout does not read as these images
        np.testing.assert_allclose(read_grid(tmp_path / "g.png", n, (3, 5, 6), ncol=ncol, scale=2, captions=captions),
                                   images, atol=0.5 / 255 + 1e-6)


@dataclass(frozen=True, kw_only=True)
class _Inner(Result):
    value: float
    n: int


@dataclass(frozen=True, kw_only=True)
class _Outer(Result):
    name: str
    inner: _Inner
    pair: tuple[float, float]
    many: tuple[_Inner, ...] = ()
    by_key: Mapping[str, _Inner] = field(default_factory=dict)
    maybe: float | None = None
    flag: bool | None = None


def test_results_are_strict_json_and_read_back():
    r = _Outer(name="x", inner=_Inner(value=float("nan"), n=0), pair=(0.5, float("inf")),
               many=(_Inner(value=1.0, n=np.int64(3)),), by_key={"a": _Inner(value=np.float64(0.25), n=4)}, flag=np.bool_(True))
    data = r.to_json()
    text = json.dumps(data, allow_nan=False)  # NaN and inf are written as null
    assert data["inner"] == {"value": None, "n": 0} and data["pair"] == [0.5, None] and data["flag"] is True
    back = _Outer.from_json(json.loads(text))
    assert math.isnan(back.inner.value) and back.pair[0] == 0.5 and math.isnan(back.pair[1])
    assert back.many == (_Inner(value=1.0, n=3),) and back.by_key == {"a": _Inner(value=0.25, n=4)} and back.maybe is None
    assert back.to_json() == data


@pytest.mark.parametrize("change, message", [
    (lambda d: d.pop("name"), "_Outer: missing field 'name'"),
    (lambda d: d.update(extra=1), "unknown field"),
    (lambda d: d["inner"].update(n="3"), r"_Outer.inner.n: expected int"),
    (lambda d: d.update(pair=[1.0]), r"_Outer.pair: expected 2 values"),
    (lambda d: d["by_key"].update(b=[1]), r"_Outer.by_key.b: expected an object"),
])
def test_malformed_result_json_is_refused_where_it_is(change, message):
    data = _Outer(name="x", inner=_Inner(value=1.0, n=1), pair=(0.0, 1.0), by_key={"a": _Inner(value=0.5, n=2)}).to_json()
    change(data)
    with pytest.raises(CfeditError, match=message):
        _Outer.from_json(data)
