import gzip
import struct

import numpy as np
import pytest

from cfedit.data.mnist import load_pools, read_idx
from cfedit.errors import DataError


def test_default_pools_are_disjoint_balanced_and_real():
    pools = load_pools()
    assert pools.train_images.shape == (4000, 28, 28) and pools.eval_images.shape == (1000, 28, 28)
    assert (np.bincount(pools.eval_labels) == 100).all() and (np.bincount(pools.train_labels) == 400).all()
    train = {im.tobytes() for im in pools.train_images}
    assert not any(im.tobytes() in train for im in pools.eval_images)


def _write_idx(path, array, gz=False):
    header = struct.pack(">BBBB", 0, 0, 8, array.ndim) + struct.pack(">" + "I" * array.ndim, *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    (gzip.open if gz else open)(path, "wb").write(data)


def test_idx_folder_loads(tmp_path):
    rng = np.random.default_rng(0)
    _write_idx(tmp_path / "train-images-idx3-ubyte.gz", rng.integers(0, 255, (20, 28, 28)), gz=True)
    _write_idx(tmp_path / "train-labels-idx1-ubyte", np.arange(20) % 10)
    _write_idx(tmp_path / "t10k-images-idx3-ubyte", rng.integers(0, 255, (10, 28, 28)))
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.arange(10))
    pools = load_pools(str(tmp_path))
    assert pools.train_images.shape == (20, 28, 28) and list(pools.eval_labels) == list(range(10))


def test_missing_and_corrupt_folder(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_pools(str(tmp_path / "absent"))
    with pytest.raises(DataError, match="has no train-images-idx3-ubyte"):
        load_pools(str(tmp_path))
    _write_idx(tmp_path / "x", np.zeros((3, 28, 28)))
    raw = (tmp_path / "x").read_bytes()
    (tmp_path / "x").write_bytes(raw[:-5])
    with pytest.raises(DataError, match="corrupt"):
        read_idx(tmp_path / "x")
    (tmp_path / "y").write_bytes(b"not an idx file")
    with pytest.raises(DataError, match="bad magic"):
        read_idx(tmp_path / "y")
