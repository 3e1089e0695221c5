"""Sampler settings of a trained diffusion mechanism: null-edit MAE, image-stage faithfulness and speed.

For each setting (DDIM steps, inversion fixed-point iterations, guidance, share of the steps inverted) the
mechanism abducts u_I from n held-out world images under their factual factors and generates (a) with the same factors (the null edit:
MAE to the image) and (b) with one factor changed per image (D, C and B in turn, to a random other value),
read by the world's oracle: the share whose reading equals the factor it was generated with. Speed: edits
per second of abduct + generate in one batch. Only the image stage is measured here (no NCM); ``cfedit
evaluate`` measures the whole editor.

    python benchmarks/bench_diffusion.py RUN --world backdoor -n 200 [--state train_state.safetensors]
           [--grid 8:1:1,8:0:1,4:1:1,8:1:2:0.5]   (steps:inversion_iters:guidance[:invert_to])

``--state`` loads the weights of a resumable training state (a snapshot taken during training) instead of
the run's final weights: the quality-against-training-time curve.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np
import torch

from cfedit.editors import checkpoint
from cfedit.runs import Run
from cfedit.worlds import get_world


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run")
    ap.add_argument("--world", default="backdoor")
    ap.add_argument("-n", type=int, default=200)
    ap.add_argument("--state", default=None, help="a train_state.safetensors (snapshot) whose weights to use")
    ap.add_argument("--grid", default="8:1:1", help="comma-separated steps:inversion_iters:guidance[:invert_to]")
    args = ap.parse_args()
    model = Run.load(args.run).editor
    step = "final"
    if args.state:
        state, meta = checkpoint.load_tensors(Path(args.state), model.FORMAT + "-train")
        model.load_state_dict({k[6:]: v for k, v in state.items() if k.startswith("model.")})
        step = meta.get("step")
        for m in model.modules().values():
            m.eval()
    mech = model.image
    w = get_world(args.world)
    a = w.ascm("eval")
    units = a.units(args.n, 12345)
    x = torch.as_tensor(a.factual(units))
    read = a.oracle(x.numpy())
    v = {k: torch.as_tensor(np.asarray(read[k])) for k in w.domains.names}
    g = torch.Generator().manual_seed(0)
    changed = {}
    for k in w.domains.names:  # v with factor k moved to a random other value
        shift = torch.randint(1, w.domains.size(k), (args.n,), generator=g)
        changed[k] = {**v, k: (v[k] + shift) % w.domains.size(k)}
    base = mech.config
    print(f"run {args.run}, weights at step {step}, {args.n} held-out units of {args.world}")
    print("steps iters guidance invert_to | null MAE | faithful D  C  B (one factor changed) | edits/s")
    for spec in args.grid.split(","):
        s, it, gw, to = (spec.split(":") + ["1"])[:4]
        mech.config = dataclasses.replace(base, steps=int(s), inversion_iters=int(it), guidance=float(gw), invert_to=float(to))
        t0 = time.perf_counter()
        u = mech.abduct(x, v)
        null = mech.generate(v, u)
        dt = time.perf_counter() - t0
        mae = (null - x).abs().mean().item()
        faith = []
        for k in w.domains.names:
            out = a.oracle(mech.generate(changed[k], u).numpy())
            faith.append(float(np.mean(np.asarray(out[k]) == changed[k][k].numpy())))
        faithful = "  ".join(f"{f:.3f}" for f in faith)
        print(f"{s:>5} {it:>5} {gw:>8} {to:>9} | {mae:.4f}  | {faithful} | {args.n / dt:.1f}", flush=True)
    mech.config = base


if __name__ == "__main__":
    main()
