"""The user-data reader: saved to a folder and read back without unpickling; anything else is refused."""

import json
import shutil

import numpy as np
import pytest

from cfedit.errors import CheckpointError
from cfedit.evaluation.reader import Reader
from cfedit.worlds import get_world


@pytest.fixture(scope="module")
def data():
    return get_world("backdoor").dataset(300, seed=4)


@pytest.fixture(scope="module")
def saved(data, tmp_path_factory):
    reader = Reader.fit(data, epochs=1, seed=3)
    return reader, reader.save(tmp_path_factory.mktemp("reader") / "r")


def test_a_saved_reader_reads_as_the_original(data, saved):
    reader, folder = saved
    back = Reader.load(folder)
    assert back.domains.names == reader.domains.names == ("D", "C", "B")  # the order fixes the joint class
    assert back.domains == reader.domains and back.image_shape == (3, 28, 28) and back.fingerprint == reader.fingerprint
    a, b = reader(data.images[:50]), back(data.images[:50])
    assert all(np.array_equal(a[k], b[k]) for k in a)
    np.testing.assert_array_equal(reader.features(data.images[:5]), back.features(data.images[:5]))
    assert back.trained_on.startswith("300 labelled images")
    assert not list(folder.glob("*.tmp"))


def _copy(folder, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(folder, out)
    return out


def test_foreign_altered_or_corrupt_folders_are_refused(saved, tmp_path):
    _, folder = saved
    with pytest.raises(CheckpointError, match="not a folder"):
        Reader.load(tmp_path / "nothing")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text("{}")  # e.g. an editor's run folder
    with pytest.raises(CheckpointError, match="not a reader folder .* reader.safetensors, reader.json missing"):
        Reader.load(tmp_path / "run")
    c = _copy(folder, tmp_path)
    (c / "reader.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="reader.json is corrupt"):
        Reader.load(c)
    desc = json.loads((folder / "reader.json").read_text())
    for change, message in [({"format": "cfedit-ancm"}, "does not describe a cfedit reader"),
                            ({"version": 9}, "reader of version 9"),
                            ({"weights_sha256": "0" * 64}, "does not match the digest")]:
        (c / "reader.json").write_text(json.dumps({**desc, **change}))
        with pytest.raises(CheckpointError, match=message):
            Reader.load(c)
    # weights cut short: refused from the header, before the digest is computed; with a matching digest too
    (c / "reader.json").write_text(json.dumps(desc))
    raw = (folder / "reader.safetensors").read_bytes()
    (c / "reader.safetensors").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        Reader.load(c)
    from cfedit.editors.checkpoint import file_digest

    (c / "reader.json").write_text(json.dumps({**desc, "weights_sha256": file_digest(c / "reader.safetensors")}))
    with pytest.raises(CheckpointError, match="truncated|corrupt"):
        Reader.load(c)


def test_weights_of_another_network_are_refused(saved, tmp_path):
    """Well-formed safetensors of the reader format whose tensors do not fit the network the metadata names:
    refused from the header, before a tensor is read."""
    import torch

    from cfedit.editors.checkpoint import digest, safetensors_bytes

    reader, folder = saved
    c = _copy(folder, tmp_path)
    state = reader.net.state()
    state["0.weight"] = torch.zeros(8, 3, 5, 5)  # a narrower first layer
    meta = {"format": "cfedit-reader", "version": 1, "factors": [[k, list(v)] for k, v in reader.domains.as_dict().items()],
            "image_shape": [3, 28, 28]}
    raw = safetensors_bytes(state, meta)
    (c / "reader.safetensors").write_bytes(raw)
    desc = json.loads((folder / "reader.json").read_text())
    (c / "reader.json").write_text(json.dumps({**desc, "weights_sha256": digest(raw)}))
    with pytest.raises(CheckpointError, match=r"does not match the reader it describes: tensor 0.weight is F32 \[8, 3, 5, 5\]"):
        Reader.load(c)


def test_two_readers_trained_into_empty_caches_are_the_same_network(data, tmp_path, monkeypatch):
    """`cfedit evaluate` trains its reader on the same rows with the same seed: with fresh caches (two
    machines, or a cleared cache) it must be the same network, whatever the caller drew before."""
    import torch

    prints = []
    for i in range(2):
        monkeypatch.setenv("CFEDIT_CACHE", str(tmp_path / f"cache{i}"))
        torch.rand(3 + i)
        prints.append(Reader.fit(data.subset(np.arange(120)), epochs=1, seed=5).fingerprint)
    assert prints[0] == prints[1]
