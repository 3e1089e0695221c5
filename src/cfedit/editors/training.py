"""Training of an editor's learned parts: the loop, its counterfactual-consistency term, resumable state.

One loop for every image backend: each step draws a batch, adds the mechanism's loss (per pixel), the
labeller's loss and, when the mechanism can edit differentiably, the counterfactual-consistency term.
Runs in one process or under ``torchrun`` with DistributedDataParallel (gloo on CPU, NCCL on GPUs; only
rank 0 writes); writes a resumable state every ``checkpoint_every`` steps and resumes from it.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import math
import os
import socket
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from torch.optim.lr_scheduler import LambdaLR

from cfedit.core.files import atomic_write, storage_error
from cfedit.editors import checkpoint
from cfedit.errors import CfeditError, CheckpointError
from cfedit.imaging import DifferentiableEdit, ImageMechanism, Labeller

STATE_FILE = checkpoint.STATE_FILE
_log = logging.getLogger("cfedit")

Log = Callable[[str], None]


def default_log(message: str) -> None:
    _log.info(message)


class ImageStage(nn.Module):
    """One module for DDP: the image mechanism's and labeller's losses on a batch, plus the
    counterfactual-consistency term: the abducted u_I generated with resampled factors v' must read as v'
    to the labeller, held fixed for this term (its weights detached) so that the generator cannot satisfy
    it by degrading the labeller. The factors that changed count fully; those the edit keeps count with weight
    ``ctf_keep`` (default 0, so that a faithful reconstruction of an ambiguous image is not pushed towards a
    prototype of its label). A mechanism whose edits keep the image's own pixels (the VAE's residual latent)
    can change a kept factor's look by what it adds for another factor, which ``ctf_keep`` > 0 penalises."""

    def __init__(self, image: ImageMechanism, labeller: Labeller, ctf_weight: float = 0.0, ctf_fraction: float = 1.0,
                 ctf_keep: float = 0.0):
        super().__init__()
        if not 0.0 < ctf_fraction <= 1.0:
            raise CfeditError(f"ctf_fraction must be in (0, 1], got {ctf_fraction}")
        if ctf_weight > 0 and not isinstance(image, DifferentiableEdit):
            raise CfeditError(f"the {image.kind!r} mechanism cannot edit differentiably: set ctf_weight = 0")
        self.image, self.labeller, self.ctf_weight, self.ctf_fraction = image, labeller, ctf_weight, ctf_fraction
        self.ctf_keep = ctf_keep

    def forward(self, images: torch.Tensor, v: Mapping[str, torch.Tensor]) -> torch.Tensor:
        loss = self.image.loss(images, v) + self.labeller.loss(images, v)
        if self.ctf_weight > 0:
            n = max(1, round(self.ctf_fraction * len(images)))  # batches are drawn at random: the first n are a random share
            loss = loss + self.ctf_weight * self.counterfactual_loss(images[:n], {k: t[:n] for k, t in v.items()})
        return loss

    def counterfactual_loss(self, images: torch.Tensor, v: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The labeller's negative log-likelihood of v' on the edits to v': v' uniform over each categorical
        factor's values, and for a continuous factor another image's value in the batch (its marginal: the
        values the labeller has learnt to read). A continuous factor's term is half the squared error of the
        labeller's mean in units of half its interval (a Gaussian of unit scale there), not its learnt
        likelihood: that one's small learnt scale would make the term dwarf the image loss and teach the
        generator patterns that fool the frozen labeller instead of strokes."""
        domains = self.image.domains
        n = len(images)
        v_new = {k: (torch.as_tensor(v[k], device=images.device).float()[torch.randperm(n, device=images.device)]
                     if domains.is_continuous(k) else torch.randint(0, domains.size(k), (n,), device=images.device))
                 for k in domains.names}
        edits = self.image.edit_images(images, v, v_new)  # type: ignore[attr-defined]
        frozen = {n: p.detach() for n, p in self.labeller.named_parameters()}
        read = torch.func.functional_call(self.labeller, frozen, (edits,))
        total = images.new_zeros(())
        for k in domains.names:
            changed = (v_new[k] != torch.as_tensor(v[k], device=images.device)).float()
            weight = changed + self.ctf_keep * (1 - changed)
            if domains.is_continuous(k):
                c = domains.continuous(k)
                nll = 0.5 * ((read[k].mean - v_new[k]) / ((c.hi - c.lo) / 2)) ** 2
            else:
                nll = -read[k].log_prob(v_new[k])
            total = total + (nll * weight).sum() / len(images)
        return total


def cosine_with_warmup(steps: int) -> Callable[[int], float]:
    """The learning rate's factor at each step (``LambdaLR``'s ``lr_lambda``): a linear warm-up over steps // 50 steps
    (at least one), then cosine decay towards 0 at ``steps``."""
    warm = max(1, steps // 50)

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, steps - warm)))

    return factor


def optimiser(model: Any) -> tuple[torch.optim.Adam, LambdaLR]:
    """Adam over the trainable parameters of ``model``'s image mechanism and labeller (an EMA's copies are not
    trained), at ``config.lr`` scaled by :func:`cosine_with_warmup`; both go into the resumable state."""
    params = [p for m in (model.image, model.labeller) for p in m.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=model.config.lr)
    return opt, LambdaLR(opt, cosine_with_warmup(model.config.steps))


def init_distributed() -> tuple[int, int]:
    """(rank, world size): (0, 1) in one process; under torchrun, the process group is set up once."""
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), dist.get_world_size()


@dataclass(frozen=True, kw_only=True)
class TrainingJob:
    """One training's data and placement: what the image stage needs beside the model and its optimiser."""

    images: torch.Tensor  # (N, C, H, W) in [0, 1]
    labels: Mapping[str, torch.Tensor]  # (N,) codes per factor
    data: str  # digest of images and labels (data_digest): a resumed training must see the same data
    out: Path | None = None  # folder of the resumable checkpoints (rank 0 writes them); None: none written
    rank: int = 0  # this process's rank under torchrun
    world: int = 1  # processes under torchrun
    log: Log = default_log  # progress lines


def train_image_stage(model: Any, opt: torch.optim.Optimizer, sched: LambdaLR, job: TrainingJob, start: int = 0) -> None:
    """Steps ``start``..``config.steps`` of the image stage of ``model`` (an editor with ``image``,
    ``labeller``, ``config``, ``device``) with the optimiser and schedule of :func:`optimiser`, checkpointing into
    ``job.out`` on rank 0."""
    config = model.config
    images, labels, out, rank, world, log, data = job.images, job.labels, job.out, job.rank, job.world, job.log, job.data
    trainer: nn.Module = ImageStage(model.image, model.labeller, config.ctf_weight, config.ctf_fraction, config.ctf_keep)
    if world > 1:
        trainer = nn.parallel.DistributedDataParallel(trainer, device_ids=[model.device.index] if model.device.type == "cuda" else None)
    t0, loss_avg = time.time(), None
    t_mark, step_mark = t0, start  # time left from the pace since the last progress line, not since the start
    per_rank = max(1, config.batch_size // world)
    for step in range(start, config.steps):
        g = torch.Generator().manual_seed(config.seed * 1_000_003 + step)
        idx = torch.randint(0, len(images), (per_rank * world,), generator=g)[rank::world]
        xb = images[idx].to(model.device)
        vb = {k: t[idx].to(model.device) for k, t in labels.items()}
        loss = trainer(xb, vb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        model.image.after_step()
        loss_avg = loss.item() if loss_avg is None else 0.95 * loss_avg + 0.05 * loss.item()
        done = step + 1
        if done % config.log_every == 0 or done == config.steps:
            now = time.time()
            rate = (now - t_mark) / (done - step_mark)
            t_mark, step_mark = now, done
            log(f"image step {done}/{config.steps}  loss {loss_avg:.4f}  "
                f"{now - t0:.0f}s elapsed, ~{rate * (config.steps - done):.0f}s left")
        if out is not None and rank == 0 and (done % config.checkpoint_every == 0) and done < config.steps:
            save_state(model, opt, sched, out / STATE_FILE, done, True, data)


LOCK_FILE = ".cfedit-training.lock"


@contextmanager
def run_lock(folder: Path | None) -> Iterator[None]:
    """Hold the run folder ``folder`` for one training at a time: a second training into the same folder is
    refused at once, naming the holder (process id, host, start time, which the holder writes into the lock
    file), instead of the two corrupting each other's files. An advisory ``fcntl.flock`` lock: the system
    releases it when the holder exits, however it ends, so a killed training never leaves the folder locked.
    Where ``fcntl`` is missing (Windows) nothing is locked. None: no folder, nothing to lock."""
    try:
        import fcntl
    except ImportError:  # not POSIX
        fcntl = None  # type: ignore[assignment]
    if folder is None or fcntl is None:
        yield
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as e:
        raise storage_error(e, f"cannot lock the run folder {folder}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 4096, 0).decode(errors="replace").strip() or "another process"
            raise CheckpointError(f"{folder} is in use by another training ({holder}): wait for it to end, "
                                  "or train into another folder") from None
        except OSError:  # a file system without locks (some network mounts): train unlocked, as before
            yield
            return
        os.ftruncate(fd, 0)
        started = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}, started {started}\n".encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # releases the lock


def data_digest(images: torch.Tensor, labels: Mapping[str, torch.Tensor]) -> str:
    """A digest of the training data (images and labels), so that a run resumes only on the same data."""
    h = hashlib.sha256(str(tuple(images.shape)).encode())
    h.update(memoryview(images.detach().cpu().contiguous().numpy()).cast("B"))  # no copy of the data
    for k in sorted(labels):
        h.update(k.encode())
        h.update(memoryview(labels[k].detach().cpu().contiguous().numpy()).cast("B"))
    return h.hexdigest()


_NOT_TRAINING = ("log_every", "checkpoint_every")  # settings a resumed run may change


def _fingerprint(model: Any, data: str) -> dict[str, str]:
    cfg = {k: v for k, v in model.config.to_dict().items() if k not in _NOT_TRAINING}
    return {"config": json.dumps(cfg, sort_keys=True), "domains": json.dumps(model.domains.as_dict()),
            "graph": model.graph.to_line(), "data": data}


def save_state(model: Any, opt: torch.optim.Optimizer, sched: LambdaLR, path: Path, step: int, ncm_done: bool, data: str) -> None:
    """The resumable training state: weights (an EMA's too: it is part of the model), Adam's moments and settings,
    the learning-rate schedule's state, the step; config, domains, graph and a digest of the data in the metadata."""
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    sd = opt.state_dict()
    for i, st in sd["state"].items():
        for name, t in st.items():
            tensors[f"opt.{i}.{name}"] = torch.as_tensor(t).detach().cpu().contiguous()
    meta = {"format": model.FORMAT + "-train", "step": step, "ncm_done": bool(ncm_done), **_fingerprint(model, data),
            "optimizer": json.dumps(sd["param_groups"]), "scheduler": json.dumps(sched.state_dict())}
    atomic_write(path, checkpoint.safetensors_bytes(tensors, meta))


def load_state(model: Any, opt: torch.optim.Optimizer, sched: LambdaLR, path: Path, data: str) -> tuple[int, bool]:
    """Restore a state written by :func:`save_state` for the same config, graph and data; (step, ncm done)."""
    weights = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    try:  # the weights and Adam's two moments of each: a file announcing more is refused from its header
        state, meta = checkpoint.load_tensors(path, model.FORMAT + "-train", max_bytes=3 * weights + (1 << 20))
    except CheckpointError as e:
        raise CheckpointError(f"{e}; delete {path} or train into a new folder (--no-resume)") from None
    theirs, ours = {k: meta.get(k) for k in ("config", "graph", "domains", "data")}, _fingerprint(model, data)
    differ = [k for k in ours if theirs[k] != ours[k]]
    if differ:
        raise CheckpointError(f"{path} was written by a run with other {' and '.join(differ)}; "
                              "train into a new folder, or start afresh here (--no-resume, resume=False)")
    if "scheduler" not in meta or "optimizer" not in meta:
        raise CheckpointError(f"{path} was written by an older cfedit, without the learning-rate schedule's state: "
                              "start afresh here (--no-resume, resume=False) or train into a new folder")
    try:
        model.load_state_dict({k[6:]: v.to(model.device) for k, v in state.items() if k.startswith("model.")})
        sd = opt.state_dict()
        sd["param_groups"] = json.loads(meta["optimizer"])
        for key, t in state.items():
            if key.startswith("opt."):
                _, i, name = key.split(".", 2)
                sd["state"].setdefault(int(i), {})[name] = t if name == "step" else t.to(model.device)
        opt.load_state_dict(sd)
        sched.load_state_dict(json.loads(meta["scheduler"]))
    except (RuntimeError, ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"{path} does not match this model: {str(e)[:300]}") from None
    return int(meta.get("step", 0)), bool(meta.get("ncm_done"))
