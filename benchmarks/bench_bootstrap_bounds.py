"""Time of the bounds' bootstrap of ``cfedit evaluate`` on a user's 4-factor diagram.

The case: the first diagram of ``bench_bounds.USER_GRAPHS`` (a 10-valued D, binary X, Y, Z, two bidirected
edges), 9,500 label rows drawn from a random SCM over it, the 96 automatic edit queries (``--top 2``) and
100 bootstrap resamples of the rows, timed through
:func:`cfedit.evaluation.userdata.bound_replicates`, as ``cfedit evaluate`` calls it. Prints the wall
time and the process's CPU time (best of ``--repeat``; the CPU time is the steadier figure on a shared
machine). ``--check`` also runs the reference path, :func:`cfedit.bounds.optimal_bounds` on each query and
each resampled table (the loop that ``bound_replicates`` ran before it solved the tables as a batch),
and prints the largest difference between the two.

Run (one thread): OMP_NUM_THREADS=1 python benchmarks/bench_bootstrap_bounds.py [--resamples 100] [--check]
Target: at most 2 minutes for 100 resamples (2 CPU cores).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from bench_bounds import USER_GRAPHS, user_scm
from cfedit.bounds import count_table, optimal_bounds
from cfedit.core.graph import CausalGraph
from cfedit.errors import DataError, QueryError
from cfedit.evaluation.userdata import automatic_queries, bound_replicates, is_kept


def case(rows: int, top: int, graph: str):
    """The diagram, its domains, the label rows' empirical P(V) and the automatic queries."""
    g = CausalGraph.parse(graph)
    scm = user_scm(g)
    p = count_table(scm.sample(rows, seed=1), scm.domains).astype(float)
    p /= p.sum()
    return g, scm.domains, p, automatic_queries(g, scm.domains, p, top)


def constant(q, g) -> bool:
    """A kept outcome named in the evidence: 1 or 0 in every model, not resampled by bound_replicates."""
    return is_kept(q, g) and {a.var for a in q.outcome} <= {a.var for a in q.given}


def reference(queries, g, dom, p, n: int, resamples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The replicates by optimal_bounds on each query and each table, drawn as bound_replicates draws them."""
    fixed = [constant(q, g) for q in queries]
    point = [optimal_bounds(q, g, dom, p) for q in queries]
    lo = np.tile([b.lower for b in point], (resamples, 1))
    hi = np.tile([b.upper for b in point], (resamples, 1))
    rng = np.random.default_rng(seed)
    flat = p.reshape(-1)
    for r in range(resamples):
        t = (rng.multinomial(n, flat / flat.sum()) / n).reshape(dom.shape)
        for j, q in enumerate(queries):
            if fixed[j]:
                continue
            try:
                b = optimal_bounds(q, g, dom, t)
                lo[r, j], hi[r, j] = b.lower, b.upper
            except (QueryError, DataError):
                lo[r, j] = hi[r, j] = np.nan
    return lo, hi


def timed(fn, repeat: int):
    best_wall, best_cpu, out = np.inf, np.inf, None
    for _ in range(repeat):
        w, c = time.perf_counter(), time.process_time()
        out = fn()
        best_wall, best_cpu = min(best_wall, time.perf_counter() - w), min(best_cpu, time.process_time() - c)
    return best_wall, best_cpu, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=9500, help="label rows")
    ap.add_argument("--top", type=int, default=2, help="factual configurations per action in the automatic queries")
    ap.add_argument("--resamples", type=int, default=100, help="bootstrap resamples")
    ap.add_argument("--repeat", type=int, default=1, help="runs; the best is printed")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--check", action="store_true", help="also time the reference path and compare")
    args = ap.parse_args()
    g, dom, p, qs = case(args.rows, args.top, USER_GRAPHS[0])
    print(f"{USER_GRAPHS[0]}: {args.rows:,} label rows, {len(qs)} queries, {args.resamples} resamples")
    wall, cpu, (rows, lo, hi) = timed(lambda: bound_replicates(qs, g, dom, p, args.rows, args.resamples, args.seed), args.repeat)
    solved = args.resamples * sum(not constant(q, g) for q in qs)
    print(f"bound_replicates: {wall:.1f} s wall, {cpu:.1f} s CPU (best of {args.repeat}); "
          f"{1000 * cpu / max(solved, 1):.1f} ms CPU per resampled query; "
          f"{sum(r['skipped'] for r in rows)} replicates refused")
    if args.check:
        wall, cpu, (ref_lo, ref_hi) = timed(lambda: reference(qs, g, dom, p, args.rows, args.resamples, args.seed), 1)
        same_nan = np.array_equal(np.isnan(lo), np.isnan(ref_lo)) and np.array_equal(np.isnan(hi), np.isnan(ref_hi))
        diff = max(float(np.nanmax(np.abs(lo - ref_lo), initial=0)), float(np.nanmax(np.abs(hi - ref_hi), initial=0)))
        print(f"reference (optimal_bounds per query and table): {wall:.1f} s wall, {cpu:.1f} s CPU; "
              f"largest difference {diff:.2e}, same refusals: {same_nan}")


if __name__ == "__main__":
    main()
