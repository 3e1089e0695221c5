"""Time of the optimal-bounds programme: one large component, every documented world query, random graphs.

Run: .venv/bin/python benchmarks/bench_bounds.py [--large 15] [--graphs 20] [--neural]
Target: under 0.5 s per world query and per query on a user's 4-factor diagram with a 10-valued parent
(2 CPU cores; best of 3 each). The large case is a multilinear contrast whose programme holds a
C-component of 2^k response types (k = ``--large``; 0 skips it); it prints the time and the process's
peak resident memory (ru_maxrss), run first so that the peak is this case's.
Random graphs: n = 3, 4, 5 binary factors, each possible edge with prob. 0.5 (at most 3 parents), each
pair bidirected with prob. 0.3, queries P(W_{x} = w | e) with 0-2 evidence factors and a PNS
P(W_{x=1} = 1, W_{x=0} = 0). ``--neural`` adds the neural bounds (cfedit.bounds.neural) of each world
query beside the exact ones (a few seconds each).
"""

from __future__ import annotations

import argparse
import collections
import itertools
import resource
import time

import numpy as np

from cfedit.bounds import Contrast, optimal_bounds
from cfedit.core.domains import Domains
from cfedit.core.graph import CausalGraph
from cfedit.core.query import Atom, Query, parse_query
from cfedit.errors import QueryError
from cfedit.scm import SCM, Exogenous


def best_of(fn, repeat: int = 3) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


EXTRA = (  # not documented by the worlds: the digit is free, so B's slots are read in 10 separate groups
    "P(B[C=green]=1, B[C=red]=0)",
    "P(B[C=green]=1 | B=0)",
    "P(B[D=2]=1, B[D=7]=0)",
    # every digit's bar (once 284 s in the frontdoor world, an RLT of 40 x 1,024 types; now one product)
    "P(B[D=0]=0, B[D=1]=1, B[D=2]=0, B[D=3]=1, B[D=4]=0, B[D=5]=1, B[D=6]=0, B[D=7]=0, B[D=8]=0, B[D=9]=1 "
    "| D=7, C=red, B=0)",
)

USER_GRAPHS = (  # a user's diagram: a 10-valued parent D, binary X, Y, Z, two bidirected edges
    "D -> X; X -> Y; D -> Y; Y -> Z; X <-> Y; D <-> Z",  # r_X(d) unread but at the evidence's digit: dropped
    "D -> X; D -> Y; X -> Z; Y -> Z; X <-> Z; D <-> Y",  # every r_X(d) constrained with Z's slots: lifted
)
USER_QUERIES = ("P(Y[X={x1}]={y1} | D=7, X={x}, Y={y})", "P(Z[X={x1}]={z1} | D=7, X={x}, Z={z})",
                "P(Y[D=2]={y1} | D=7, X={x}, Y={y})", "P(Z[D=2]={z1} | D=7, X={x}, Y={y}, Z={z})",
                "P(X[D=2]={x1} | D=7, X={x}, Z={z})")


def worlds(neural: bool) -> None:
    from cfedit.worlds import get_world, world_names

    print(f"{'world':10s} {'query':48s} {'lower':>8s} {'upper':>8s} {'ident':>5s} {'truth':>8s} "
          f"{'method':>10s} {'ms':>7s}" + ("   neural [lower, upper]   fit TV     s" if neural else ""))
    for name in world_names():
        w = get_world(name)
        p = w.scm.observational()
        for text in w.queries + EXTRA:
            q = parse_query(text, w.domains)
            t, b = best_of(lambda: optimal_bounds(q, w.graph, w.domains, p))
            flag = "" if t < 0.5 else "  SLOW"
            line = (f"{name:10s} {text:48s} {b.lower:8.4f} {b.upper:8.4f} {str(b.identified):>5s} "
                    f"{w.scm.probability(q):8.4f} {b.method:>10s} {t * 1000:7.1f}{flag}")
            if neural:
                from cfedit.bounds.neural import neural_bounds

                nb = neural_bounds(q, w.graph, w.domains, p)
                line += f"   [{nb.lower:.4f}, {nb.upper:.4f}]   {max(nb.fit_tv):.4f} {nb.seconds:5.1f}"
            print(line)


def large_component(k: int) -> None:
    """D -> C -> B, D <-> B beside X -> Y (X k-valued): the contrast
    P(D=0, C=0, B=0, C_{D=1}=1, B_{D=1}=1) + P(Y_{X=0}=1, ..., Y_{X=k-1}=1) is multilinear (the first term
    is one product of C's and (D, B)'s laws, solved exactly) and its programme holds Y's one-factor
    component of 2^k response types (the case of tests/bounds/test_programmes.py)."""
    rng = np.random.default_rng(k)
    b2 = ("0", "1")
    g = CausalGraph.parse("D -> C; C -> B; D <-> B; X -> Y")
    dom = Domains({"D": b2, "C": b2, "B": b2, "X": [str(i) for i in range(k)], "Y": b2})
    p_dcb = rng.dirichlet(np.ones(8)).reshape(2, 2, 2)
    p_x = rng.dirichlet(np.ones(k))
    p_y1 = 1 - rng.uniform(0.2, 0.9, k) / k
    p = p_dcb[:, :, :, None, None] * np.stack([p_x * (1 - p_y1), p_x * p_y1], axis=1)[None, None, None]
    every = ", ".join(f"Y[X={i}]=1" for i in range(k))
    q = Contrast(((1.0, parse_query("P(B[D=1]=1, C[D=1]=1, D=0, C=0, B=0)", dom)),
                  (1.0, parse_query(f"P({every})", dom))))
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    t = time.perf_counter()
    b = optimal_bounds(q, g, dom, p)
    t = time.perf_counter() - t
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"large component: 2^{k} = {2 ** k} response types, [{b.lower:.4f}, {b.upper:.4f}] {b.method}, "
          f"{t:.2f} s, peak RSS {rss:.0f} MiB (before the query {rss0:.0f} MiB)\n")


def user_scm(graph: CausalGraph, seed: int = 0) -> SCM:
    """D with 10 values, X, Y, Z binary; a 6-state exogenous per bidirected edge and per factor, random
    mechanisms (tables over the parents and the exogenous states)."""
    rng = np.random.default_rng(seed)
    dom = Domains({"D": [str(d) for d in range(10)], "X": ("0", "1"), "Y": ("0", "1"), "Z": ("0", "1")})
    exo = [Exogenous(f"U{a}{b}", tuple(rng.dirichlet(np.ones(6))), (a, b)) for a, b in graph.bidirected]
    exo += [Exogenous(f"N{v}", tuple(rng.dirichlet(np.ones(6))), (v,)) for v in graph.nodes]
    mech = {}
    for v in graph.nodes:
        reads = [e for e in exo if v in e.readers]
        pa = graph.parents(v)
        table = rng.integers(0, dom.size(v), size=[dom.size(q) for q in pa] + [e.size for e in reads])
        mech[v] = lambda par, u, _pa=pa, _r=tuple(e.name for e in reads), _t=table: _t[
            tuple(np.asarray(par[q]) for q in _pa) + tuple(np.asarray(u[r]) for r in _r)]
    return SCM(graph, dom, exo, mech)


def user_diagrams() -> None:
    """Edit queries on two 4-factor user diagrams (``USER_GRAPHS``), P(V) from an SCM; the evidence is the
    most probable (X, Y, Z) given D = 7."""
    print(f"\n{'user diagram':48s} {'query':40s} {'lower':>7s} {'upper':>7s} {'method':>11s} {'ms':>7s}")
    worst, refused = 0.0, 0
    for text in USER_GRAPHS:
        scm = user_scm(CausalGraph.parse(text))
        p = scm.observational()
        x, y, z = (int(i) for i in np.unravel_index(np.argmax(p[7]), p[7].shape))
        for template in USER_QUERIES:
            q = parse_query(template.format(x=x, y=y, z=z, x1=1 - x, y1=1 - y, z1=1 - z), scm.domains)
            t, b = best_of(lambda: _refused_or(lambda: optimal_bounds(q, scm.graph, scm.domains, p)))
            if isinstance(b, str):
                refused += 1
                print(f"{text:48s} {q.format(scm.domains):40s} refused: {b} ({t * 1000:.1f} ms)")
                continue
            worst = max(worst, t)
            print(f"{text:48s} {q.format(scm.domains):40s} {b.lower:7.4f} {b.upper:7.4f} {b.method:>11s} "
                  f"{t * 1000:7.1f}{'' if t < 0.5 else '  SLOW'}")
    print(f"user diagrams: slowest answered query {worst * 1000:.1f} ms (target 500 ms), {refused} refused")


def _refused_or(fn):
    """fn(), or the first words of the QueryError that refuses it."""
    try:
        return fn()
    except QueryError as e:
        return " ".join(str(e).split()[:8])


def random_scm(rng: np.random.Generator, n: int) -> SCM:
    names = [f"V{i}" for i in range(n)]
    directed: list[tuple[str, str]] = []
    for j in range(n):
        pa = [i for i in range(j) if rng.random() < 0.5][:3]
        directed += [(names[i], names[j]) for i in pa]
    bidirected = [(names[i], names[j]) for i, j in itertools.combinations(range(n), 2) if rng.random() < 0.3]
    graph = CausalGraph(tuple(names), tuple(directed), tuple(bidirected))
    exo = [Exogenous(f"U{a}{b}", tuple(rng.dirichlet(np.ones(3))), (a, b)) for a, b in graph.bidirected]
    exo += [Exogenous(f"N{v}", tuple(rng.dirichlet(np.ones(4))), (v,)) for v in names]
    mech = {}
    for v in names:
        reads = [e for e in exo if v in e.readers]
        pa = graph.parents(v)
        table = rng.integers(0, 2, size=[2] * len(pa) + [e.size for e in reads])
        mech[v] = lambda par, u, _pa=pa, _r=tuple(e.name for e in reads), _t=table: _t[
            tuple(np.asarray(par[p]) for p in _pa) + tuple(np.asarray(u[r]) for r in _r)]
    return SCM(graph, Domains({v: ("0", "1") for v in names}), exo, mech)


def random_queries(scm: SCM, rng: np.random.Generator) -> list[Query]:
    names = scm.graph.nodes
    unit = scm.sample(1, seed=int(rng.integers(1 << 30)))
    out = []
    for _ in range(3):
        x, w = (str(s) for s in rng.choice(names, 2, replace=False))
        ev = [str(v) for v in rng.choice(names, int(rng.integers(0, 3)), replace=False)]
        out.append(Query((Atom(w, int(rng.integers(2)), ((x, int(rng.integers(2))),)),),
                         tuple(Atom(v, int(unit[v][0])) for v in ev)))
    x, w = (str(s) for s in rng.choice(names, 2, replace=False))
    out.append(Query((Atom(w, 1, ((x, 1),)), Atom(w, 0, ((x, 0),)))))
    return out


def random_graphs(n_graphs: int) -> None:
    print(f"\n{'n':>2s} {'queries':>7s} {'median ms':>9s} {'p90 ms':>7s} {'max ms':>7s}  methods")
    for n in (3, 4, 5):
        rng = np.random.default_rng(n)
        times, methods = [], collections.Counter()
        for _ in range(n_graphs):
            scm = random_scm(rng, n)
            p = scm.observational()
            for q in random_queries(scm, rng):
                t = time.perf_counter()
                try:
                    b = optimal_bounds(q, scm.graph, scm.domains, p)
                    methods[b.method + ("" if b.certified else "*")] += 1
                except QueryError as e:
                    methods["refused: " + str(e).split(";")[0][:40]] += 1
                times.append(time.perf_counter() - t)
        ms = np.asarray(times) * 1000
        print(f"{n:2d} {len(ms):7d} {np.median(ms):9.1f} {np.percentile(ms, 90):7.1f} {ms.max():7.1f}  "
              + ", ".join(f"{k}: {v}" for k, v in sorted(methods.items())))
    print("(* = valid bounds, not certified optimal: a C-component that is not a bidirected clique, "
          "or a loose relaxation)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--graphs", type=int, default=20, help="random graphs per size")
    ap.add_argument("--neural", action="store_true", help="also train the neural bounds of each world query")
    ap.add_argument("--large", type=int, default=15, help="2^k response types in the large case (0: skip)")
    args = ap.parse_args()
    if args.large:
        large_component(args.large)
    worlds(args.neural)
    user_diagrams()
    random_graphs(args.graphs)


if __name__ == "__main__":
    main()
