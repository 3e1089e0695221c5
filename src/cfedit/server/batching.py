"""Request batching for the web editor: concurrent edits gathered for a short window and run as one pass.

A :class:`Batcher` holds a queue and a few worker threads. A request thread submits its item
(:meth:`Batcher.submit`) and waits; a worker takes the first item waiting, gathers those that arrive within
``window`` seconds (up to ``max_items``), runs them together and hands each request its own result. The
per-request cost of an edit is mostly the fixed cost of many small operations, so a batch of n costs far less
than n lone edits.

A batch whose run fails (one bad item among good ones) is run again item by item, so each request gets its own
result or its own error, never a neighbour's.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class Batcher(Generic[Item, Result]):
    """Runs ``run(items) -> results`` (one result per item, in order) on batches of submitted items: at most
    ``max_items`` gathered for at most ``window`` seconds after the first, by ``workers`` threads at once."""

    def __init__(self, run: Callable[[list[Item]], list[Result]], *, window: float, max_items: int, workers: int):
        if window < 0 or max_items < 1 or workers < 1:
            raise ValueError(f"Batcher needs window >= 0, max_items >= 1, workers >= 1; got {window}, {max_items}, {workers}")
        self.run, self.window, self.max_items = run, window, max_items
        self._queue: queue.SimpleQueue[tuple[Item, Future]] = queue.SimpleQueue()
        self.sizes: list[int] = []  # the size of each batch run (for tests and benchmarks; bounded below)
        for i in range(workers):
            threading.Thread(target=self._work, name=f"cfedit-batch-{i}", daemon=True).start()

    def submit(self, item: Item) -> Result:
        """Queue ``item``, wait for its batch and return its result (or raise its error)."""
        done: Future = Future()
        self._queue.put((item, done))
        return done.result()

    def _work(self) -> None:
        while True:
            batch = [self._queue.get()]
            deadline = time.monotonic() + self.window
            while len(batch) < self.max_items:
                left = deadline - time.monotonic()
                try:
                    batch.append(self._queue.get(timeout=left) if left > 0 else self._queue.get_nowait())
                except queue.Empty:
                    break
            self._run(batch)

    def _run(self, batch: list[tuple[Item, Future]]) -> None:
        if len(self.sizes) < 100_000:
            self.sizes.append(len(batch))
        try:
            results = self.run([item for item, _ in batch])
        except Exception:  # noqa: BLE001 - someone's item failed: each alone, so each gets its own answer
            for item, done in batch:
                try:
                    done.set_result(self.run([item])[0])
                except Exception as e:  # noqa: BLE001 - handed to the request that owns it
                    done.set_exception(e)
            return
        for (_, done), result in zip(batch, results):
            done.set_result(result)
