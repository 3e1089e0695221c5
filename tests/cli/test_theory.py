import numpy as np

from cfedit.core.figures import read_grid
from cfedit.scm import Units
from cfedit.worlds import get_world

ATOL = 0.5 / 255 + 1e-6  # the grid's 8 bits


def _strokes(x: np.ndarray) -> np.ndarray:
    """The handwriting whatever its colour: the larger of the red and green channels."""
    return x[:, :2].max(axis=1)


def test_theory_witness_figure(cli, tmp_path):
    """The figure's rows, read back tile by tile: the factual red units; do(C=green) under D -> C, C -> D and
    D <-> C (same P(V, I)): all recoloured, the handwriting kept where the digit is no descendant of C and redrawn
    for some units under C -> D; under M (the world's own counterfactual) and under M' (same law of images, other
    handwriting for every recoloured unit)."""
    code, out, err = cli("theory", "witness", "backdoor", "-n", "8", "-o", str(tmp_path / "w.png"))
    assert code == 0, err
    assert "C -> D" in out and "identical under M and M': True" in out
    a = get_world("backdoor").ascm("eval", oracle=False)
    units = a.units(2000, 0)
    pick = np.flatnonzero(units.v["C"] == 1)[:8]  # the default evidence C=red, first units of the seed
    sub = Units({k: u[pick] for k, u in units.u.items()}, units.u_image[pick], {k: v[pick] for k, v in units.v.items()})
    rows = read_grid(tmp_path / "w.png", 6 * 8, (3, 28, 28), ncol=8).reshape(6, 8, 3, 28, 28)
    factual, (d_c, c_d, bi), m, m2 = rows[0], rows[1:4], rows[4], rows[5]
    np.testing.assert_allclose(factual, a.factual(sub), atol=ATOL)
    np.testing.assert_allclose(m, a.counterfactual(sub, {"C": 0})[1], atol=ATOL)
    for row in (d_c, c_d, bi, m, m2):
        assert (row[:, 0] == 0).all() and (row[:, 1].max(axis=(1, 2)) > 0.5).all()  # green strokes, no red left
    for row in (d_c, bi):  # D is no descendant of C: same handwriting slot, same digit
        np.testing.assert_allclose(_strokes(row), _strokes(factual), atol=ATOL)
    redrawn = np.abs(_strokes(c_d) - _strokes(factual)).max(axis=(1, 2)) > 0.5
    assert 0 < redrawn.sum() < 8  # under C -> D recolouring redraws the digit of some units
    assert (np.abs(_strokes(m2) - _strokes(m)).max(axis=(1, 2)) > 0.5).all()  # M': other handwriting, every unit
