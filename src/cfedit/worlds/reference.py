"""Reference networks, kept apart from anything an editor learns (torch is imported inside the functions, so
that the worlds stay importable without it).

* the Colored MNIST worlds' oracle digit reader (gray 28x28 -> D), trained on *both* writer pools: it is part of the world,
  whose own handwriting it must read as the truth (``python benchmarks/bench_world.py`` prints its accuracy,
  and that of the same recipe trained on the training pool alone on handwriting it has not seen). Editors
  never see the evaluation pool;
* the realism feature network (a world image -> its joint factor class), trained on images the world
  renders from its training split (:func:`cfedit.evaluation.realism.feature_net`); its 128-d penultimate
  layer is the feature space of the realism metric (a Frechet distance like FID, but *not* Inception features).

Each is trained once and cached on disk (safetensors), keyed by a hash of their data and settings, in
``$CFEDIT_CACHE`` or ``~/.cache/cfedit``. A corrupt cache entry is retrained, never trusted.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from cfedit.core.files import atomic_write
from cfedit.data.mnist import WriterPools
from cfedit.errors import CfeditError

_log = logging.getLogger("cfedit")


@dataclass(frozen=True, kw_only=True)
class ClassifierConfig:
    epochs: int = 12  # passes over the training data
    batch_size: int = 64  # images per step
    lr: float = 2e-3  # peak Adam learning rate (one-cycle schedule)
    shift: int = 2  # random translation (pixels) used as augmentation
    seed: int = 0  # initialisation and batching seed


def cache_dir() -> Path:
    """``$CFEDIT_CACHE``, else ``~/.cache/cfedit``; checked writable (a file is written and removed) before any
    long training, so that a bad setting fails at once with a message instead of after minutes."""
    env = os.environ.get("CFEDIT_CACHE")
    if env:
        d, how = Path(env), f"CFEDIT_CACHE={env}"
    else:
        try:
            d, how = Path.home() / ".cache" / "cfedit", "the default ~/.cache/cfedit"
        except (RuntimeError, KeyError):
            raise CfeditError("no home directory to hold cfedit's cache of reference networks: set CFEDIT_CACHE "
                              "to a writable folder") from None
    try:
        d.mkdir(parents=True, exist_ok=True)
        probe = d / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise CfeditError(f"cannot use {d} ({how}) as the cache of reference networks: {e.strerror or e}; "
                          "set CFEDIT_CACHE to a writable folder") from None
    return d


def _net(shape: tuple[int, int, int], n_classes: int):
    import torch.nn as nn

    c, h, w = shape
    return nn.Sequential(
        nn.Conv2d(c, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * (h // 4) * (w // 4), 128), nn.ReLU(), nn.Dropout(0.3), nn.Linear(128, n_classes),
    )


_FEATURE_LAYERS = 9  # layers up to the 128-d ReLU output


class ReferenceNet:
    """A small CNN classifier (N, C, H, W) in [0, 1] -> class; ``features`` gives its 128-d layer."""

    def __init__(self, net, shape: tuple[int, int, int]):
        self.net = net.eval()
        self.shape = tuple(shape)

    @property
    def fingerprint(self) -> str:
        """A short digest of the weights: figures measured with the same fingerprint used the same network.
        Training on another machine (other CPU kernels, thread counts) can give other weights from the same
        data and seed, and Frechet distances in their features are then not comparable."""
        h = hashlib.sha256()
        for k, t in sorted(self.net.state_dict().items()):
            h.update(k.encode())
            h.update(t.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()[:12]

    @classmethod
    def fit_cached(
        cls, name: str, images: np.ndarray, labels: np.ndarray, n_classes: int,
        config: ClassifierConfig = ClassifierConfig(), verbose: bool = False,
    ) -> ReferenceNet:
        """Load the cached network trained on (images, labels) with ``config``, training it first if needed.
        ``images`` are (N, C, H, W), or (N, H, W) for one channel."""
        from safetensors.torch import load_file, save

        images = np.asarray(images, dtype=np.float32)
        x = images[:, None] if images.ndim == 3 else images
        shape = tuple(x.shape[1:])
        h = hashlib.sha256(x.tobytes())
        h.update(np.asarray(labels, dtype=np.int64).tobytes())
        h.update(json.dumps([asdict(config), n_classes]).encode())
        path = cache_dir() / f"{name}-{h.hexdigest()[:16]}.safetensors"
        net = _net(shape, n_classes)
        if path.is_file():
            try:
                net.load_state_dict(load_file(path))
                return cls(net, shape)
            except Exception:
                path.unlink(missing_ok=True)
        if verbose:
            _log.warning(f"training the reference network {name!r} on {len(x)} images (cached after, in {path.parent})")
        _train(net, x, labels, config)
        atomic_write(path, save({k: v.contiguous() for k, v in net.state_dict().items()}, metadata={"config": json.dumps(asdict(config))}))
        return cls(net, shape)

    def _forward(self, images: np.ndarray, upto: int | None = None) -> np.ndarray:
        import torch

        x = torch.as_tensor(np.asarray(images, dtype=np.float32)).reshape(-1, *self.shape)
        layers = list(self.net) if upto is None else list(self.net)[:upto]
        outs = []
        with torch.no_grad():
            for i in range(0, len(x), 2048):
                h = x[i : i + 2048]
                for layer in layers:
                    h = layer(h)
                outs.append(h.numpy())
        return np.concatenate(outs) if outs else np.zeros((0, 128), np.float32)

    def predict(self, images: np.ndarray) -> np.ndarray:
        return self._forward(images).argmax(axis=1).astype(np.int64)

    def features(self, images: np.ndarray) -> np.ndarray:
        """The 128-d penultimate activations (after ReLU)."""
        return self._forward(images, upto=_FEATURE_LAYERS)


ORACLE_EPOCHS = 20  # the oracle's reader trains longer, so that it reads its own training digits (both pools)


class DigitClassifier(ReferenceNet):
    """The oracle's digit reader: gray 28x28 digits in [0, 1] -> 0-9.

    ``for_pools`` trains on both writer pools (``held_out=False``, the oracle) or on the training pool only
    (``held_out=True``, to measure how the recipe reads handwriting it has not seen).

    Why both pools: preservation and "kept" queries compare the reading of an edit with the reading of its
    factual image. A reader that misreads 2.2% of the factual evaluation digits (the training-pool-only
    reader) charges every editor that does not copy pixels with those misreadings; the world knows its own
    units' digits, so its reader should too.
    """

    @classmethod
    def for_pools(cls, pools: WriterPools, config: ClassifierConfig | None = None, verbose: bool = False,
                  held_out: bool = False):
        if held_out:
            images, labels = pools.train_images, pools.train_labels
        else:
            images = np.concatenate([pools.train_images, pools.eval_images])
            labels = np.concatenate([pools.train_labels, pools.eval_labels])
        config = config or ClassifierConfig(epochs=ORACLE_EPOCHS)
        name = "digits-heldout" if held_out else "digits-oracle"
        return cls.fit_cached(name, images / np.float32(255), labels, 10, config, verbose)


def _train(net, images: np.ndarray, labels: np.ndarray, config: ClassifierConfig) -> None:
    import torch

    with torch.random.fork_rng(devices=[]):  # seeded dropout without touching the caller's RNG
        torch.manual_seed(config.seed)
        _train_steps(net, images, labels, config)


def _train_steps(net, images: np.ndarray, labels: np.ndarray, config: ClassifierConfig) -> None:
    import torch
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(config.seed)
    x = torch.as_tensor(images, dtype=torch.float32)
    h, w = x.shape[2:]
    y = torch.as_tensor(labels, dtype=torch.long)
    opt = torch.optim.Adam(net.parameters(), lr=config.lr)
    steps = config.epochs * ((len(x) + config.batch_size - 1) // config.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, config.lr, total_steps=steps)
    net.train()
    s = config.shift
    for _ in range(config.epochs):
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), config.batch_size):
            idx = perm[i : i + config.batch_size]
            xb = F.pad(x[idx], (s, s, s, s))
            dx, dy = torch.randint(0, 2 * s + 1, (2,), generator=g).tolist()
            xb = xb[:, :, dy : dy + h, dx : dx + w]
            loss = F.cross_entropy(net(xb), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    net.eval()
