"""Reference networks, kept apart from anything an editor learns (torch is imported inside the functions, so
that the worlds stay importable without it).

* the worlds' oracle readers of factors that pixels alone do not give (e.g. the Colored MNIST digit:
  :class:`cfedit.worlds.colored_mnist.DigitClassifier`);
* the realism feature network (a world image -> its joint factor class), trained on images the world
  renders from its training split (:func:`cfedit.evaluation.realism.feature_net`); its 128-d penultimate
  layer is the feature space of the realism metric (a Frechet distance like FID, but *not* Inception features).

Each is trained once and cached on disk (safetensors), keyed by a hash of their data and settings, in
``$CFEDIT_CACHE`` or ``~/.cache/cfedit``; the package ships the ones its worlds use (:mod:`cfedit.artefacts`),
which are found by the same key before the cache. Construction and training are seeded by the config's seed
(without touching the caller's random state), so two trainings on one machine give the same weights. A
cache entry records the full digest of the data it was trained on and its recipe (settings, classes, image
shape, and :data:`RECIPE`), checked on load: a corrupt entry, or one trained on other data or by another
recipe (e.g. another network put in its place), is retrained and replaced, never trusted. The cache is
cfedit's own derived data, always rebuildable from the data, so a mismatch costs a retraining rather than
an error the user must resolve by hand; a warning names the entry. (The record is not a signature: whoever
can write the cache can also forge it; the shipped networks are checked against the package's manifest.)
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from cfedit.artefacts import shipped_reference
from cfedit.core.files import atomic_write
from cfedit.errors import CfeditError

_log = logging.getLogger("cfedit")


@dataclass(frozen=True, kw_only=True)
class ClassifierConfig:
    """Settings of a reference classifier (the oracles' and readers' CNN) and its training."""

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


def classifier_net(shape: tuple[int, int, int], n_classes: int):
    import torch.nn as nn

    c, h, w = shape
    stride = 2 if min(h, w) > 32 else 1  # images above 32x32 (e.g. 64x64 faces): the first conv strides, 4x fewer operations
    return nn.Sequential(
        nn.Conv2d(c, 32, 5, stride=stride, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * (h // (4 * stride)) * (w // (4 * stride)), 128), nn.ReLU(), nn.Dropout(0.3),
        nn.Linear(128, n_classes),
    )


_FEATURE_LAYERS = 9  # layers up to the 128-d ReLU output
RECIPE = 2  # how a cached network is made: 2 = seeded construction and training (1 built it from the global RNG)


def _seeded_net(shape: tuple[int, int, int], n_classes: int, seed: int):
    """:func:`classifier_net`, its initial weights drawn from ``seed`` (the caller's random state untouched)."""
    from cfedit.rng import seeded

    with seeded(seed):
        return classifier_net(shape, n_classes)


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
        data = h.hexdigest()  # the images and labels
        recipe = json.dumps({"config": asdict(config), "classes": n_classes, "shape": list(shape), "recipe": RECIPE}, sort_keys=True)
        key = h.copy()
        key.update(json.dumps([asdict(config), n_classes]).encode())
        stem = f"{name}-{key.hexdigest()[:16]}"
        shipped = shipped_reference(stem)  # the package's own copy: the same network on every machine
        if shipped is not None:
            net = _seeded_net(shape, n_classes, config.seed)
            net.load_state_dict(load_file(shipped))
            return cls(net, shape)
        path = cache_dir() / f"{stem}.safetensors"
        cached = _load_entry(path, shape, n_classes, data, recipe, config.seed)
        if cached is not None:
            return cls(cached, shape)
        if verbose:
            _log.warning(f"training the reference network {name!r} on {len(x)} images (cached after, in {path.parent})")
        from cfedit.rng import seeded

        with seeded(config.seed):  # seeded construction and dropout, the caller's RNG untouched
            net = classifier_net(shape, n_classes)
            _train_steps(net, x, labels, config, _log.warning if verbose else None)
        atomic_write(path, save({k: v.contiguous() for k, v in net.state_dict().items()},
                                metadata={"data_sha256": data, "recipe": recipe}))
        return cls(net, shape)

    def state(self) -> dict:
        """The network's tensors (for a caller that saves it; :meth:`from_state` rebuilds it)."""
        return {k: v.detach().cpu().contiguous() for k, v in self.net.state_dict().items()}

    @staticmethod
    def on_meta(shape: tuple[int, int, int], n_classes: int) -> dict:
        """The network's tensors for images of ``shape`` and ``n_classes`` classes, on the ``meta`` device:
        every name and shape, no storage (to check a file's header against before reading it)."""
        import torch

        with torch.device("meta"):
            return dict(classifier_net(tuple(shape), n_classes).state_dict())

    @classmethod
    def from_state(cls, state: dict, shape: tuple[int, int, int], n_classes: int) -> ReferenceNet:
        """The network of :meth:`state` for images of ``shape`` and ``n_classes`` classes; tensors that do not
        fit that network raise ``RuntimeError`` (torch's strict load)."""
        net = _seeded_net(tuple(shape), n_classes, 0)
        net.load_state_dict(state)
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
        """The most probable class of each image."""
        return self._forward(images).argmax(axis=1).astype(np.int64)

    def features(self, images: np.ndarray) -> np.ndarray:
        """The 128-d penultimate activations (after ReLU)."""
        return self._forward(images, upto=_FEATURE_LAYERS)


def _load_entry(path: Path, shape: tuple[int, int, int], n_classes: int, data: str, recipe: str, seed: int):
    """The network of a cache entry, if it exists and records this data and recipe; else None (the entry, if
    any, is removed: corrupt, or trained on other data or by another recipe, or by a cfedit that kept no record)."""
    if not path.is_file():
        return None
    from safetensors import safe_open

    try:
        with safe_open(path, framework="pt") as f:
            meta = f.metadata() or {}
            if meta.get("data_sha256") != data or meta.get("recipe") != recipe:
                why = "kept no record of its data" if "data_sha256" not in meta else "was not trained on this data by this recipe"
                _log.warning(f"the cached reference network {path.name} {why}: training it again")
                raise ValueError(why)
            want = {k: tuple(t.shape) for k, t in ReferenceNet.on_meta(shape, n_classes).items()}
            if {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()} != want:  # from the header: nothing read yet
                raise ValueError("other tensors")
            state = {k: f.get_tensor(k) for k in f.keys()}
        net = _seeded_net(shape, n_classes, seed)
        net.load_state_dict(state)
        return net
    except Exception:  # safetensors raises its own error types; a mismatch raised ValueError above
        path.unlink(missing_ok=True)
        return None


def _train_steps(net, images: np.ndarray, labels: np.ndarray, config: ClassifierConfig, log=None) -> None:
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
    t0 = time.time()
    for epoch in range(config.epochs):
        if log is not None and epoch:
            spent = time.time() - t0
            log(f"  reference network: epoch {epoch}/{config.epochs}, {spent:.0f}s elapsed, "
                f"~{spent / epoch * (config.epochs - epoch):.0f}s left")
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
