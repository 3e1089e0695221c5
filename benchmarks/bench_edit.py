"""Edits per second in batch and the latency of one edit, on CPU (or the GPU when present).

    python benchmarks/bench_edit.py [CHECKPOINT]   # default: runs/demo/editor, else a tiny model trained here
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from cfedit.editors.ancm import ANCM, ANCMConfig
from cfedit.worlds import get_world


def main() -> None:
    w = get_world("backdoor")
    ckpt = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("runs/demo/editor")
    model = ANCM.load(ckpt) if ckpt.is_dir() else ANCM.fit(
        w.graph, w.dataset(2000), ANCMConfig(steps=20), log=None)
    a = w.ascm("eval", oracle=False)
    units = a.units(4096, 0)
    x = a.factual(units)
    model.edit(x[:256], {"C": 0}, 1, labels={k: v[:256] for k, v in units.v.items()})  # warm-up
    for labelled in (True, False):
        t = time.perf_counter()
        model.edit(x, {"C": 0}, 1, labels=units.v if labelled else None)
        dt = time.perf_counter() - t
        print(f"batch of {len(x)} edits ({'labels given' if labelled else 'labeller reads v'}): "
              f"{len(x) / dt:,.0f} edits/s on {model.device}")
    lat = []
    for i in range(50):
        t = time.perf_counter()
        model.edit(x[i : i + 1], {"C": 0}, 1)
        lat.append(time.perf_counter() - t)
    print(f"latency of one edit (labeller included): median {1e3 * np.median(lat):.1f} ms, "
          f"p95 {1e3 * np.percentile(lat, 95):.1f} ms")


if __name__ == "__main__":
    main()
