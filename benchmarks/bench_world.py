"""Rendering speed and exact-inference time of the worlds.

Run: .venv/bin/python benchmarks/bench_world.py [WORLD ...]
Targets: >= 5,000 images rendered per second (28x28 RGB, 2 cores; 64x64 faces: >= 1,000, each drawn at
128x128 and downsampled); the oracle reads every factor of >= 99% of evaluation units; exact P(V) and one exact feature
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


def oracle_accuracy(w, n: int = 5000) -> None:
    """The oracle's reading of every factor on n units of the evaluation split (identities / handwriting
    that the editors never train on), with 95% Wilson intervals."""
    from cfedit.evaluation.metrics import wilson

    a = w.ascm("eval")
    units = a.units(n, seed=12345)
    read = a.oracle(a.factual(units))
    for k, acc in w.oracle_accuracy(units.v, read).items():
        e = wilson(round(acc * n), n)
        print(f"{w.name:10s} oracle accuracy {k}: {acc:.4f} [{e.lower:.4f}, {e.upper:.4f}] on {n:,} evaluation units")


def main(names: list[str]) -> None:
    if any(get_world(n).name in ("backdoor", "frontdoor") for n in names):
        reader_accuracy()
    for name in names:
        w = get_world(name)
        oracle_accuracy(w)
        a = w.ascm("eval", oracle=False)
        units = a.units(20_000, seed=0)
        t = best_of(lambda: a.factual(units))
        print(f"{name:10s} render: {len(units) / t:,.0f} images/s (20,000 units, {'x'.join(map(str, w.image_shape))})")
        t = best_of(lambda: w.scm.counterfactual(units.u, w.domains.encode(w.figure_actions[0])))
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
    import sys

    main(sys.argv[1:] or list(world_names()))
