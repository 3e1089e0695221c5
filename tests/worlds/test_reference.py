"""The cache of reference networks: a folder that cannot be written is refused at once, with a message."""

import numpy as np
import pytest

from cfedit.errors import CfeditError
from cfedit.worlds.reference import cache_dir


def test_cache_dir_is_checked_before_any_work(tmp_path, monkeypatch):
    monkeypatch.setenv("CFEDIT_CACHE", str(tmp_path / "ok"))
    assert cache_dir() == tmp_path / "ok" and (tmp_path / "ok").is_dir()
    (tmp_path / "file").write_text("")
    for bad in (tmp_path / "file" / "sub", "/dev/null", "/proc/cfedit"):
        monkeypatch.setenv("CFEDIT_CACHE", str(bad))
        with pytest.raises(CfeditError, match="CFEDIT_CACHE"):
            cache_dir()


def test_no_home_directory_is_a_message(monkeypatch):
    monkeypatch.delenv("CFEDIT_CACHE", raising=False)
    monkeypatch.delenv("HOME", raising=False)
    monkeypatch.setattr("pathlib.Path.home", classmethod(lambda cls: (_ for _ in ()).throw(RuntimeError("no home"))))
    with pytest.raises(CfeditError, match="set CFEDIT_CACHE"):
        cache_dir()


def test_fingerprint_names_the_weights():
    import torch

    from cfedit.worlds.reference import ReferenceNet, classifier_net

    torch.manual_seed(0)
    a = ReferenceNet(classifier_net((1, 8, 8), 2), (1, 8, 8))
    b = ReferenceNet(classifier_net((1, 8, 8), 2), (1, 8, 8))
    b.net.load_state_dict(a.net.state_dict())
    assert a.fingerprint == b.fingerprint and len(a.fingerprint) == 12
    with torch.no_grad():
        next(b.net.parameters()).add_(1e-6)
    assert a.fingerprint != b.fingerprint


def test_networks_stride_their_first_convolution_above_32_pixels():
    """64x64 images (faces) cost the reference net and the labeller a quarter of the operations of a
    stride-1 first layer; 28x28 networks (MNIST, and their saved checkpoints) are unchanged."""
    import torch

    from cfedit.core.domains import Domains
    from cfedit.imaging import Labeller
    from cfedit.worlds.reference import classifier_net

    dom = Domains({"A": ["0", "1"], "B": ["x", "y", "z"]})
    for shape, stride in (((1, 28, 28), 1), ((3, 28, 28), 1), ((3, 64, 64), 2)):
        net = classifier_net(shape, 8)
        assert net[0].stride == (stride, stride)
        assert net(torch.zeros(2, *shape)).shape == (2, 8)
        lab = Labeller(dom, shape)
        assert lab.body[0].stride == (stride, stride)
        out = lab(torch.zeros(2, *shape))
        assert out["B"].probs.shape == (2, 3)


def _tiny(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, 96)
    images = rng.random((96, 1, 8, 8), dtype=np.float32) * 0.2 + labels[:, None, None, None] * 0.5
    return images, labels


TINY = dict(epochs=2, batch_size=32)


def test_two_trainings_into_empty_caches_give_the_same_network(tmp_path, monkeypatch):
    """Construction and training are seeded: the caller's random state (here, drawn from in between) changes
    nothing, and the library leaves that state as it found it."""
    import torch

    from cfedit.worlds.reference import ClassifierConfig, ReferenceNet

    images, labels = _tiny(0)
    prints = []
    for i in range(2):
        monkeypatch.setenv("CFEDIT_CACHE", str(tmp_path / f"cache{i}"))
        torch.rand(7 + i)  # the caller's own draws
        before = torch.random.get_rng_state()
        prints.append(ReferenceNet.fit_cached("tiny", images, labels, 2, ClassifierConfig(**TINY)).fingerprint)
        assert torch.equal(torch.random.get_rng_state(), before)
    assert prints[0] == prints[1]
    assert ReferenceNet.fit_cached("tiny", images, labels, 2, ClassifierConfig(**TINY, seed=1)).fingerprint != prints[0]


def test_a_cache_entry_of_other_data_put_in_place_is_retrained(tmp_path, monkeypatch, caplog):
    from cfedit.worlds.reference import ClassifierConfig, ReferenceNet

    monkeypatch.setenv("CFEDIT_CACHE", str(tmp_path / "cache"))
    images, labels = _tiny(0)
    honest = ReferenceNet.fit_cached("tiny", images, labels, 2, ClassifierConfig(**TINY)).fingerprint
    (entry,) = (tmp_path / "cache").glob("tiny-*.safetensors")
    monkeypatch.setenv("CFEDIT_CACHE", str(tmp_path / "other"))
    other = ReferenceNet.fit_cached("tiny", *_tiny(1), 2, ClassifierConfig(**TINY)).fingerprint
    (poison,) = (tmp_path / "other").glob("tiny-*.safetensors")
    assert other != honest
    entry.write_bytes(poison.read_bytes())  # a valid network, trained on other data, in the entry's place
    monkeypatch.setenv("CFEDIT_CACHE", str(tmp_path / "cache"))
    with caplog.at_level("WARNING", logger="cfedit"):
        again = ReferenceNet.fit_cached("tiny", images, labels, 2, ClassifierConfig(**TINY))
    assert again.fingerprint == honest and "was not trained on this data" in caplog.text
    assert ReferenceNet.fit_cached("tiny", images, labels, 2, ClassifierConfig(**TINY)).fingerprint == honest  # replaced


def test_a_full_disk_under_the_cache_is_one_message(tmp_path, monkeypatch):
    import errno

    from cfedit.errors import StorageError
    from cfedit.worlds.reference import ClassifierConfig, ReferenceNet

    monkeypatch.setenv("CFEDIT_CACHE", str(tmp_path))

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("os.fsync", full)
    with pytest.raises(StorageError, match=r"cannot write .*tiny-.*\.safetensors: No space left on device"):
        ReferenceNet.fit_cached("tiny", *_tiny(0), 2, ClassifierConfig(**TINY))
    assert not list(tmp_path.glob(".*.tmp"))
