"""Checkpoints and training state that cannot lie: integrity on load, resumption only on the same data,
no old editor left beside a new training, deterministic bytes, clear refusals."""

import json
import shutil

import numpy as np
import pytest
import torch

from cfedit.editors import checkpoint, training
from cfedit.editors.ancm import ANCM, ANCMConfig
from cfedit.errors import CfeditError, CheckpointError
from cfedit.imaging.vae import VAEConfig
from cfedit.ncm import NCMConfig
from cfedit.worlds import get_world

TINY = ANCMConfig(steps=12, batch_size=16, log_every=4, checkpoint_every=4, ncm=NCMConfig(steps=20, latent_size=4),
                  image=VAEConfig(width=4, latent_dim=2))


@pytest.fixture(scope="module")
def world():
    return get_world("backdoor")


@pytest.fixture(scope="module")
def data(world):
    return world.dataset(256, seed=0)


@pytest.fixture(scope="module")
def run(world, data, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    return ANCM.fit(world.graph, data, TINY, out_dir=out, log=None), out


class Stop(Exception):
    pass


def _stop_at(step):
    def log(line):
        if f"image step {step}/" in line:
            raise Stop

    return log


def _copy(run, tmp_path, name="copy"):
    m, _ = run
    return m.save(tmp_path / name)


def test_identical_trainings_write_identical_bytes(world, data, run, tmp_path):
    m, out = run
    again = ANCM.fit(world.graph, data, TINY, out_dir=tmp_path / "again", log=None)
    assert again is not None
    for name in checkpoint.FILES:
        assert (tmp_path / "again" / name).read_bytes() == (out / name).read_bytes(), name


def test_a_flipped_byte_is_refused(run, tmp_path):
    f = _copy(run, tmp_path) / "weights.safetensors"
    raw = bytearray(f.read_bytes())
    raw[-5] ^= 0x01  # inside the tensor data: the header still parses
    f.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="digest"):
        ANCM.load(f.parent)


def test_reordered_values_in_the_config_are_refused(run, tmp_path):
    folder = _copy(run, tmp_path)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["domains"]["C"] = ["red", "green"]
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="differ from those the weights were trained with"):
        ANCM.load(folder)


def test_non_finite_weights_and_impossible_shapes_are_refused(run, tmp_path):
    m, _ = run
    folder = tmp_path / "nan"
    state = m.state_dict()
    key = next(k for k, t in state.items() if t.is_floating_point())
    state[key] = torch.full_like(state[key], float("nan"))
    cfg = json.loads((_copy(run, tmp_path) / "config.json").read_text())
    cfg.pop("weights_sha256")
    checkpoint.write_editor(folder, state, "cfedit-ancm", 2, cfg, m.graph.to_cg())
    with pytest.raises(CheckpointError, match="non-finite"):
        ANCM.load(folder)
    folder = _copy(run, tmp_path, "huge")
    cfg = json.loads((folder / "config.json").read_text())
    cfg["image_shape"] = [3, 40000, 40000]
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="image_shape"):
        ANCM.load(folder)


def test_truncated_or_padded_weights_are_refused_from_the_header(run, tmp_path):
    f = _copy(run, tmp_path) / "weights.safetensors"
    raw = f.read_bytes()
    f.write_bytes(raw[:-10])
    with pytest.raises(CheckpointError, match="truncated"):
        ANCM.load(f.parent)
    f.write_bytes(raw + b"\0" * 10)
    with pytest.raises(CheckpointError, match="trailing"):
        ANCM.load(f.parent)
    f.write_bytes((10**12).to_bytes(8, "little") + raw[8:])  # a header that claims a terabyte
    with pytest.raises(CheckpointError, match="header"):
        ANCM.load(f.parent)


def test_resuming_on_other_data_is_refused(world, data, tmp_path):
    with pytest.raises(Stop):
        ANCM.fit(world.graph, data, TINY, out_dir=tmp_path, log=_stop_at(8))
    other = data.subset(np.arange(128))
    with pytest.raises(CheckpointError, match="other data"):
        ANCM.fit(world.graph, other, TINY, out_dir=tmp_path, log=None)


def test_the_training_state_carries_the_optimiser_its_schedule_and_resumes_deterministically(world, data, tmp_path):
    """Interrupted after the checkpoint at step 4: the state holds Adam's moments at step 4 and the LambdaLR schedule
    at step 4 (its learning rate the cosine-with-warm-up factor of step 4); two resumptions from it write the same
    bytes; a state without the schedule (an older cfedit's) is refused with what to do."""
    with pytest.raises(Stop):
        ANCM.fit(world.graph, data, TINY, out_dir=tmp_path / "a", log=_stop_at(8))
    state = tmp_path / "a" / checkpoint.STATE_FILE
    model = ANCM(world.graph, data.domains, data.image_shape, TINY)
    opt, sched = training.optimiser(model)
    images, labels = torch.as_tensor(data.images), {k: torch.as_tensor(v) for k, v in data.labels.items()}
    step, ncm_done = training.load_state(model, opt, sched, state, training.data_digest(images, labels))
    assert (step, ncm_done) == (4, True) and isinstance(sched, torch.optim.lr_scheduler.LambdaLR) and sched.last_epoch == 4
    assert opt.param_groups[0]["lr"] == pytest.approx(TINY.lr * training.cosine_with_warmup(TINY.steps)(4))
    assert all(int(opt.state[p]["step"]) == 4 for p in opt.param_groups[0]["params"])
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    for name in "ab":
        ANCM.fit(world.graph, data, TINY, out_dir=tmp_path / name, log=None)
    for name in checkpoint.FILES:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    tensors, meta = checkpoint.load_tensors(state, "cfedit-ancm-train")
    assert json.loads(meta["scheduler"])["last_epoch"] == TINY.steps  # the finished training's state
    del meta["scheduler"], meta["format"]
    state.write_bytes(checkpoint.safetensors_bytes(tensors, {"format": "cfedit-ancm-train", **meta}))
    with pytest.raises(CheckpointError, match="older cfedit.*--no-resume"):
        ANCM.fit(world.graph, data, TINY, out_dir=tmp_path / "a", log=None)


def test_the_learning_rate_warms_up_then_decays_as_a_cosine():
    """cosine_with_warmup(100): warm-up over 2 steps (1/2, 1), then 0.5 (1 + cos(pi (s - 2) / 98)): 1 at step 2,
    1/2 at step 51, near 0 at the last step; LambdaLR applies it to the base rate step by step."""
    f = training.cosine_with_warmup(100)
    assert (f(0), f(1), f(2), f(51)) == pytest.approx((0.5, 1.0, 1.0, 0.5))
    assert 0 < f(99) < 1e-3
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, f)
    seen = []
    for _ in range(100):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert seen == pytest.approx([0.1 * f(s) for s in range(100)])


def test_a_fresh_training_never_leaves_the_old_editor_in_place(world, data, run, tmp_path):
    """--no-resume into a folder with a finished editor, interrupted: no stale editor is loadable."""
    folder = _copy(run, tmp_path)
    (folder / ".weights.safetensors.abc.tmp").write_bytes(b"left by a killed save")
    with pytest.raises(Stop):
        ANCM.fit(world.graph, data, TINY, out_dir=folder, resume=False, log=_stop_at(8))
    with pytest.raises(CheckpointError, match="unfinished training"):
        ANCM.load(folder)
    ANCM.fit(world.graph, data, TINY, out_dir=folder, log=None)  # resumes and finishes
    assert ANCM.load(folder).config == TINY
    assert not list(folder.glob(".*.tmp"))  # a successful save removes what a killed one left


@pytest.mark.parametrize("bad", [{"steps": 0}, {"seed": -1}, {"batch_size": 0}, {"lr": 0.0}, {"ctf_fraction": 0.0}])
def test_impossible_settings_are_refused(bad):
    with pytest.raises(CfeditError, match=next(iter(bad))):
        ANCMConfig(**bad)


def test_graph_and_config_changes_and_missing_digests_are_refused(run, tmp_path):
    folder = _copy(run, tmp_path, "graph")
    text = (folder / "graph.cg").read_text()
    nodes = text.split("<NODES>")[1].split("<EDGES>")[0].split()
    assert nodes[:2] == ["D", "C"]
    (folder / "graph.cg").write_text(text.replace("D\nC\n", "C\nD\n", 1))  # same edges, other input order
    with pytest.raises(CheckpointError, match="graph.cg differs"):
        ANCM.load(folder)
    folder = _copy(run, tmp_path, "config")
    cfg = json.loads((folder / "config.json").read_text())
    cfg["config"]["ncm"]["coupling"] = "comonotone"
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="config.json differs"):
        ANCM.load(folder)
    folder = _copy(run, tmp_path, "nodigest")
    cfg = json.loads((folder / "config.json").read_text())
    cfg.pop("weights_sha256")
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="lacks the digests"):
        ANCM.load(folder)


@pytest.mark.parametrize("section, bad", [("ncm", {"method": "foo"}), ("ncm", {"steps": 0}), ("image", {"latent_dim": 0}),
                                          ("labeller", {"width": -1}), ("ncm", {"coupling": "x"})])
def test_impossible_nested_settings_are_refused(section, bad):
    with pytest.raises(CfeditError, match=next(iter(bad))):
        ANCMConfig.from_dict({section: {**({"kind": "vae"} if section == "image" else {}), **bad}})


# ---- versions: only an integer this cfedit reads; version 1 (no digests) only when asked for explicitly
@pytest.mark.parametrize("version", [True, 1.0, 2.0, "2", None, [2]])
def test_a_version_that_is_not_an_integer_is_refused(run, tmp_path, version):
    folder = _copy(run, tmp_path)
    cfg = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**cfg, "version": version}))
    with pytest.raises(CheckpointError, match="is not an integer"):
        ANCM.load(folder)


def test_a_downgrade_to_version_1_does_not_turn_the_checks_off(run, tmp_path):
    """Version 1 recorded no digests: a run rewritten as version 1 with its colour values swapped used to load
    (and read a red image as green); it is refused, and loads only when the caller takes the risk."""
    folder = _copy(run, tmp_path)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["domains"]["C"] = cfg["domains"]["C"][::-1]
    (folder / "config.json").write_text(json.dumps({**cfg, "version": 1}))
    with pytest.raises(CheckpointError, match="version-1 checkpoint, which records no digests.*cfedit migrate"):
        ANCM.load(folder)
    assert ANCM.load(folder, allow_unverified=True).domains.values("C") == tuple(cfg["domains"]["C"])  # the risk, taken


# ---- a file's size and shapes are checked from its header, before any tensor is read
def _sparse_weights(path, nbytes, meta):
    """A safetensors file with a valid header announcing one float32 tensor of ``nbytes``, its data a sparse hole."""
    header = json.dumps({"__metadata__": {"cfedit": json.dumps(meta)},
                         "ncm.huge": {"dtype": "F32", "shape": [nbytes // 4], "data_offsets": [0, nbytes]}}).encode()
    with open(path, "wb") as f:
        f.write(len(header).to_bytes(8, "little") + header)
        f.truncate(8 + len(header) + nbytes)


def test_an_oversized_weights_file_is_refused_from_its_header(run, tmp_path, monkeypatch):
    """256 MiB announced in a valid header (4 GiB used to cost 38 s and 11.6 GB before a refusal): refused from
    the header, without reading a tensor or hashing the file."""
    import time

    import safetensors

    folder = _copy(run, tmp_path)
    meta = checkpoint.metadata(checkpoint.read_header(folder / "weights.safetensors"))
    _sparse_weights(folder / "weights.safetensors", 256 << 20, meta)

    def never(*args, **kwargs):
        raise AssertionError("the file was read before it was refused")

    monkeypatch.setattr(safetensors, "safe_open", never)
    monkeypatch.setattr(checkpoint, "file_digest", never)
    t0 = time.perf_counter()
    with pytest.raises(CheckpointError, match="does not match the model its config.json describes.*ncm.huge"):
        ANCM.load(folder)
    assert time.perf_counter() - t0 < 5


def test_tensors_of_other_shapes_are_refused_from_the_header(run, tmp_path, monkeypatch):
    import safetensors

    m, _ = run
    folder = tmp_path / "shapes"
    state = m.state_dict()
    key = next(k for k in state if k.startswith("labeller.") and k.endswith("weight"))
    state[key] = torch.zeros(*state[key].shape[:-1], state[key].shape[-1] + 1)
    cfg = json.loads((_copy(run, tmp_path) / "config.json").read_text())
    checkpoint.write_editor(folder, state, "cfedit-ancm", 2, cfg, m.graph.to_cg())  # digests all consistent
    monkeypatch.setattr(safetensors, "safe_open", lambda *a, **k: pytest.fail("tensors read"))
    with pytest.raises(CheckpointError, match=f"tensor {key} is F32"):
        ANCM.load(folder)


def test_an_oversized_training_state_is_refused_from_its_header(run, tmp_path, monkeypatch):
    import safetensors

    from cfedit.editors import training

    m, _ = run
    state = tmp_path / "train_state.safetensors"
    _sparse_weights(state, 256 << 20, {"format": "cfedit-ancm-train"})
    monkeypatch.setattr(safetensors, "safe_open", lambda *a, **k: pytest.fail("tensors read"))
    opt, sched = training.optimiser(m)
    with pytest.raises(CheckpointError, match="announces 268,435,456 bytes of tensors"):
        training.load_state(m, opt, sched, state, "digest")


# ---- memory: estimated on the meta device before anything is allocated
def test_a_config_too_large_for_the_memory_is_refused_with_the_estimate(world, data, monkeypatch):
    from cfedit.editors import memory

    assert memory.available_bytes() > 0  # /proc/meminfo (Linux)
    big = ANCMConfig(steps=1, ncm=NCMConfig(hidden=8192, steps=1), image=VAEConfig(width=4, latent_dim=2))
    est = ANCM.estimate_memory(world.graph, world.domains, world.image_shape, big)
    n_in = {v: net[0].in_features for v, net in ANCM.on_meta(world.graph, world.domains, world.image_shape, big).ncm.mechanisms.items()}
    ncm_params = sum(i * 8192 + 8192 + 8192 * 8192 + 8192 + 8192 * world.domains.size(v) + world.domains.size(v) for v, i in n_in.items())
    assert est.weights > 4 * ncm_params  # every NCM parameter counted, 4 bytes each (and the rest)
    assert est.training >= est.weights + 3 * est.trainable
    monkeypatch.setattr(memory, "available_bytes", lambda device="cpu": 1 << 30)
    built = []
    monkeypatch.setattr("cfedit.ncm.NCM.to", lambda self, device, *a, **k: built.append(str(device)) or self)
    with pytest.raises(CfeditError, match=r"training it needs about \d+\.\d+ GiB .* but 1\.00 GiB of memory is available"):
        ANCM.fit(world.graph, data, big, log=None)
    assert set(built) == {"meta"}  # refused before any network was built with storage


def test_settings_no_24_gb_machine_can_use_are_refused():
    from cfedit.imaging.diffusion import DiffusionConfig

    with pytest.raises(CfeditError, match="hidden must be an integer from 1 to 8192"):
        NCMConfig(hidden=65536)
    with pytest.raises(CfeditError, match="width must be an integer from 1 to 1024"):
        VAEConfig(width=4096)
    with pytest.raises(CfeditError, match="from 1 to 1024"):
        DiffusionConfig(channels=(4096,))


def test_loading_checks_the_memory_before_building(run, monkeypatch):
    from cfedit.editors import memory

    _, folder = run
    monkeypatch.setattr(memory, "available_bytes", lambda device="cpu": 1000)
    with pytest.raises(CfeditError, match="loading it needs about .* GiB of weights, but 0.00 GiB"):
        ANCM.load(folder)


# ---- one training per run folder at a time
def test_a_second_training_into_a_folder_in_use_is_refused_naming_the_holder(world, data, tmp_path):
    """Two trainings into one folder: the second used to die with FileNotFoundError on the first's temporary
    file. flock locks belong to an open file, so a lock held here conflicts with the training's own."""
    import os

    from cfedit.editors import training

    with training.run_lock(tmp_path):
        with pytest.raises(CheckpointError, match=rf"in use by another training \(pid {os.getpid()} on .*, started 20"):
            ANCM.fit(world.graph, data, TINY, out_dir=tmp_path, log=None)
    assert not (tmp_path / "config.json").exists()  # the second training wrote nothing
    with pytest.raises(Stop):
        ANCM.fit(world.graph, data, TINY, out_dir=tmp_path, log=_stop_at(4))
    with training.run_lock(tmp_path):  # the interrupted training released it
        assert (tmp_path / training.LOCK_FILE).read_text().startswith(f"pid {os.getpid()} ")


def test_training_on_labels_that_break_the_instrumental_inequality_warns_first(tmp_path):
    """`cfedit bounds` refuses such labels; training used to accept them without a word."""
    from cfedit.core.domains import Domains
    from cfedit.core.graph import CausalGraph
    from cfedit.data import LabelledImages

    g = CausalGraph.parse("Z -> X; X -> Y; X <-> Y")
    dom = Domains({"Z": ["0", "1"], "X": ["0", "1"], "Y": ["0", "1"]})
    z = np.repeat([0, 1], 32)  # P(X=0, Y=0 | Z=0) = P(X=0, Y=1 | Z=1) = 1
    labels = {"Z": z, "X": np.zeros(64, dtype=np.int64), "Y": z.copy()}
    data = LabelledImages(np.zeros((64, 3, 8, 8), np.float32), labels, dom)
    lines = []

    def log(line):
        lines.append(line)
        if line.startswith("ncm:"):
            raise Stop

    with pytest.raises(Stop):
        ANCM.fit(g, data, TINY, log=log)
    assert lines[0].startswith("warning: the training labels do not fit the graph") and "instrumental" in lines[0]
    labels["X"] = z.copy()  # X = Z, Y = X: an IV model produces it
    lines.clear()
    with pytest.raises(Stop):
        ANCM.fit(g, LabelledImages(data.images, labels, dom), TINY, log=log)
    assert not any("warning" in ln for ln in lines)
