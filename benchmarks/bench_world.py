"""Rendering speed and exact-inference time of the worlds.

Run: .venv/bin/python benchmarks/bench_world.py
Targets: >= 5,000 images rendered per second (28x28 RGB, 2 cores); exact P(V) and one exact feature
counterfactual under 1 s each per world. Also prints the oracle's digit-reading accuracy on the evaluation
pool, and that of the same recipe trained on the training pool only (handwriting it has not seen); the
first call trains and caches each reader (about a minute each).
"""

from __future__ import annotations

import time

from cfedit.core.query import parse_query
from cfedit.worlds import get_world, world_names


def best_of(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def reader_accuracy() -> None:
    from cfedit.data.mnist import load_pools
    from cfedit.worlds.colored_mnist import DigitClassifier

    pools = load_pools()
    x, y = pools.eval_images / 255.0, pools.eval_labels
    for held_out, what in ((False, "the oracle's reader (both pools)"), (True, "the same recipe, training pool only")):
        acc = (DigitClassifier.for_pools(pools, held_out=held_out, verbose=True).predict(x) == y).mean()
        print(f"digit reading accuracy on the {len(y):,} evaluation-pool digits, {what}: {acc:.3f}")


def main() -> None:
    reader_accuracy()
    for name in world_names():
        w = get_world(name)
        a = w.ascm("eval", oracle=False)
        units = a.units(20_000, seed=0)
        t = best_of(lambda: a.factual(units))
        print(f"{name:10s} render: {len(units) / t:,.0f} images/s (20,000 units, 3x28x28)")
        t = best_of(lambda: w.scm.counterfactual(units.u, {"C": 0}))
        print(f"{name:10s} true counterfactual factors: {len(units) / t:,.0f} units/s")
        def fresh():  # no caches
            return type(w.scm)(w.scm.graph, w.scm.domains, w.scm.exogenous, w.scm.mechanisms)

        t = best_of(lambda: fresh().observational())
        n_u = len(w.scm.enumerate_u()[1])
        print(f"{name:10s} exact P(V): {t * 1000:.1f} ms ({n_u:,} exogenous points, cold)")
        for text in w.queries:
            q = parse_query(text, w.domains)
            t = best_of(lambda: fresh().probability(q))
            print(f"{name:10s} exact {text}: {t * 1000:.1f} ms (cold)")


if __name__ == "__main__":
    main()
