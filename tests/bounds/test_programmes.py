"""The programmes: exact against an independent full programme (brute force), the multilinear path."""

from __future__ import annotations

import itertools
import sys

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.optimize import linprog

from cfedit.bounds import Contrast, extremal_models, optimal_bounds
from cfedit.core.domains import Domains
from cfedit.core.graph import CausalGraph
from cfedit.core.query import Atom, Query, parse_query
from cfedit.errors import QueryError
from cfedit.scm import SCM, Exogenous

BIN = ("0", "1")


# ---------------------------------------------------------------------------------- brute force
def _random_scm(seed: int, n: int) -> SCM:
    """Binary factors; each possible edge i -> j with prob. 0.5 (at most 2 parents), each pair bidirected
    with prob. 0.4 (one 3-state exogenous per bidirected edge); own noise flips with prob. 0.1-0.3,
    so P(V) > 0 everywhere."""
    rng = np.random.default_rng(seed)
    names = [f"V{i}" for i in range(n)]
    directed = [(names[i], names[j]) for j in range(n) for i in range(j) if rng.random() < 0.5]
    keep: list[tuple[str, str]] = []
    for a, b in directed:
        if sum(1 for e in keep if e[1] == b) < 2:
            keep.append((a, b))
    bidirected = [(names[i], names[j]) for i, j in itertools.combinations(range(n), 2) if rng.random() < 0.4]
    graph = CausalGraph(tuple(names), tuple(keep), tuple(bidirected))
    exo = [Exogenous(f"U{a}{b}", tuple(rng.dirichlet(np.ones(3))), (a, b)) for a, b in graph.bidirected]
    exo += [Exogenous(f"N{v}", tuple(rng.dirichlet(np.ones(3))), (v,)) for v in names]
    exo += [Exogenous.bernoulli(f"F{v}", float(rng.uniform(0.1, 0.3)), (v,)) for v in names]
    mech = {}
    for v in names:
        reads = [e for e in exo if v in e.readers and not e.name.startswith("F")]
        pa = graph.parents(v)
        table = rng.integers(0, 2, size=[2] * len(pa) + [e.size for e in reads])

        def f(par, u, _pa=pa, _reads=tuple(e.name for e in reads), _t=table, _v=v):
            idx = tuple(np.asarray(par[p]) for p in _pa) + tuple(np.asarray(u[r]) for r in _reads)
            return _t[idx] ^ u[f"F{_v}"]

        mech[v] = f
    return SCM(graph, Domains({v: BIN for v in names}), exo, mech)


def _random_queries(scm: SCM, seed: int) -> list[Query]:
    rng = np.random.default_rng(seed)
    names = scm.graph.nodes
    unit = scm.sample(1, seed=seed)
    out = []
    for _ in range(3):
        x = str(rng.choice(names))
        xv = int(rng.integers(2))
        others = [v for v in names if v != x]
        w = str(rng.choice(others))
        ev = [str(v) for v in rng.choice(names, size=int(rng.integers(0, 3)), replace=False)]
        out.append(Query((Atom(w, int(rng.integers(2)), ((x, xv),)),), tuple(Atom(v, int(unit[v][0])) for v in ev)))
    a, b = rng.choice(names, size=2, replace=False)
    out.append(Query((Atom(str(b), 1, ((str(a), 1),)), Atom(str(b), 0, ((str(a), 0),)))))  # a PNS
    out.append(Query((Atom(str(b), 1, ((str(a), 1),)),), (Atom(str(b), 0, ((str(a), 0),)),)))  # ctf evidence
    return out


class _FullTables:
    """An independent canonical programme: full response functions of every factor (no reduction),
    c-factor constraints Q[C](v_C; pa(C)) from Tian's formula (P(V) > 0), and the joint law over all
    components relaxed to conditionals that meet each component's constraints (exact when at most one
    component is free, an outer bound otherwise)."""

    def __init__(self, graph: CausalGraph, p: np.ndarray):
        self.g, self.p, self.names = graph, p, graph.nodes
        order = graph.topological_order()
        self.order = order
        pa = {v: graph.parents(v) for v in self.names}
        # full response functions: r_v is a tuple over the 2^|pa| parent configurations
        self.funcs = {v: list(itertools.product((0, 1), repeat=2 ** len(pa[v]))) for v in self.names}
        self.comps = graph.c_components()
        comp_types = [list(itertools.product(*(range(len(self.funcs[v])) for v in c))) for c in self.comps]
        self.sizes = [len(t) for t in comp_types]
        N = int(np.prod(self.sizes))
        grid = np.indices(self.sizes).reshape(len(self.sizes), -1)
        self.r = {}  # factor -> (N, 2^|pa|) its response function in every joint type
        for ci, c in enumerate(self.comps):
            tt = np.asarray(comp_types[ci])[grid[ci]]
            for k, v in enumerate(c):
                self.r[v] = np.asarray(self.funcs[v])[tt[:, k]]
        self.N, self.pa = N, pa
        # c-factor constraints, one block per component, then RLT rows for every other joint index
        rows = []
        for ci, c in enumerate(self.comps):
            ext = sorted({q for v in c for q in pa[v]} - set(c), key=order.index)
            seen = set()
            for full in itertools.product((0, 1), repeat=len(self.names)):
                vv = dict(zip(self.names, full))
                key = tuple(vv[v] for v in c) + tuple(vv[w] for w in ext)
                if key in seen:
                    continue
                seen.add(key)
                qc = 1.0
                for v in c:
                    prefix = order[: order.index(v)]
                    num = self._marg({**{w: vv[w] for w in prefix}, v: vv[v]})
                    qc *= num / self._marg({w: vv[w] for w in prefix})
                vals = self._solve_comp(c, {w: vv[w] for w in ext}, do={})
                event = np.all([vals[v] == vv[v] for v in c], axis=0).astype(float)
                rows.append((ci, event, qc))
        self.rows = rows

    def _marg(self, assign: dict) -> float:
        idx = tuple(assign.get(v, slice(None)) for v in self.names)
        return float(self.p[idx].sum())

    def _solve_comp(self, comp, ext: dict, do: dict) -> dict:
        vals = dict(ext)
        for v in self.order:
            if v in comp:
                vals[v] = self._apply(v, vals, do)
        return vals

    def _apply(self, v: str, vals: dict, do: dict) -> np.ndarray:
        if v in do:
            return np.full(self.N, do[v])
        idx = np.zeros(self.N, dtype=np.int64)
        for q in self.pa[v]:
            idx = idx * 2 + np.asarray(vals[q])
        return self.r[v][np.arange(self.N), idx]

    def event(self, atoms) -> np.ndarray:
        out = np.ones(self.N, dtype=bool)
        for do in dict.fromkeys(a.do for a in atoms):
            vals: dict = {}
            for v in self.order:
                vals[v] = self._apply(v, vals, dict(do))
            for a in atoms:
                if a.do == do:
                    out &= vals[a.var] == a.value
        return out.astype(float)

    def bounds(self, q: Query) -> tuple[float, float]:
        f = self.event((*q.outcome, *q.given))
        g = self.event(q.given)
        # (event_row - qc) y = 0 on every fibre of the other components (RLT), 1.y = t, g.y = 1
        blocks = []
        for ci, ev, qc in self.rows:
            grid = (ev - qc).reshape(self.sizes)
            # for every index of the other components: sum over component ci
            moved = np.moveaxis(grid, ci, -1)
            other = int(np.prod(moved.shape[:-1]))
            cols = np.moveaxis(np.arange(self.N).reshape(self.sizes), ci, -1).reshape(other, -1)
            data = moved.reshape(other, -1)
            r = np.repeat(np.arange(other), data.shape[1])
            blocks.append(sp.csr_matrix((data.reshape(-1), (r, cols.reshape(-1))), shape=(other, self.N)))
        H = sp.vstack(blocks)
        A = sp.vstack([
            sp.hstack([H, sp.csr_matrix((H.shape[0], 1))]),
            sp.csr_matrix(np.concatenate([np.ones(self.N), [-1.0]])[None]),
            sp.csr_matrix(np.concatenate([g, [0.0]])[None]),
        ])
        b = np.concatenate([np.zeros(H.shape[0] + 1), [1.0]])
        out = []
        for sense in (1.0, -1.0):
            res = linprog(sense * np.concatenate([f, [0.0]]), A_eq=A, b_eq=b, bounds=(0, None), method="highs")
            assert res.status == 0, res.message
            out.append(sense * res.fun)
        return out[0], out[1]


def _brute_cases():
    return [(seed, 3 if seed % 3 else 4) for seed in range(18)]


@pytest.mark.parametrize("seed,n", _brute_cases())
def test_bounds_on_random_scms_against_truth_brute_force_and_witnesses(seed, n):
    scm = _random_scm(seed, n)
    p = scm.observational()
    brute = _FullTables(scm.graph, p)
    for q in _random_queries(scm, seed):
        truth = scm.probability(q) if _positive(scm, q) else None
        try:
            b = optimal_bounds(q, scm.graph, scm.domains, p)
        except QueryError as e:
            assert truth is None, f"{q}: {e}"
            continue
        if truth is not None:
            assert b.contains(truth, 1e-7), (scm.graph, q, b, truth)
        lo, hi = brute.bounds(q)
        if b.method in ("identified", "lp"):  # exact in the canonical class: equals the full programme
            assert abs(b.lower - lo) < 1e-6 and abs(b.upper - hi) < 1e-6, (scm.graph, q, b, (lo, hi))
            assert b.attained == (b.lower, b.upper)
        else:  # multilinear: attained values are real models, so inside the independent relaxation
            assert lo - 1e-7 <= b.attained[0] <= b.attained[1] <= hi + 1e-7
            assert b.lower <= b.attained[0] + 1e-9 and b.attained[1] <= b.upper + 1e-9
        # explicit witnesses: reproduce P(V) and attain the values
        m_lo, m_hi = extremal_models(q, scm.graph, scm.domains, p)
        for m, v in ((m_lo, b.attained[0]), (m_hi, b.attained[1])):
            assert np.abs(m.observational() - p).max() < 1e-8
            assert abs(m.probability(q) - v) < 1e-6


def _positive(scm: SCM, q: Query) -> bool:
    try:
        scm.probability(q)
        return True
    except QueryError:
        return False


def test_multilinear_query_across_two_free_components_is_certified(frontdoor: SCM):
    """Frontdoor-like D -> C -> B, D <-> B: P(B_{D=1} = 1, C_{D=1} = 1 | D = 0, C = 0, B = 0) multiplies
    a free C-slot coupling and a free (D, B) coupling; the RLT bound meets the attained value."""
    g = CausalGraph.parse("D -> C; C -> B; D <-> B")
    dom = Domains({"D": BIN, "C": BIN, "B": BIN})
    scm = frontdoor
    p = scm.observational()
    q = parse_query("P(B[D=1]=1, C[D=1]=1 | D=0, C=0, B=0)", dom)
    b = optimal_bounds(q, g, dom, p)
    assert b.method == "multilinear" and b.certified
    assert b.contains(scm.probability(q))
    assert b.attained == pytest.approx((b.lower, b.upper), abs=1e-6)


def test_certified_only_when_the_canonical_class_is_the_scm_class():
    """A <-> B <-> C without A <-> C: one canonical law over (r_A, r_B, r_C) may couple r_A and r_C,
    which no SCM over G can; the bounds stay valid but are not certified. With A <-> C they are."""
    dom = Domains({"A": BIN, "B": BIN, "C": BIN})
    q = parse_query("P(C[A=1]=1, C[A=0]=0)", dom)
    p = np.random.default_rng(5).dirichlet(np.ones(8)).reshape(2, 2, 2)
    chain = optimal_bounds(q, CausalGraph.parse("A -> C; A <-> B; B <-> C"), dom, p)
    clique = optimal_bounds(q, CausalGraph.parse("A -> C; A <-> B; B <-> C; A <-> C"), dom, p)
    assert not chain.identified and not chain.certified and chain.attained == (chain.lower, chain.upper)
    assert clique.certified and (clique.lower, clique.upper) == pytest.approx((chain.lower, chain.upper))


def _two_clusters(k: int) -> tuple[Contrast, CausalGraph, Domains, np.ndarray, tuple[float, float]]:
    """A multilinear query with one component of 2^k response types, and its bounds in closed form.

    D -> C -> B, D <-> B beside X -> Y (X k-valued), and the contrast
    P(D=0, C=0, B=0, C_{D=1}=1, B_{D=1}=1) + P(Y_{X=0}=1, ..., Y_{X=k-1}=1). The first term is
    q_C(r_C(0) = 0, r_C(1) = 1) P(D=0) q_DB(r_B(0) = 0, r_B(1) = 1 | r_D = 0): a product of two free couplings
    (a multilinear cluster) whose factors range over the Frechet intervals of (a, b) and (alpha, beta),
    so its range is the product of the intervals. The second term reads the k slots of Y's one-factor
    component together (2^k types, one cluster): the Frechet interval [max(0, sum p - (k - 1)), min p].
    The terms share no component, so the ranges add."""
    rng = np.random.default_rng(k)
    g = CausalGraph.parse("D -> C; C -> B; D <-> B; X -> Y")
    dom = Domains({"D": BIN, "C": BIN, "B": BIN, "X": [str(i) for i in range(k)], "Y": BIN})
    p_dcb = rng.dirichlet(np.ones(8)).reshape(2, 2, 2)
    p_x = rng.dirichlet(np.ones(k))
    p_y1 = 1 - rng.uniform(0.2, 0.9, k) / k  # P(Y = 1 | x): sum of the complements below 1
    p_xy = np.stack([p_x * (1 - p_y1), p_x * p_y1], axis=1)
    p = p_dcb[:, :, :, None, None] * p_xy[None, None, None]
    every = ", ".join(f"Y[X={i}]=1" for i in range(k))
    q = Contrast(((1.0, parse_query("P(B[D=1]=1, C[D=1]=1, D=0, C=0, B=0)", dom)),
                  (1.0, parse_query(f"P({every})", dom))))
    p_d = p_dcb.sum(axis=(1, 2))
    p_c_d = p_dcb.sum(axis=2) / p_d[:, None]
    a, b = p_c_d[0, 0], p_c_d[1, 1]  # P(C=0 | D=0), P(C=1 | D=1)
    alpha, beta = p_dcb[0, 0, 0] / p_dcb[0, 0].sum(), p_dcb[0, 1, 1] / p_dcb[0, 1].sum()  # P(B=0 | 0, 0), P(B=1 | 0, 1)
    lo = p_d[0] * max(0.0, a + b - 1) * max(0.0, alpha + beta - 1) + max(0.0, p_y1.sum() - (k - 1))
    hi = p_d[0] * min(a, b) * min(alpha, beta) + p_y1.min()
    return q, g, dom, p, (lo, hi)


def test_multilinear_query_with_a_component_of_32768_response_types(monkeypatch):
    """A component of 2^15 response types enters the sparse Charnes-Cooper programme (no dense n x n
    matrix: 8 GiB at this size); the product cluster is exact (its range is the product of the
    Frechet intervals), so the bounds meet the closed form and are attained without alternation."""
    from cfedit.bounds import programmes

    columns: list[int] = []
    lp = programmes.solve_lp

    def spy(cost, A, b):
        columns.append(A.shape[1])
        return lp(cost, A, b)

    monkeypatch.setattr(programmes, "solve_lp", spy)
    q, g, dom, p, (lo, hi) = _two_clusters(15)
    rss_before = _peak_rss_mib()
    b = optimal_bounds(q, g, dom, p)
    assert max(columns) > 2**15  # the large component's law is a block of the programme
    assert b.method == "multilinear" and b.certified
    assert (b.lower, b.upper) == pytest.approx((lo, hi), abs=1e-6)
    assert b.attained == pytest.approx((lo, hi), abs=1e-6)
    if sys.platform == "linux":  # the process's peak grew by far less than one dense n x n matrix
        assert _peak_rss_mib() - rss_before < 2048, f"peak RSS grew {_peak_rss_mib() - rss_before:.0f} MiB"


def test_alternation_solves_a_component_of_32768_response_types_sparsely(monkeypatch):
    """A cluster that is not one product (two terms with different events of both components) needs the
    RLT relaxation and the alternation, whose blocks include the component of 2^15 response types: a
    sparse Charnes-Cooper LP each. The clusters share no component, so the bounds add up: the RLT
    bounds of the cluster alone plus the Frechet interval of the large component."""
    from cfedit.bounds import programmes

    sizes: list[int] = []
    lfp = programmes.lfp

    def spy(c, f, g, sense):
        sizes.append(c.n)
        return lfp(c, f, g, sense)

    monkeypatch.setattr(programmes, "lfp", spy)
    _, g, dom, p, _ = _two_clusters(15)
    k = 15
    pair = Contrast(((1.0, parse_query("P(B[D=1]=1, C[D=1]=1, D=0, C=0, B=0)", dom)),
                     (1.0, parse_query("P(B[D=1]=1, C[D=1]=0, D=0, C=1, B=0)", dom))))
    every = parse_query("P(" + ", ".join(f"Y[X={i}]=1" for i in range(k)) + ")", dom)
    p_y1 = p.sum(axis=(0, 1, 2))[:, 1] / p.sum(axis=(0, 1, 2, 4))
    rss_before = _peak_rss_mib()
    b = optimal_bounds(Contrast((*pair.terms, (1.0, every))), g, dom, p)
    assert max(sizes) == 2**15 and b.method == "multilinear"
    alone = optimal_bounds(pair, g, dom, p)
    assert alone.method == "multilinear" and alone.width > 0.01
    lo, hi = alone.lower + max(0.0, p_y1.sum() - (k - 1)), alone.upper + p_y1.min()
    assert (b.lower, b.upper) == pytest.approx((lo, hi), abs=1e-6)
    assert b.lower - 1e-9 <= b.attained[0] <= b.attained[1] <= b.upper + 1e-9
    if sys.platform == "linux":
        assert _peak_rss_mib() - rss_before < 2048, f"peak RSS grew {_peak_rss_mib() - rss_before:.0f} MiB"


def test_one_product_of_events_is_solved_exactly_and_equals_the_rlt_bound(monkeypatch):
    """Frontdoor D -> C -> B, D <-> B with a 3-valued D: P(B_{D=0} = 0, B_{D=1} = 1, B_{D=2} = 0 | D = 2,
    C = 1, B = 0) pins the colour of every digit (a bar value each colour takes), so it reads
    q_C(one colour vector) q_DB(one bar event): one product, whose range is the product of the two
    ranges. The RLT relaxation is exact for one product of non-negative events, so it gives the same
    bounds, and the witnesses attain them (the frontdoor query that once took 284 s, with 10 digits)."""
    from cfedit.bounds import programmes

    g = CausalGraph.parse("D -> C; C -> B; D <-> B")
    dom = Domains({"D": ["0", "1", "2"], "C": BIN, "B": BIN})
    rng = np.random.default_rng(4)
    exo = [Exogenous("U", tuple(rng.dirichlet(np.ones(6))), ("D", "B")), Exogenous("NC", (0.3, 0.3, 0.4), ("C",)),
           Exogenous("NB", (0.6, 0.4), ("B",))]
    mech = {"D": lambda pa, u: u["U"] % 3, "C": lambda pa, u: (pa["D"] + u["NC"]) % 2,
            "B": lambda pa, u: (pa["C"] + (u["U"] > 2) + u["NB"]) % 2}
    scm = SCM(g, dom, exo, mech)
    p = scm.observational()
    q = parse_query("P(B[D=0]=0, B[D=1]=1, B[D=2]=0 | D=2, C=1, B=0)", dom)
    found: list = []
    product = programmes.product_of_events
    monkeypatch.setattr(programmes, "product_of_events", lambda *args: found.append(product(*args)) or found[-1])
    exact = optimal_bounds(q, g, dom, p)
    assert any(f is not None for f in found)  # solved as one product
    m_lo, m_hi = extremal_models(q, g, dom, p)
    monkeypatch.setattr(programmes, "product_of_events", lambda *args: None)
    rlt = optimal_bounds(q, g, dom, p)
    assert exact.method == rlt.method == "multilinear" and exact.certified and rlt.certified
    assert exact.width > 0.05 and exact.contains(scm.probability(q))
    assert (exact.lower, exact.upper) == pytest.approx((rlt.lower, rlt.upper), abs=1e-9)
    assert exact.attained == (exact.lower, exact.upper)
    for m, v in ((m_lo, exact.lower), (m_hi, exact.upper)):
        assert np.abs(m.observational() - p).max() < 1e-8 and abs(m.probability(q) - v) < 1e-8


def _peak_rss_mib() -> float:
    import resource  # POSIX only; ru_maxrss is in KiB on Linux

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def test_a_cluster_contracted_in_the_evidence_is_not_one_product(monkeypatch):
    """Frontdoor D -> C -> B, D <-> B: P(B = 0 | D = 0, C = 0, B_{D=1} = 1). The numerator is one product
    q_C(r_C(0) = 0, r_C(1) = 1) q_DB(r_D = 0, r_B(0) = 0, r_B(1) = 1) of two free laws, but in the evidence
    q_DB is fixed (contracted: P(D = 0) P(B = 1 | D = 0, c)) while q_C is free. The cluster is then not one
    product (its terms differ); it used to raise a TypeError in the product test. The bounds equal
    those of the RLT path (the product test disabled) and the witnesses attain them."""
    from cfedit.bounds import programmes

    g = CausalGraph.parse("D -> C; C -> B; D <-> B")
    dom = Domains({"D": BIN, "C": BIN, "B": BIN})
    p = np.random.default_rng(0).dirichlet(np.ones(8)).reshape(2, 2, 2)
    q = parse_query("P(B=0 | D=0, C=0, B[D=1]=1)", dom)
    b = optimal_bounds(q, g, dom, p)
    m_lo, m_hi = extremal_models(q, g, dom, p)
    monkeypatch.setattr(programmes, "product_of_events", lambda *args: None)
    rlt = optimal_bounds(q, g, dom, p)
    assert b.method == "multilinear" and b.certified and b.width > 0.05
    assert (b.lower, b.upper) == pytest.approx((rlt.lower, rlt.upper), abs=1e-9)
    for m, v in ((m_lo, b.attained[0]), (m_hi, b.attained[1])):
        assert np.abs(m.observational() - p).max() < 1e-8 and abs(m.probability(q) - v) < 1e-8
