"""Check a user-data report against the world it was exported from (docs: results/user-data.md).

A world exported with ``cfedit world export`` and evaluated with ``cfedit evaluate RUN --images DIR
--labels CSV`` (no world) gives a report whose bounds come from the labels alone. This script reads that
report's results.json and the export's truth.json, recomputes every query's optimal bounds from the
world's exact P(V), and prints, per query: the exact bounds, the report's bounds with their 95% bootstrap
ranges, whether each exact bound lies inside its range, the world's true value, and the editor's estimate
with its strict and reader-aware verdicts; then the counts: exact bounds inside each query's pointwise
range and inside the simultaneous band (all queries at once), and the editor consistent with either, and
with the band widened by the reader's misread rate (reader-aware).

With ``--eval-labels CSV`` (the evaluation folder's labels.csv), the band is also recomputed from those rows
alone, for the report's queries with its bootstrap settings (resamples, interval, seed), and the same counts
are printed against it: the comparison of bounds from all the label rows with bounds from the folder's.
That bootstrap solves (resamples x queries) linear programmes: minutes on two cores.

    python benchmarks/userdata_check.py reports/backdoor-eval/results.json data/backdoor-eval/truth.json \\
        [--eval-labels data/backdoor-eval/labels.csv]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from cfedit.bounds import count_table, optimal_bounds, read_labels_csv
from cfedit.core.domains import Domains
from cfedit.core.graph import CausalGraph
from cfedit.core.query import parse_query
from cfedit.evaluation.labelrows import bounds_rows
from cfedit.evaluation.misread import widen
from cfedit.evaluation.results import EvaluationResults, Verdict, meets
from cfedit.evaluation.userdata import label_bounds


def _meets(v: Verdict, lo: float, hi: float) -> bool:
    return v.tested and meets(v.estimate, lo, hi)


def _counts(name: str, res: EvaluationResults, exact: list, bands: list, method: str) -> None:
    """Exact bounds inside the band, and the editor's strict and reader-aware verdicts against it."""
    n = len(res.queries)
    inside = sum(band[0] - 1e-9 <= b.lower and b.upper <= band[1] + 1e-9 for b, band in zip(exact, bands))
    strict = sum(_meets(q.methods[method], *band) for q, band in zip(res.queries, bands))
    aware = sum(_meets(q.methods[method], *widen(*band, q.misread_bound)) for q, band in zip(res.queries, bands))
    print(f"{name}: exact bounds inside the simultaneous 95% band {inside}/{n}; {method} consistent strict {strict}/{n}, "
          f"reader-aware {aware}/{n}")
    for q, b, band in zip(res.queries, exact, bands):
        if not band[0] - 1e-9 <= b.lower and b.upper <= band[1] + 1e-9:
            print(f"  exact bounds outside: {q.query}: exact [{b.lower:.4f}, {b.upper:.4f}], band [{band[0]:.4f}, {band[1]:.4f}]")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", help="results.json of a user-data report")
    ap.add_argument("truth", help="truth.json of the exported folder")
    ap.add_argument("--eval-labels", help="the evaluation folder's labels.csv: also recompute the band from its rows alone")
    args = ap.parse_args()
    res = EvaluationResults.load(args.results)
    truth = json.loads(open(args.truth).read())
    graph, dom = CausalGraph.parse(truth["graph"]), Domains(truth["factors"])
    p = np.array(truth["p_v"])
    scm = None
    try:
        from cfedit.worlds import get_world

        scm = get_world(truth["world"]).scm
    except Exception:  # a world no longer registered: no true values
        pass
    method = res.methods[0]
    n_in = n_band = n_lo = n_hi = n_cons = n_cons_point = n_cons_truth = n_aware = 0
    exact = []
    print(f"{'query':44s} {'exact bounds':>16s} {'report bounds':>16s} {'lower range':>16s} {'upper range':>16s} "
          f"{'in':>5s} {'truth':>6s} {method + ' estimate [95%]':>26s} cons  aware")
    for q in res.queries:
        query = parse_query(q.query, dom)
        b = optimal_bounds(query, graph, dom, p)
        exact.append(b)
        r = q.ranges
        lo_in = r.lower_range[0] - 1e-9 <= b.lower <= r.lower_range[1] + 1e-9
        hi_in = r.upper_range[0] - 1e-9 <= b.upper <= r.upper_range[1] + 1e-9
        n_lo += lo_in
        n_hi += hi_in
        n_in += r.pointwise[0] - 1e-9 <= b.lower and b.upper <= r.pointwise[1] + 1e-9
        n_band += r.band[0] - 1e-9 <= b.lower and b.upper <= r.band[1] + 1e-9
        v = q.methods[method]
        e = v.estimate
        n_cons += bool(v.inside)
        n_cons_point += bool(v.inside_pointwise)
        n_aware += bool(v.inside_reader_aware)
        t = scm.probability(query) if scm is not None else float("nan")
        n_cons_truth += _meets(v, b.lower, b.upper)
        iv = lambda a, b: f"[{a:.3f}, {b:.3f}]"  # noqa: E731
        verdict = lambda x: "-" if x is None else "yes" if x else "NO"  # noqa: E731
        print(f"{q.query[:44]:44s} {iv(b.lower, b.upper):>16s} {iv(q.lower, q.upper):>16s} "
              f"{iv(*r.lower_range):>16s} {iv(*r.upper_range):>16s} {'yn'[not lo_in] + 'yn'[not hi_in]:>5s} "
              f"{t:6.3f} {e.format():>26s} {verdict(v.inside):4s}  {verdict(v.inside_reader_aware)}")
    n = len(res.queries)
    lab = res.labels
    untested = res.counts(method).untested
    print(f"\nbounds from {lab.bounds_from.note}")
    print(f"{n} queries ({lab.bootstrap.resamples} resamples, {lab.bootstrap.interval} intervals); exact lower "
          f"bound inside the report's lower-bound range: {n_lo}/{n}; exact upper inside the upper-bound range: {n_hi}/{n}")
    print(f"exact bounds inside each query's pointwise 95% range: {n_in}/{n}; inside the simultaneous 95% band: {n_band}/{n} "
          f"(one-sided level per bound {lab.bootstrap.simultaneous_alpha:.4f})")
    print(f"{method} consistent (its 95% interval meets the simultaneous band): {n_cons}/{n - untested}; meets the pointwise "
          f"range: {n_cons_point}/{n - untested}; meets the band widened by the reader's misreads (reader-aware): "
          f"{n_aware}/{n - untested}; meets the exact bounds: {n_cons_truth}/{n - untested}; untested {untested}")
    acc = ", ".join(f"{k} {v.value:.4f}" for k, v in res.reader.accuracy.items())
    print(f"reader accuracy on {res.reader.held_out:,} held-out images: {acc}")
    print("reader misread bound per factor (worst class, one-sided upper 95% limit): " + ", ".join(
        f"{k} {m.upper:.4f} (class {m.worst_class}: {m.misread}/{m.n})" for k, m in res.reader.misreads.items()))
    if args.eval_labels:
        cfg = res.config
        rows = bounds_rows(count_table(read_labels_csv(args.eval_labels, dom), dom), None, "eval")
        qs = [parse_query(q.query, dom) for q in res.queries]
        t0 = time.perf_counter()
        brows, _ = label_bounds(qs, graph, dom, rows.p_v, rows.n, cfg["bootstrap"], cfg["seed"], interval=cfg["interval"],
                                log=lambda m: print(m, flush=True))
        print(f"\nthe band recomputed from {rows.note} ({time.perf_counter() - t0:.0f}s):")
        _counts("eval rows only", res, exact, [r["band"] for r in brows], method)
        _counts("the report's band", res, exact, [q.ranges.band for q in res.queries], method)


if __name__ == "__main__":
    main()
