"""The public API against published bounds (Frechet, Tian-Pearl, Balke-Pearl), the worlds, tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cfedit.bounds import Bounds, Contrast, empirical_table, extremal_models, optimal_bounds, pooled_table, read_labels_csv
from cfedit.core.domains import Domains
from cfedit.core.graph import CausalGraph
from cfedit.core.query import parse_query
from cfedit.errors import CfeditError, DataError, QueryError
from cfedit.worlds import world_names

BIN = ("0", "1")


def _dom(**sizes: int) -> Domains:
    return Domains({k: [str(i) for i in range(n)] for k, n in sizes.items()})


def _close(b: Bounds, lo: float, hi: float, tol: float = 1e-6) -> None:
    assert abs(b.lower - lo) < tol and abs(b.upper - hi) < tol, (b, lo, hi)


# ---------------------------------------------------------------------------------- Frechet
@pytest.mark.parametrize("p_y1", [(0.7, 0.4, 0.9), (1.0, 1.0, 0.3), (0.2, 0.0, 0.5), (1.0, 1.0, 1.0), (0.5, 0.5, 0.5)])
def test_frechet_bounds_of_a_one_factor_component(p_y1):
    """X -> Y, X 3-valued: the slots Y_{x} of the one-factor C-component {Y} have fixed marginals
    P(y | x) and any coupling: P(Y_0 = 1, Y_1 = 1, Y_2 = 1) in [max(0, sum p - 2), min p]."""
    g = CausalGraph.parse("X -> Y")
    dom = _dom(X=3, Y=2)
    p_x = np.array([0.2, 0.5, 0.3])
    p = np.stack([p_x * (1 - np.array(p_y1)), p_x * np.array(p_y1)], axis=1)
    b = optimal_bounds(parse_query("P(Y[X=0]=1, Y[X=1]=1, Y[X=2]=1)", dom), g, dom, p)
    _close(b, max(0.0, sum(p_y1) - 2), min(p_y1))
    assert b.certified
    pair = optimal_bounds(parse_query("P(Y[X=0]=1, Y[X=2]=0)", dom), g, dom, p)
    a, c = p_y1[0], 1 - p_y1[2]
    _close(pair, max(0.0, a + c - 1), min(a, c))
    assert pair.identified == (max(0.0, a + c - 1) == min(a, c))


# ---------------------------------------------------------------------------------- Tian & Pearl (2000)
def _xy_table(p_x1: float, p_y1_x0: float, p_y1_x1: float) -> np.ndarray:
    return np.array([[(1 - p_x1) * (1 - p_y1_x0), (1 - p_x1) * p_y1_x0], [p_x1 * (1 - p_y1_x1), p_x1 * p_y1_x1]])


XY_TABLES = [(0.5, 0.4, 0.8), (0.3, 0.1, 0.95), (0.6, 0.7, 0.2), (0.5, 0.0, 1.0), (0.4, 0.5, 0.5), (0.25, 0.0, 0.6)]


@pytest.mark.parametrize("params", XY_TABLES)
def test_tian_pearl_pns_and_pn_under_exogeneity(params):
    """X -> Y (no confounding): max(0, P(y|x) - P(y|x')) <= PNS <= min(P(y|x), P(y'|x')), and
    max(0, 1 - P(y|x')/P(y|x)) <= PN <= min(1, P(y'|x')/P(y|x)) with x = 1, y = 1."""
    g = CausalGraph.parse("X -> Y")
    dom = Domains({"X": BIN, "Y": BIN})
    _, a, b = params  # a = P(y|x'), b = P(y|x)
    p = _xy_table(*params)
    pns = optimal_bounds(parse_query("P(Y[X=1]=1, Y[X=0]=0)", dom), g, dom, p)
    _close(pns, max(0.0, b - a), min(b, 1 - a))
    assert pns.certified and pns.identified == (max(0.0, b - a) == min(b, 1 - a))
    if b > 0:
        pn = optimal_bounds(parse_query("P(Y[X=0]=0 | X=1, Y=1)", dom), g, dom, p)
        _close(pn, max(0.0, 1 - a / b), min(1.0, (1 - a) / b))


@pytest.mark.parametrize("params", XY_TABLES)
def test_tian_pearl_pns_from_observational_data_with_confounding(params):
    """X -> Y, X <-> Y: from P(x, y) alone, 0 <= PNS <= P(x, y) + P(x', y') (Tian & Pearl 2000, the
    observational case without process assumptions); PN = P(Y_{x'} = y' | x, y) is only in [0, 1]."""
    g = CausalGraph.parse("X -> Y; X <-> Y")
    dom = Domains({"X": BIN, "Y": BIN})
    p = _xy_table(*params)
    pns = optimal_bounds(parse_query("P(Y[X=1]=1, Y[X=0]=0)", dom), g, dom, p)
    _close(pns, 0.0, p[1, 1] + p[0, 0])
    if p[1, 1] > 0:
        _close(optimal_bounds(parse_query("P(Y[X=0]=0 | X=1, Y=1)", dom), g, dom, p), 0.0, 1.0)
    # the causal effect P(y_x) is bounded by Manski's interval [P(x, y), P(x, y) + P(x')]
    ey = optimal_bounds(parse_query("P(Y[X=1]=1)", dom), g, dom, p)
    _close(ey, p[1, 1], p[1, 1] + p[0].sum())


# ---------------------------------------------------------------------------------- Balke & Pearl (1997)
def _balke_pearl(P: np.ndarray) -> tuple[float, float]:
    """The closed-form ACE bounds, p(y, x, z) = P(Y = y, X = x | Z = z) with P indexed [z, x, y]."""
    pz = P / P.sum(axis=(1, 2), keepdims=True)

    def p(y: int, x: int, z: int) -> float:
        return pz[z, x, y]

    lo = max(
        p(1, 1, 1) + p(0, 0, 0) - 1,
        p(1, 1, 0) + p(0, 0, 1) - 1,
        p(1, 1, 0) - p(1, 1, 1) - p(1, 0, 1) - p(0, 1, 0) - p(1, 0, 0),
        p(1, 1, 1) - p(1, 1, 0) - p(1, 0, 0) - p(0, 1, 1) - p(1, 0, 1),
        -p(0, 1, 1) - p(1, 0, 1),
        -p(0, 1, 0) - p(1, 0, 0),
        p(0, 0, 1) - p(0, 1, 1) - p(1, 0, 1) - p(0, 1, 0) - p(0, 0, 0),
        p(0, 0, 0) - p(0, 1, 0) - p(1, 0, 0) - p(0, 1, 1) - p(0, 0, 1),
    )
    hi = min(
        1 - p(0, 1, 1) - p(1, 0, 0),
        1 - p(0, 1, 0) - p(1, 0, 1),
        -p(0, 1, 0) + p(0, 1, 1) + p(0, 0, 1) + p(1, 1, 0) + p(0, 0, 0),
        -p(0, 1, 1) + p(1, 1, 1) + p(0, 0, 1) + p(0, 1, 0) + p(0, 0, 0),
        p(1, 1, 1) + p(0, 0, 1),
        p(1, 1, 0) + p(0, 0, 0),
        -p(1, 0, 1) + p(1, 1, 1) + p(0, 0, 1) + p(1, 1, 0) + p(1, 0, 0),
        -p(1, 0, 0) + p(1, 1, 0) + p(0, 0, 0) + p(1, 1, 1) + p(1, 0, 1),
    )
    return lo, hi


def _iv_table(q: np.ndarray, p_z1: float) -> tuple[np.ndarray, float]:
    """P(z, x, y) and the ACE of an IV model: q over (compliance r_X: z -> x) x (response r_Y: x -> y)."""
    P = np.zeros((2, 2, 2))
    ace = 0.0
    for t, w in enumerate(q):
        rx, ry = divmod(t, 4)
        for z, pz in ((0, 1 - p_z1), (1, p_z1)):
            x = (rx >> z) & 1
            P[z, x, (ry >> x) & 1] += pz * w
        ace += w * (((ry >> 1) & 1) - (ry & 1))
    return P, ace


def _iv_cases() -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    cases = [rng.dirichlet(np.full(16, 0.4)) for _ in range(5)]
    perfect = np.zeros(16)
    perfect[2 * 4 + 2] = 1.0  # complier (x = z), y = x: ACE = 1 exactly
    defier = np.zeros(16)
    defier[1 * 4 + 1] = 1.0  # defier (x = 1 - z), y = 1 - x: ACE = -1 exactly
    sparse = np.zeros(16)
    sparse[[0, 5, 10, 15]] = (0.1, 0.2, 0.3, 0.4)
    return cases + [perfect, defier, sparse]


@pytest.mark.parametrize("q", _iv_cases())
def test_balke_pearl_iv_bounds_on_the_ace(q):
    g = CausalGraph.parse("Z -> X; X -> Y; X <-> Y")
    dom = Domains({"Z": BIN, "X": BIN, "Y": BIN})
    P, truth = _iv_table(q, 0.4)
    ace = Contrast(((1.0, parse_query("P(Y[X=1]=1)", dom)), (-1.0, parse_query("P(Y[X=0]=1)", dom))))
    b = optimal_bounds(ace, g, dom, P)
    lo, hi = _balke_pearl(P)
    _close(b, lo, hi)
    assert b.contains(truth) and b.certified


def test_balke_pearl_bounds_attained_at_the_extremes():
    g = CausalGraph.parse("Z -> X; X -> Y; X <-> Y")
    dom = Domains({"Z": BIN, "X": BIN, "Y": BIN})
    ace = Contrast(((1.0, parse_query("P(Y[X=1]=1)", dom)), (-1.0, parse_query("P(Y[X=0]=1)", dom))))
    for q, value in ((_iv_cases()[-3], 1.0), (_iv_cases()[-2], -1.0)):
        b = optimal_bounds(ace, g, dom, _iv_table(q, 0.5)[0])
        assert b.identified and abs(b.value - value) < 1e-9
    half = np.zeros(16)
    half[[1 * 4 + 1, 2 * 4 + 1]] = (0.5, 0.5)  # y = 1 - x for everyone, x independent of z
    b = optimal_bounds(ace, g, dom, _iv_table(half, 0.5)[0])
    _close(b, *_balke_pearl(_iv_table(half, 0.5)[0]))
    assert b.lower == -1.0


# ---------------------------------------------------------------------------------- the worlds
# (world, query) -> expected bounds, from the world's documented mechanisms: t(C, large) the bar table,
# P(C = red | small) = 0.3, P(C = red | large) = 0.8 in the Frontdoor world. None: not identified, no
# closed form checked here (only the truth inside).
_EXPECTED = {
    ("backdoor", "P(B[C=green]=1 | D=7, C=red)"): (0.6, 0.6),  # P(b | d, c'): identified
    ("backdoor", "P(B[C=green]=1 | D=7, C=red, B=0)"): (0.4 / 0.8, 0.6 / 0.8),  # Frechet on B's two slots
    ("backdoor", "P(D[C=green]=7 | D=7, C=red)"): (1.0, 1.0),  # D is not a descendant of C
    ("backdoor", "P(B[D=2]=1 | D=7, C=red)"): (0.5, 0.5),
    ("backdoor", "P(B[D=2]=1 | D=7, C=red, B=0)"): (0.3 / 0.8, 0.5 / 0.8),
    ("backdoor", "P(C[D=2]=red | D=7, C=red)"): (1.0, 1.0),
    ("backdoor", "P(D[B=1]=7, C[B=1]=red | D=7, C=red, B=0)"): (1.0, 1.0),
    ("frontdoor", "P(B[C=green]=1 | D=7, C=red)"): (0.6, 0.6),  # B's slot at green given R_D = 7
    ("frontdoor", "P(B[C=green]=1 | D=7, C=red, B=0)"): (0.4 / 0.8, 0.6 / 0.8),
    ("frontdoor", "P(D[C=green]=7 | D=7, C=red)"): (1.0, 1.0),
    ("frontdoor", "P(C[D=2]=red | D=7)"): (0.3, 0.3),  # R_C independent of R_D
    ("frontdoor", "P(C[D=2]=red | D=7, C=red)"): (0.1 / 0.8, 0.3 / 0.8),  # Frechet on C's two slots
    ("frontdoor", "P(B[D=2]=1 | D=7, C=red)"): None,
    ("frontdoor", "P(D[B=1]=7, C[B=1]=red | D=7, C=red, B=0)"): (1.0, 1.0),
}
_IDENTIFIED = {k: v is not None and v[0] == v[1] for k, v in _EXPECTED.items()}
_IDENTIFIED[("frontdoor", "P(B[D=2]=1 | D=7, C=red)")] = False


@pytest.mark.parametrize("name", world_names())
def test_world_queries_truth_inside_and_classification(name):
    from cfedit.worlds import get_world

    w = get_world(name)
    p = w.scm.observational()
    kinds = set()
    for text in w.queries:
        q = parse_query(text, w.domains)
        b = optimal_bounds(q, w.graph, w.domains, p)
        truth = w.scm.probability(q)
        assert b.contains(truth, 1e-9), (text, b, truth)
        kinds.add(b.identified)
        if (name, text) in _EXPECTED:
            assert b.identified == _IDENTIFIED[(name, text)], (text, b)
            if _EXPECTED[(name, text)] is not None:
                _close(b, *_EXPECTED[(name, text)])
        assert b.certified
        if not b.identified:  # two explicit SCMs with the world's P(V) attain the two ends
            for m, v in zip(extremal_models(q, w.graph, w.domains, p), (b.lower, b.upper)):
                assert np.abs(m.observational() - p).max() < 1e-9 and abs(m.probability(q) - v) < 1e-6
        outcome_vars = {a.var for a in q.outcome}
        do_vars = {x for a in q.outcome for x, _ in a.do}
        if not outcome_vars & w.graph.descendants(do_vars) and all(
            any(g.var == a.var and g.value == a.value and not g.do for g in q.given) for a in q.outcome
        ):
            assert (b.lower, b.upper) == (1.0, 1.0), text  # non-descendants kept: exactly [1, 1]
    assert kinds == {True, False}, "each world documents identified and non-identified queries"


# ---------------------------------------------------------------------------------- empirical tables
def test_empirical_table_from_csv_names_and_python_codes(tmp_path: Path):
    dom = Domains({"D": [str(d) for d in range(10)], "C": ["green", "red"], "B": BIN})
    f = tmp_path / "labels.csv"
    f.write_text("file,D,C,B\na.png,7,red,0\nb.png,7,red,0\nc.png,2,green,1\nd.png, 2 ,green,1\n")
    codes = read_labels_csv(f, dom)
    assert codes["C"].tolist() == [1, 1, 0, 0]
    p = empirical_table(codes, dom)
    assert p.shape == dom.shape and p[7, 1, 0] == 0.5 and p[2, 0, 1] == 0.5
    rows = [{"D": "7", "C": "red", "B": 0}, {"D": 2, "C": "green", "B": "1"}]  # Python ints are codes
    assert empirical_table(rows, dom)[7, 1, 0] == 0.5


def test_text_is_never_read_as_a_code(tmp_path: Path):
    """A CSV cell, like any text, is a value name; a code written as text is refused."""
    dom = Domains({"D": [str(d) for d in range(10)], "C": ["green", "red"], "B": BIN})
    f = tmp_path / "labels.csv"
    f.write_text("D,C,B\n7,red,0\n7,1,0\n")
    with pytest.raises(DataError, match="line 3: '1' is not a value of C; valid values are green, red"):
        read_labels_csv(f, dom)
    with pytest.raises(DataError, match="'0' is not a value of C"):
        empirical_table({"D": ["7"], "C": ["0"], "B": ["1"]}, dom)
    # a list keeps each item's type: the code 1 next to a name is not turned into the text "1"
    assert empirical_table({"D": [7, "7"], "C": [1, "red"], "B": [0, "0"]}, dom)[7, 1, 0] == 1.0


def test_tables_beyond_the_size_limit_are_refused_before_allocation():
    """40 binary factors would be an 8 TiB table; refused with its size."""
    dom = Domains({f"X{i}": BIN for i in range(40)})
    with pytest.raises(DataError, match=r"1\.1e\+12 cells .*limit of 1e\+07"):
        empirical_table({f"X{i}": np.zeros(3, np.int64) for i in range(40)}, dom)


def test_bounds_from_an_empirical_table_of_the_backdoor_world():
    from cfedit.worlds import get_world

    w = get_world("backdoor")
    p = empirical_table(w.scm.sample(20000, seed=1), w.domains)
    q = parse_query("P(B[C=green]=1 | D=7, C=red, B=0)", w.domains)
    b = optimal_bounds(q, w.graph, w.domains, p)
    exact = optimal_bounds(q, w.graph, w.domains, w.scm.observational())
    assert abs(b.lower - exact.lower) < 0.05 and abs(b.upper - exact.upper) < 0.05  # n = 20,000: se < 0.02


@pytest.mark.parametrize(
    "text,match",
    [
        ("D,C\n7,red\n", "lacks column.*B"),
        ("D,C,B\n7,blue,0\n", "line 2.*'blue' is not a value of C"),
        ("D,C,B\n7,red,0\n11,red,0\n", "line 3.*'11' is not a value of D"),
        ("D,C,B\n", "no rows"),
        ("", "empty"),
    ],
)
def test_labels_csv_errors(tmp_path: Path, text: str, match: str):
    dom = Domains({"D": [str(d) for d in range(10)], "C": ["green", "red"], "B": BIN})
    f = tmp_path / "labels.csv"
    f.write_text(text)
    with pytest.raises(DataError, match=match):
        read_labels_csv(f, dom)


def test_labels_and_table_errors(tmp_path: Path):
    dom = Domains({"A": BIN, "B": BIN})
    with pytest.raises(DataError, match="does not exist"):
        read_labels_csv(tmp_path / "none.csv", dom)
    with pytest.raises(DataError, match="no data for factor"):
        empirical_table({"A": [0, 1]}, dom)
    with pytest.raises(DataError, match="different numbers"):
        empirical_table({"A": [0, 1], "B": [1]}, dom)
    with pytest.raises(DataError, match="out of range"):
        empirical_table({"A": np.array([0, 2]), "B": np.array([0, 1])}, dom)
    with pytest.raises(DataError, match="no value for factor"):
        empirical_table([{"A": 0}], dom)


def test_bad_tables_raise_data_errors(backdoorish):
    g, dom, p = backdoorish
    with pytest.raises(DataError, match="shape"):
        optimal_bounds("P(B=1)", g, dom, p.reshape(-1))
    with pytest.raises(DataError, match="sums to"):
        optimal_bounds("P(B=1)", g, dom, p * 2)
    with pytest.raises(DataError, match="non-negative"):
        optimal_bounds("P(B=1)", g, dom, p - 1)
    # Z -> X -> Y, X <-> Y: P(X=0, Y=0 | Z=0) + P(X=0, Y=1 | Z=1) = 2 > 1 breaks the instrumental inequality
    g3 = CausalGraph.parse("Z -> X; X -> Y; X <-> Y")
    dom3 = Domains({"Z": BIN, "X": BIN, "Y": BIN})
    p3 = np.zeros((2, 2, 2))
    p3[0, 0, 0], p3[1, 0, 1] = 0.5, 0.5
    with pytest.raises(DataError, match="not compatible with the graph"):
        optimal_bounds("P(Y[X=1]=1)", g3, dom3, p3)
    assert issubclass(DataError, CfeditError) and issubclass(QueryError, CfeditError)


def test_check_compatible_refuses_what_the_bounds_refuse():
    """Without a query: the same refusal as optimal_bounds' for a table breaking the instrumental inequality,
    and none for a table an IV model produces (its compatible neighbour)."""
    from cfedit.bounds import check_compatible

    g = CausalGraph.parse("Z -> X; X -> Y; X <-> Y")
    dom = Domains({"Z": BIN, "X": BIN, "Y": BIN})
    bad = np.zeros((2, 2, 2))
    bad[0, 0, 0], bad[1, 0, 1] = 0.5, 0.5
    with pytest.raises(DataError, match="not compatible with the graph.*instrumental"):
        check_compatible(g, dom, bad)
    for q in _iv_cases():
        check_compatible(g, dom, _iv_table(q, 0.4)[0])
    check_compatible(CausalGraph.parse("Z -> X; X -> Y"), dom, bad)  # no bidirected edge: any table is some model's



# ---------------------------------------------------------------------------------- progress
def test_progress_gives_the_size_before_solving_and_is_silent_for_small_queries(monkeypatch):
    """``log`` hears a large query's size (branches and response types, then the programme's columns and
    rows) before any programme is solved, then one line per solving step; a small query never calls it.
    X -> Y with a 14-valued X: P(Y_0 = 1, ..., Y_13 = 1) reads 14 slots jointly (2^14 response types)
    and has the Frechet bounds."""
    from cfedit.bounds import optimal

    lines: list[str] = []
    block = optimal.block_lfp

    def spy(*args):
        lines.append("<solve>")
        return block(*args)

    monkeypatch.setattr(optimal, "block_lfp", spy)
    k = 14
    g = CausalGraph.parse("X -> Y")
    dom = _dom(X=k, Y=2)
    p_y1 = 1 - np.random.default_rng(0).uniform(0.2, 0.9, k) / k
    p = np.stack([(1 - p_y1) / k, p_y1 / k], axis=1)
    q = parse_query("P(" + ", ".join(f"Y[X={i}]=1" for i in range(k)) + ")", dom)
    b = optimal_bounds(q, g, dom, p, log=lines.append)
    _close(b, max(0.0, p_y1.sum() - (k - 1)), p_y1.min())
    assert lines[0].startswith("bounds: 2 branches; response types per component read: {Y} 16,384"), lines
    assert lines[1].startswith("bounds: 1 of 1 component laws free; programme of 16,385 columns"), lines
    assert lines[2] == "<solve>" and lines.count("<solve>") == 2
    steps = [ln for ln in lines[2:] if ln != "<solve>"]
    assert [s.split(" (")[0].rsplit(" ", 1)[0] for s in steps] == ["lower bound", "upper bound"]
    assert all(s.endswith(" s)") for s in steps)

    from cfedit.worlds import get_world

    w = get_world("backdoor")
    quiet: list[str] = []
    optimal_bounds("P(B[C=green]=1 | D=7, C=red, B=0)", w.graph, w.domains, w.scm.observational(), log=quiet.append)
    assert quiet == []


# ---------------------------------------------------------------------------------- pooled table
def test_pooled_table_is_p_v_for_tables_the_diagram_produces():
    """prod_i P(v_i | K_i) is P(V) for the worlds' tables, and for a table G cannot produce (X -> Y -> Z
    read from data with a direct X -> Z) the chain's P(x) P(y | x) P(z | y), away from P(V)."""
    from cfedit.worlds import get_world

    for name in world_names():
        w = get_world(name)
        p = w.scm.observational()
        np.testing.assert_allclose(pooled_table(w.graph, w.domains, p), p, atol=1e-12)
    chain, dom = CausalGraph.parse("X -> Y; Y -> Z"), _dom(X=2, Y=2, Z=3)
    rng = np.random.default_rng(0)
    p_x, p_y, p_z = rng.dirichlet(np.ones(2)), rng.dirichlet(np.ones(2), 2), rng.dirichlet(np.ones(3), 2)
    p = p_x[:, None, None] * p_y[:, :, None] * p_z[None]
    np.testing.assert_allclose(pooled_table(chain, dom, p), p, atol=1e-12)
    q = p_x[:, None, None] * p_y[:, :, None] * rng.dirichlet(np.ones(3), (2, 2))  # Z depends on X too
    want = q.sum(axis=(1, 2))[:, None, None] * (q.sum(2) / q.sum(axis=(1, 2))[:, None])[:, :, None] \
        * (q.sum(0) / q.sum(axis=(0, 2))[:, None])[None]
    np.testing.assert_allclose(pooled_table(chain, dom, q), want, atol=1e-12)
    assert np.abs(pooled_table(chain, dom, q) - q).sum() > 0.05
    with pytest.raises(DataError):
        pooled_table(chain, dom, q[:, :, :2])
