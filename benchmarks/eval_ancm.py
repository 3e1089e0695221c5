"""Measure the ANCM editor's targets on held-out writers (docs: results/mnist.md, the demo's table).

    python benchmarks/eval_ancm.py [CHECKPOINT] [--units 2000] [--samples 8]
    python benchmarks/eval_ancm.py --ncm-methods      # the NCM alone: "exact" against "mc" shared inputs

Default checkpoint: runs/demo/editor (written by `cfedit demo --train`). Prints effectiveness, preservation,
the documented queries (estimate, truth, optimal bounds), null-edit MAE, NCM TV (to the data's and to the
true P(V)), labeller accuracy, and a probe of (c): how well v is predicted from the abducted u_I.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from cfedit.data import WORLD_TRAIN_UNITS
from cfedit.editors.ancm import ANCM
from cfedit.evaluation.protocol import EvalConfig, evaluate
from cfedit.worlds import get_world


def probe(u_train: np.ndarray, y_train: np.ndarray, u_test: np.ndarray, y_test: np.ndarray, k: int) -> float:
    """Held-out accuracy of a multinomial logistic regression predicting a factor from u_I."""
    torch.manual_seed(0)
    lin = torch.nn.Linear(u_train.shape[1], k)
    opt = torch.optim.Adam(lin.parameters(), 0.05)
    xt, yt = torch.as_tensor(u_train), torch.as_tensor(y_train)
    for _ in range(300):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(lin(xt), yt).backward()
        opt.step()
    return float((lin(torch.as_tensor(u_test)).argmax(1).numpy() == y_test).mean())


def ncm_methods(n: int = WORLD_TRAIN_UNITS) -> None:
    """Fit the NCM with each kind of shared input on n Backdoor labels; TV to the data's and the true P(V)."""
    from cfedit.ncm import NCM, NCMConfig

    w = get_world("backdoor")
    labels = w.scm.sample(n, seed=0)
    for method in ("exact", "mc"):
        ncm = NCM(w.graph, w.domains, NCMConfig(method=method))
        t = time.time()
        rep = ncm.fit(labels)
        print(f"NCM {method:5s}: fit {time.time() - t:.1f}s on {n:,} labels, TV to the data's P(V) {rep.tv:.4f}, "
              f"to the true P(V) {0.5 * np.abs(ncm.table() - w.scm.observational()).sum():.4f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("checkpoint", nargs="?", default="runs/demo/editor")
    ap.add_argument("--units", type=int, default=2000)
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--ncm-methods", action="store_true", help="compare the NCM's shared-input kinds, then stop")
    args = ap.parse_args()
    if args.ncm_methods:
        ncm_methods()
        return
    w = get_world("backdoor")
    model = ANCM.load(Path(args.checkpoint))
    t = time.time()
    res = evaluate(w, {"ancm": model}, EvalConfig(n_units=args.units, n_samples=args.samples, seed=1, realism=False,
                                                  composition_steps=0, reversibility=""))
    print(f"evaluation on {args.units} held-out units x {args.samples} samples: {time.time() - t:.0f}s")
    for i in res.editors["ancm"].interventions:
        print(f"do({i.action}): effectiveness {i.effectiveness.format()}  preservation {i.preservation.format()}")
    for q in res.queries:
        v = q.methods["ancm"]
        e = v.estimate
        err = f" |err|={abs(e.value - q.truth):.3f}" if q.identified and v.tested else ""
        print(f"{q.query}: estimate {e.format()} "
              f"truth {q.truth:.3f} bounds [{q.lower:.3f}, {q.upper:.3f}]{' identified' if q.identified else ''} "
              f"{'untested' if not v.tested else 'inside' if v.inside else 'OUTSIDE'}{err}")
    print(f"null-edit reconstruction MAE {res.editors['ancm'].null_edit_error.format()}")
    tv_fit = model.fit_report.get("ncm_tv")
    print(f"NCM TV to its training labels' P(V) (saved at fit) {tv_fit if tv_fit is None else f'{tv_fit:.4f}'}; "
          f"to the true P(V) {0.5 * np.abs(model.ncm.table() - w.scm.observational()).sum():.4f}")
    a = w.ascm("eval", oracle=False)
    units = a.units(args.units, 7)
    x = a.factual(units)
    lab = model.label(torch.as_tensor(x))
    print("labeller accuracy (held-out): " + ", ".join(f"{k} {(lab[k].numpy() == units.v[k]).mean():.4f}" for k in lab))
    u = model.image.abduct(torch.as_tensor(x), units.v).numpy()
    h = len(u) // 2
    for k in w.domains.names:
        y = units.v[k]
        acc = probe(u[:h], y[:h], u[h:], y[h:], w.domains.size(k))
        base = np.bincount(y[h:]).max() / len(y[h:])
        print(f"(c) probe: {k} from abducted u_I, held-out accuracy {acc:.3f} (majority baseline {base:.3f})")


if __name__ == "__main__":
    main()
