"""The reference digit classifier of the worlds' oracle (and the feature space of the realism metric).

Trained only on the *training* writer pool, kept apart from anything an editor learns, and cached on
disk after the first training (safetensors + JSON), keyed by a hash of its data and settings.
The cache folder is ``$CFEDIT_CACHE`` or ``~/.cache/cfedit``.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from cfedit.mnist import WriterPools


@dataclass(frozen=True, kw_only=True)
class ClassifierConfig:
    epochs: int = 12  # passes over the training pool
    batch_size: int = 64  # images per step
    lr: float = 2e-3  # Adam learning rate
    shift: int = 2  # random translation (pixels) used as augmentation
    seed: int = 0  # initialisation and batching seed


def cache_dir() -> Path:
    d = Path(os.environ.get("CFEDIT_CACHE", Path.home() / ".cache" / "cfedit"))
    d.mkdir(parents=True, exist_ok=True)
    return d


def _net():
    import torch.nn as nn

    return nn.Sequential(
        nn.Conv2d(1, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Dropout(0.3), nn.Linear(128, 10),
    )


class DigitClassifier:
    """Gray 28x28 digits in [0, 1] -> digit 0-9. ``features`` gives the 128-d penultimate layer."""

    def __init__(self, net):
        self.net = net.eval()

    @classmethod
    def for_pools(cls, pools: WriterPools, config: ClassifierConfig = ClassifierConfig(), verbose: bool = False):
        """Load the cached classifier for these pools and settings, training it first if needed."""
        import torch
        from safetensors.torch import load_file, save_file

        key = f"digits-{pools.fingerprint}-" + _config_hash(config)
        path = cache_dir() / f"{key}.safetensors"
        net = _net()
        if path.is_file():
            try:
                net.load_state_dict(load_file(path))
                return cls(net)
            except Exception:  # a corrupt cache entry is retrained, never trusted
                path.unlink(missing_ok=True)
        if verbose:
            print(f"training the reference digit classifier on {len(pools.train_images)} images (cached after)")
        _train(net, pools.train_images, pools.train_labels, config)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        os.close(fd)
        save_file({k: v.contiguous() for k, v in net.state_dict().items()}, tmp, metadata={"config": json.dumps(asdict(config))})
        os.replace(tmp, path)
        return cls(net)

    def _forward(self, gray: np.ndarray, upto: int | None = None) -> np.ndarray:
        import torch

        x = torch.as_tensor(np.asarray(gray, dtype=np.float32)).reshape(-1, 1, 28, 28)
        layers = list(self.net) if upto is None else list(self.net)[:upto]
        outs = []
        with torch.no_grad():
            for i in range(0, len(x), 2048):
                h = x[i : i + 2048]
                for layer in layers:
                    h = layer(h)
                outs.append(h.numpy())
        return np.concatenate(outs) if outs else np.zeros((0, 10), np.float32)

    def predict(self, gray: np.ndarray) -> np.ndarray:
        """Digit codes for gray images (N, 28, 28) in [0, 1]."""
        return self._forward(gray).argmax(axis=1).astype(np.int64)

    def features(self, gray: np.ndarray) -> np.ndarray:
        """The 128-d penultimate activations (after ReLU) used as the realism feature space."""
        return self._forward(gray, upto=9)


def _config_hash(config: ClassifierConfig) -> str:
    import hashlib

    return hashlib.sha256(json.dumps(asdict(config), sort_keys=True).encode()).hexdigest()[:8]


def _train(net, images: np.ndarray, labels: np.ndarray, config: ClassifierConfig) -> None:
    import torch
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)
    x = torch.as_tensor(images, dtype=torch.float32).div(255).unsqueeze(1)
    y = torch.as_tensor(labels, dtype=torch.long)
    opt = torch.optim.Adam(net.parameters(), lr=config.lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, config.lr, total_steps=config.epochs * ((len(x) + config.batch_size - 1) // config.batch_size))
    net.train()
    s = config.shift
    for _ in range(config.epochs):
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), config.batch_size):
            idx = perm[i : i + config.batch_size]
            xb = F.pad(x[idx], (s, s, s, s))
            dx, dy = torch.randint(0, 2 * s + 1, (2,), generator=g).tolist()
            xb = xb[:, :, dy : dy + 28, dx : dx + 28]
            loss = F.cross_entropy(net(xb), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    net.eval()
