"""Adding a world from outside the package, as docs/development/extending.md says: the tiny world module printed on
that page is written to a folder, registered with ``register_world`` and then used through the public API and CLI."""

import re
from pathlib import Path

import numpy as np
import pytest

from cfedit import worlds
from cfedit.errors import CfeditError

PAGE = Path(__file__).resolve().parents[2] / "docs" / "development" / "extending.md"


def _module_text() -> str:
    """The page's code block titled tiny_world.py."""
    found = re.search(r'```python title="tiny_world\.py"\n(.*?)```', PAGE.read_text(), re.S)
    assert found, "docs/development/extending.md lost its tiny_world.py block"
    return found.group(1)


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    """The page's module, importable as tiny_world, registered; unregistered afterwards."""
    (tmp_path / "tiny_world.py").write_text(_module_text())
    monkeypatch.syspath_prepend(str(tmp_path))
    assert worlds.register_world("tiny_world") == ("tiny",)
    yield worlds.get_world("tiny")
    worlds.unregister_world("tiny")
    assert "tiny" not in worlds.world_names()


def test_registered_world_is_found_and_exact(tiny):
    assert "tiny" in worlds.world_names() and worlds.world_names()[:2] == ("backdoor", "frontdoor")
    assert tiny.graph.parents("B") == ("A",) and tiny.graph.spouses("A") == ("B",)
    p = tiny.scm.observational()
    assert p.shape == (2, 2) and abs(p.sum() - 1) < 1e-12
    # P(A=1) = P(S xor U_A = 1) = 0.5; P(B=1 | A=1) = P(S=1 | A=1) + P(S=0 | A=1) * 0.3 = 0.8 + 0.2 * 0.3
    assert abs(p[1].sum() - 0.5) < 1e-12 and abs(p[1, 1] / p[1].sum() - 0.86) < 1e-12


def test_registered_world_renders_counterfactuals_its_oracle_reads(tiny):
    ascm = tiny.ascm("eval")
    units = ascm.units(64, seed=0)
    factual = ascm.factual(units)
    assert factual.shape == (64, 3, 8, 8) and factual.min() >= 0 and factual.max() <= 1
    read = ascm.oracle(factual)
    assert all(np.array_equal(read[k], units.v[k]) for k in ("A", "B"))
    v_cf, cf = ascm.counterfactual(units, tiny.domains.encode({"A": "1"}))
    assert (v_cf["A"] == 1).all() and np.array_equal(ascm.oracle(cf)["B"], v_cf["B"])
    same = units.v["A"] == 1  # the null action for these units: the image is the factual one
    assert np.array_equal(cf[same], factual[same])


def test_cli_shows_and_samples_a_registered_world(tiny, cli, tmp_path):
    code, out, err = cli("world", "show", "tiny")
    assert code == 0, err
    assert "P(B[A=1]=1 | A=0, B=0)" in out and "A := S xor U_A" in out
    code, out, err = cli("world", "list")
    assert code == 0 and "tiny" in out
    code, out, err = cli("world", "counterfactual", "tiny", "--do", "A=1", "-n", "4", "-o", str(tmp_path / "pairs.png"))
    assert code == 0, err
    assert (tmp_path / "pairs.png").stat().st_size > 0


def test_register_refuses_taken_names_and_modules_without_worlds(tiny, tmp_path):
    with pytest.raises(CfeditError, match="already registered"):
        worlds.register_world("tiny_world")
    (tmp_path / "no_worlds.py").write_text("X = 1\n")
    with pytest.raises(CfeditError, match="no WORLDS mapping"):
        worlds.register_world("no_worlds")
    with pytest.raises(CfeditError, match="cannot import"):
        worlds.register_world("no_such_module_here")
