"""Memory an editor will need, estimated before anything is allocated, and the memory there is.

An estimate counts the parameters of the networks a config builds (built on torch's ``meta`` device: shapes
without storage, so a config asking for 50 GB costs nothing to count), the gradients and Adam moments of
training, and a rough figure for the activations of one training step. A config whose estimate exceeds the
memory available is refused with both figures before its networks are built.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from cfedit.errors import CfeditError

GiB = 1 << 30
ADAM_COPIES = 3  # a trained parameter also holds a gradient and Adam's two moments


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes an editor needs: its weights (parameters and buffers), what training adds, and activations."""

    weights: int  # parameters and buffers, as stored
    trainable: int  # bytes of the parameters an optimiser updates
    activations: int  # rough: one training step's activations (0 when not estimated)

    @property
    def inference(self) -> int:
        return self.weights

    @property
    def training(self) -> int:
        return self.weights + ADAM_COPIES * self.trainable + self.activations

    def describe(self, training: bool) -> str:
        if not training:
            return f"{self.weights / GiB:.2f} GiB of weights"
        act = f" + ~{self.activations / GiB:.2f} GiB of activations" if self.activations else ""
        return (f"{self.training / GiB:.2f} GiB ({self.weights / GiB:.2f} GiB of weights, "
                f"{ADAM_COPIES * self.trainable / GiB:.2f} GiB of gradients and Adam moments{act})")


def available_bytes(device: object = "cpu") -> int | None:
    """Memory free for this process on ``device``: the GPU's free memory for a CUDA device; else the
    system's ``MemAvailable`` (``/proc/meminfo``), bounded by a cgroup (container) limit, falling back to
    the free physical pages. None when it cannot be told (then nothing is refused)."""
    kind = getattr(device, "type", str(device).split(":")[0])
    if kind == "cuda":
        import torch

        try:
            return int(torch.cuda.mem_get_info(device)[0])
        except (RuntimeError, AssertionError, ValueError):
            return None
    if kind != "cpu":
        return None
    free = _meminfo_available()
    if free is None:
        try:
            free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            return None
    limit = _cgroup_room()
    return min(free, limit) if limit is not None else free


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cgroup_room() -> int | None:
    """What a cgroup-v2 memory limit leaves this process's group, if there is one."""
    try:
        with open("/sys/fs/cgroup/memory.max") as f:
            limit = f.read().strip()
        if limit == "max":
            return None
        with open("/sys/fs/cgroup/memory.current") as f:
            return max(0, int(limit) - int(f.read().strip()))
    except (OSError, ValueError):
        return None


def check_memory(estimate: MemoryEstimate, device: object, what: str, training: bool) -> None:
    """Refuse (:class:`CfeditError`) when ``estimate`` exceeds the memory available on ``device``; the
    message gives both figures and ``what`` is being built."""
    need = estimate.training if training else estimate.inference
    free = available_bytes(device)
    if free is not None and need > free:
        doing = "training" if training else "loading"
        raise CfeditError(f"{what}: {doing} it needs about {estimate.describe(training)}, but {free / GiB:.2f} GiB of "
                          f"memory is available on {device}; lower the sizes in the config (e.g. [ncm] hidden, "
                          "[image] width, batch_size) or use a machine with more memory")
