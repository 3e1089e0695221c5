"""Coverage of the bounds' bootstrap ranges, from labels only: no images, no training.

For each world, the automatic queries are chosen once from its exact P(V) (``--top`` configurations per
action). Each repetition draws a label table of n rows from the exact P(V), computes the queries' point
bounds and ``--resamples`` bootstrap replicates (as ``cfedit evaluate --images`` does), and checks whether
the world's exact bounds lie inside (a) each query's pointwise 95% range and (b) the simultaneous 95% band
over all queries at once, for the percentile and the basic interval, all from the same replicates.
Constant queries (a kept factor named in the evidence: 1 in every model) are left out of the counts, since
they are covered by construction.

    python benchmarks/bootstrap_coverage.py --world backdoor --n 60000 --reps 20 --resamples 40 -o cov.json
"""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np

from cfedit.bounds import optimal_bounds
from cfedit.evaluation.bootstrap import INTERVALS, simultaneous_band
from cfedit.evaluation.userdata import automatic_queries, bound_replicates, is_kept
from cfedit.worlds import get_world


def constant(q, graph) -> bool:
    """A kept outcome (a non-descendant of the action) named in the evidence: 1 or 0 in every model."""
    return is_kept(q, graph) and {a.var for a in q.outcome} <= {a.var for a in q.given}


def coverage(world: str, n: int, reps: int, resamples: int, top: int, seed: int, log=print) -> dict:
    w = get_world(world)
    p = w.scm.observational()
    qs = [q for q in automatic_queries(w.graph, w.domains, p, top) if not constant(q, w.graph)]
    exact = [optimal_bounds(q, w.graph, w.domains, p) for q in qs]
    ex_lo, ex_hi = np.array([b.lower for b in exact]), np.array([b.upper for b in exact])
    hits = {f"{k} {iv}": np.zeros((reps, len(qs)), bool) for k in ("pointwise", "simultaneous") for iv in INTERVALS}
    alphas = {iv: [] for iv in INTERVALS}
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    for r in range(reps):
        table = (rng.multinomial(n, p.reshape(-1)) / n).reshape(p.shape)
        rows, lo, hi = bound_replicates(qs, w.graph, w.domains, table, n, resamples, seed=int(rng.integers(2**31)))
        for iv in INTERVALS:
            band = simultaneous_band([x["lower"] for x in rows], [x["upper"] for x in rows], lo, hi, interval=iv)
            alphas[iv].append(band.alpha)
            for kind, ranges in (("pointwise", band.pointwise), ("simultaneous", band.simultaneous)):
                hits[f"{kind} {iv}"][r] = (ranges[:, 0] <= ex_lo + 1e-9) & (ex_hi <= ranges[:, 1] + 1e-9)
        log(f"[{world} n={n:,}] repetition {r + 1}/{reps} ({time.perf_counter() - t0:.0f}s)")
    out = {"world": world, "n": n, "reps": reps, "resamples": resamples, "top": top, "seed": seed, "queries": len(qs),
           "seconds": time.perf_counter() - t0, "simultaneous alpha (mean)": {iv: float(np.mean(a)) for iv, a in alphas.items()},
           "coverage": {}}
    for key, h in hits.items():
        per_query = h.mean(axis=0)
        out["coverage"][key] = {"all queries at once": float(h.all(axis=1).mean()), "per query (mean)": float(per_query.mean()),
                                "per query (worst)": float(per_query.min()),
                                "worst query": qs[int(per_query.argmin())].format(w.domains)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--world", action="append", help="world(s) [default: backdoor and frontdoor]")
    ap.add_argument("--n", type=int, action="append", help="label rows per table (repeatable) [default: 60,000]")
    ap.add_argument("--reps", type=int, default=20, help="label tables drawn from the exact P(V)")
    ap.add_argument("--resamples", type=int, default=40, help="bootstrap resamples per table")
    ap.add_argument("--top", type=int, default=1, help="frequent configurations per action in the automatic queries")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("-o", "--output", help="JSON file for the results")
    args = ap.parse_args()
    results = []
    for world in args.world or ["backdoor", "frontdoor"]:
        for n in args.n or [60_000]:
            res = coverage(world, n, args.reps, args.resamples, args.top, args.seed)
            results.append(res)
            se = lambda c: math.sqrt(max(c * (1 - c), 1 / res["reps"]) / res["reps"])  # noqa: E731
            print(f"\n{world}, n = {n:,}: {res['queries']} non-constant queries, {res['reps']} tables x {res['resamples']} "
                  f"resamples ({res['seconds']:.0f}s); share of tables whose range holds the exact bounds:")
            for key, c in res["coverage"].items():
                a = c["all queries at once"]
                print(f"  {key:24s} all at once {a:.2f} (s.e. {se(a):.2f}); per query mean {c['per query (mean)']:.3f}, "
                      f"worst {c['per query (worst)']:.2f} ({c['worst query']})")
            if args.output:
                with open(args.output, "w") as f:
                    json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
