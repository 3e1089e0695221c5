"""Seeded work without touching the caller's random state (docs: development/design.md: nothing in the library changes
process-global state behind the caller's back)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run the block with torch's global generators (CPU and every CUDA device) seeded by ``seed``, and
    restore the caller's states afterwards."""
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield
