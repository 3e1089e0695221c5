"""Edit speed of every shipped editor (or the run given): single-image edits as the web editor makes them, each
step of the edit timed (label, abduct U_V, abduct U_I, predict v', predict the image), and batches.

    python benchmarks/bench_edit.py [RUN ...] [--repeats 200] [--batch 256] [--threads 1]

RUN: run folders or pretrained:NAME (default: every shipped editor, ``cfedit pretrained list``). For k = 1 and
k = 8 it prints, per editor: the median ms of each step of one single-image edit and of the whole edit
(``Editor.edit``), single-image edits per second (requests/s) and edited images per second, then the edited
images per second of one batch of ``--batch`` images. On CPU (or the GPU when present); run it alone.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from cfedit.runs import PRETRAINED_PREFIX, Run, list_pretrained

STEPS = ("label", "abduct u_V", "abduct u_I", "predict v'", "predict i'")


def _median_ms(times: list[float]) -> float:
    return 1e3 * float(np.median(times))


@torch.no_grad()
def step_times(editor, x: torch.Tensor, do, k: int, repeats: int) -> dict[str, float]:
    """Median ms of each step of a single-image edit, the steps called as Editor.edit calls them."""
    times: dict[str, list[float]] = {s: [] for s in STEPS}
    for i in range(repeats):
        g = torch.Generator().manual_seed(i)
        xi = x[i % len(x)][None]
        t0 = time.perf_counter()
        v = editor.label(xi)
        t1 = time.perf_counter()
        u_v = editor.ncm.posterior(v, k, g)
        t2 = time.perf_counter()
        u_i = editor.image.abduct(xi, v).repeat_interleave(k, dim=0)
        t3 = time.perf_counter()
        v_cf = editor.ncm.evaluate(u_v, do)
        t4 = time.perf_counter()
        editor.image.generate_distinct(v_cf, u_i)
        t5 = time.perf_counter()
        for s, dt in zip(STEPS, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)):
            times[s].append(dt)
    return {s: _median_ms(t) for s, t in times.items()}


def bench(ref: str, repeats: int, batch: int) -> None:
    run = Run.load(ref)
    editor, world = run.editor, run.world
    if world is None:
        raise SystemExit(f"{ref}: the run belongs to no registered world, so there are no images to edit here")
    a = world.ascm("eval", oracle=False)
    x = torch.as_tensor(a.factual(a.units(max(batch, 12), 0)))
    f = editor.domains.names[0]
    do = editor.act({f: editor.domains.values(f)[-1]} if not editor.domains.is_continuous(f) else {})
    for k in (1, 8):
        for i in range(10):  # warm-up
            editor.edit(x[i % 12][None], do, k, seed=i)
        steps = step_times(editor, x[:12], do, k, repeats)
        lat = []
        for i in range(repeats):
            t = time.perf_counter()
            editor.edit(x[i % 12][None], do, k, seed=i)
            lat.append(time.perf_counter() - t)
        t = time.perf_counter()
        editor.edit(x[:batch], do, k, seed=0)
        dt = time.perf_counter() - t
        edit_ms = _median_ms(lat)
        print(f"{run.name:10s} k={k}  " + "  ".join(f"{s} {ms:.2f}" for s, ms in steps.items())
              + f"  | edit {edit_ms:.2f} ms (p95 {1e3 * np.percentile(lat, 95):.2f}): {1e3 / edit_ms:,.0f} requests/s, "
              f"{k * 1e3 / edit_ms:,.0f} edited images/s | batch of {batch}: {batch * k / dt:,.0f} edited images/s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="*", help="run folders or pretrained:NAME [default: every shipped editor]")
    ap.add_argument("--repeats", type=int, default=200, help="single-image edits timed per k")
    ap.add_argument("--batch", type=int, default=256, help="images of the batch timed")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    refs = a.runs or [PRETRAINED_PREFIX + e.name for e in list_pretrained()]
    print(f"median ms of each step of a single-image edit; {a.repeats} edits per k; torch threads {a.threads}; "
          f"device {'cuda' if torch.cuda.is_available() else 'cpu'}")
    for ref in refs:
        bench(ref, a.repeats, a.batch)


if __name__ == "__main__":
    main()
