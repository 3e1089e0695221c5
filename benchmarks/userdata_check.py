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
from cfedit.evaluation.userdata import label_bounds


def _meets(e: dict, lo: float, hi: float) -> bool:
    return bool(e["n"] > 0 and e["lower"] <= hi + 1e-9 and e["upper"] >= lo - 1e-9)


def _counts(name: str, res: dict, exact: list, bands: list, method: str) -> None:
    """Exact bounds inside the band, and the editor's strict and reader-aware verdicts against it."""
    n = len(res["queries"])
    inside = sum(band[0] - 1e-9 <= b.lower and b.upper <= band[1] + 1e-9 for b, band in zip(exact, bands))
    strict = sum(_meets(q["methods"][method], *band) for q, band in zip(res["queries"], bands))
    aware = sum(_meets(q["methods"][method], *widen(*band, q.get("misread bound", 0.0))) for q, band in zip(res["queries"], bands))
    print(f"{name}: exact bounds inside the simultaneous 95% band {inside}/{n}; {method} consistent strict {strict}/{n}, "
          f"reader-aware {aware}/{n}")
    for q, b, band in zip(res["queries"], exact, bands):
        if not band[0] - 1e-9 <= b.lower and b.upper <= band[1] + 1e-9:
            print(f"  exact bounds outside: {q['query']}: exact [{b.lower:.4f}, {b.upper:.4f}], band [{band[0]:.4f}, {band[1]:.4f}]")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", help="results.json of a user-data report")
    ap.add_argument("truth", help="truth.json of the exported folder")
    ap.add_argument("--eval-labels", help="the evaluation folder's labels.csv: also recompute the band from its rows alone")
    args = ap.parse_args()
    res = json.loads(open(args.results).read())
    truth = json.loads(open(args.truth).read())
    graph, dom = CausalGraph.parse(truth["graph"]), Domains(truth["factors"])
    p = np.array(truth["p_v"])
    scm = None
    try:
        from cfedit.worlds import get_world

        scm = get_world(truth["world"]).scm
    except Exception:  # a world no longer registered: no true values
        pass
    method = res["methods"][0]
    n_in = n_band = n_lo = n_hi = n_cons = n_cons_point = n_cons_truth = n_aware = 0
    exact = []
    print(f"{'query':44s} {'exact bounds':>16s} {'report bounds':>16s} {'lower range':>16s} {'upper range':>16s} "
          f"{'in':>5s} {'truth':>6s} {method + ' estimate [95%]':>26s} cons  aware")
    for q in res["queries"]:
        query = parse_query(q["query"], dom)
        b = optimal_bounds(query, graph, dom, p)
        exact.append(b)
        lo_in = q["lower range"][0] - 1e-9 <= b.lower <= q["lower range"][1] + 1e-9
        hi_in = q["upper range"][0] - 1e-9 <= b.upper <= q["upper range"][1] + 1e-9
        n_lo += lo_in
        n_hi += hi_in
        n_in += q["widened"][0] - 1e-9 <= b.lower and b.upper <= q["widened"][1] + 1e-9
        band = q.get("band", q["widened"])
        n_band += band[0] - 1e-9 <= b.lower and b.upper <= band[1] + 1e-9
        e = q["methods"][method]
        n_cons += e["inside"]
        n_cons_point += e.get("inside pointwise", e["inside"])
        aware = e.get("inside (reader-aware)")
        n_aware += bool(aware)
        t = scm.probability(query) if scm is not None else float("nan")
        n_cons_truth += e["n"] > 0 and e["lower"] <= b.upper and e["upper"] >= b.lower
        iv = lambda a, b: f"[{a:.3f}, {b:.3f}]"  # noqa: E731
        est = f"{e['estimate']:.3f} {iv(e['lower'], e['upper'])} n={e['n']}"
        print(f"{q['query'][:44]:44s} {iv(b.lower, b.upper):>16s} {iv(q['lower'], q['upper']):>16s} "
              f"{iv(*q['lower range']):>16s} {iv(*q['upper range']):>16s} {'yn'[not lo_in] + 'yn'[not hi_in]:>5s} "
              f"{t:6.3f} {est:>26s} {'yes' if e['inside'] else 'NO':4s}  {'-' if aware is None else 'yes' if aware else 'NO'}")
    n = len(res["queries"])
    boot = res.get("bootstrap", {})
    src = res.get("bounds from", {"note": f"the evaluation folder's {res['label rows']:,} label rows"})
    print(f"\nbounds from {src['note']}")
    print(f"{n} queries ({boot.get('resamples', '?')} resamples, {boot.get('interval', 'percentile')} intervals); exact lower "
          f"bound inside the report's lower-bound range: {n_lo}/{n}; exact upper inside the upper-bound range: {n_hi}/{n}")
    print(f"exact bounds inside each query's pointwise 95% range: {n_in}/{n}; inside the simultaneous 95% band: {n_band}/{n} "
          f"(one-sided level per bound {boot.get('simultaneous alpha', float('nan')):.4f})")
    print(f"{method} consistent (its 95% interval meets the simultaneous band): {n_cons}/{n}; meets the pointwise range: "
          f"{n_cons_point}/{n}; meets the band widened by the reader's misreads (reader-aware): "
          f"{n_aware if 'misread bound' in res['queries'][0] else '-'}/{n}; meets the exact bounds: {n_cons_truth}/{n}")
    acc = ", ".join(f"{k} {v['value']:.4f}" for k, v in res["reader accuracy"].items())
    print(f"reader accuracy on {res['reader']['held out']:,} held-out images: {acc}")
    if "reader misreads" in res:
        print("reader misread bound per factor (worst class, one-sided upper 95% limit): " + ", ".join(
            f"{k} {m['upper']:.4f} (class {m['worst class']}: {m['misread']}/{m['n']})" for k, m in res["reader misreads"].items()))
    if args.eval_labels:
        cfg = res["config"]
        rows = bounds_rows(count_table(read_labels_csv(args.eval_labels, dom), dom), None, "eval")
        qs = [parse_query(q["query"], dom) for q in res["queries"]]
        t0 = time.perf_counter()
        brows, _ = label_bounds(qs, graph, dom, rows.p_v, rows.n, cfg["bootstrap"], cfg["seed"], interval=cfg["interval"],
                                log=lambda m: print(m, flush=True))
        print(f"\nthe band recomputed from {rows.note} ({time.perf_counter() - t0:.0f}s):")
        _counts("eval rows only", res, exact, [r["band"] for r in brows], method)
        _counts("the report's band", res, exact, [q.get("band", q["widened"]) for q in res["queries"]], method)


if __name__ == "__main__":
    main()
