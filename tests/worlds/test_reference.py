"""The cache of reference networks: a folder that cannot be written is refused at once, with a message."""

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
