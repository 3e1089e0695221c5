"""Edits at the extremal models of a query, read by the world's oracle (docs: guides/your-data.md, bounded editing).

Edits every held-out unit of a world whose factors are the query's evidence at the two models attaining the
query's lower and upper bound (P(V): the run's fitted one), reads the edits with the world's oracle, and prints
the share meeting the query's outcome next to the value each model attains.

    python benchmarks/bounded_check.py runs/bd --world backdoor "P(B[C=green]=1 | D=7, C=red, B=0)"
"""

from __future__ import annotations

import argparse

import numpy as np

from cfedit.editors.bounded import EXTREMES, edit_at_extremes, edit_form
from cfedit.evaluation.metrics import ctf_estimate
from cfedit.runs import Run
from cfedit.worlds import get_world


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("query")
    ap.add_argument("--world", default="backdoor")
    ap.add_argument("-n", type=int, default=4000, help="held-out units drawn (those with the evidence are edited)")
    ap.add_argument("--samples", type=int, default=8)
    args = ap.parse_args()
    w, model = get_world(args.world), Run.load(args.run).editor
    a = w.ascm("eval")
    units = a.units(args.n, seed=11)
    x = a.factual(units)
    query, _ = edit_form(args.query, model.domains)
    sel = np.ones(len(x), dtype=bool)
    for atom in query.given:
        sel &= units.v[atom.var] == atom.value
    v = {k: t[sel] for k, t in units.v.items()}
    out = edit_at_extremes(model, x[sel], query, args.samples, labels=v, seed=1)
    b = out.bounds
    print(f"{out.query.format(w.domains)}: bounds under the run's P(V) [{b.lower:.4f}, {b.upper:.4f}]; "
          f"{sel.sum()} held-out units with the evidence, {args.samples} samples each")
    for which in EXTREMES:
        r = out.edits[which]
        read = a.oracle(r.images.reshape(-1, *r.images.shape[2:]))
        read = {k: t.reshape(sel.sum(), args.samples) for k, t in read.items()}
        e = ctf_estimate(out.query, v, read)
        f = ctf_estimate(out.query, v, r.factors)
        print(f"  {which}: the model attains {out.attained(which):.4f}; its factor draws {f.format()}; "
              f"the oracle reads the edits {e.format()}")
    p = model.ncm.table()
    gap = max(np.abs(m.observational() - p / p.sum()).max() for m in out.models.values())
    print(f"  the models reproduce the run's P(V): largest difference of a cell {gap:.2e}")


if __name__ == "__main__":
    main()
