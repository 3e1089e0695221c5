"""Shipped artefacts: packaging a run, the manifest's digests, loading through the public API, refusals."""

import json
import shlex
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from cfedit.artefacts import artefacts_folder, read_manifest, sha256, shipped_reference, write_manifest
from cfedit.editors.ancm import ANCM
from cfedit.editors.checkpoint import read_header
from cfedit.errors import CfeditError, CheckpointError
from cfedit.runs import Run, list_pretrained, pretrained_folder
from cfedit.runs.pretrained import package_editor
from cfedit.worlds import get_world


@pytest.fixture(scope="module")
def packaged(tiny_backdoor_run, tmp_path_factory):
    folder = tmp_path_factory.mktemp("artefacts")
    entry = package_editor(tiny_backdoor_run, "backdoor", command="cfedit train ...", seed=0, wall_seconds=1.0,
                           hardware="test", figures={"queries inside": 7}, folder=folder)
    return folder, entry


def test_a_packaged_editor_is_in_the_manifest_with_the_digest_of_every_file(packaged):
    folder, entry = packaged
    manifest = read_manifest(folder)
    assert list(manifest) == ["backdoor"] and manifest["backdoor"] == entry
    assert set(entry.files) == {"backdoor/weights.safetensors", "backdoor/config.json", "backdoor/graph.cg"}
    for rel, digest in entry.files.items():
        assert sha256(folder / rel) == digest
    assert entry.fingerprint == entry.files["backdoor/weights.safetensors"][:12]
    assert [a.name for a in list_pretrained(folder)] == ["backdoor"]


def test_float16_storage_halves_the_weights_and_edits_as_the_float32_editor(packaged, tiny_backdoor_run):
    folder, _ = packaged
    header = read_header(folder / "backdoor" / "weights.safetensors")
    dtypes = {v["dtype"] for k, v in header.items() if k != "__metadata__"}
    assert "F16" in dtypes and "F32" not in dtypes
    full, half = ANCM.load(tiny_backdoor_run), ANCM.load(pretrained_folder("backdoor", folder))
    w = get_world("backdoor")
    a = w.ascm("eval", oracle=False)
    units = a.units(16, 3)
    x = a.factual(units)
    r1 = full.edit(x, {"C": "green"}, 2, labels=units.v, seed=0)
    r2 = half.edit(x, {"C": "green"}, 2, labels=units.v, seed=0)
    assert np.abs(r1.images - r2.images).max() < 0.02
    assert all((r1.factors[k] == r2.factors[k]).all() for k in w.domains.names)


def test_an_altered_or_missing_file_is_refused_before_it_is_read(packaged, tmp_path):
    folder, _ = packaged
    bad = tmp_path / "artefacts"
    shutil.copytree(folder, bad)
    weights = bad / "backdoor" / "weights.safetensors"
    data = bytearray(weights.read_bytes())
    data[-3] ^= 1
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="digest in the package's manifest"):
        pretrained_folder("backdoor", bad)
    (bad / "backdoor" / "graph.cg").unlink()
    with pytest.raises(CheckpointError, match="lacks backdoor/graph.cg"):
        pretrained_folder("backdoor", bad)
    with pytest.raises(CfeditError, match="no shipped editor named 'faces'; shipped: backdoor"):
        pretrained_folder("faces", folder)


def test_a_foreign_or_newer_manifest_is_refused(packaged, tmp_path):
    folder, _ = packaged
    raw = json.loads((folder / "manifest.json").read_text())
    (tmp_path / "manifest.json").write_text(json.dumps({**raw, "version": 99}))
    with pytest.raises(CheckpointError, match="not a version-1 cfedit manifest"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="unreadable"):
        read_manifest(tmp_path)


def test_a_shipped_reference_network_is_found_by_its_cache_name_and_checked(packaged, tmp_path):
    folder, _ = packaged
    from cfedit.artefacts import Artefact

    ref = folder / "reference"
    ref.mkdir(exist_ok=True)
    (ref / "digits-oracle-0123.safetensors").write_bytes(b"weights")
    manifest = read_manifest(folder)
    files = {"reference/digits-oracle-0123.safetensors": sha256(ref / "digits-oracle-0123.safetensors")}
    manifest["digits-oracle-0123"] = Artefact(name="digits-oracle-0123", kind="reference", seed=0, wall_seconds=0, hardware="test",
                                              command="", files=files)
    write_manifest(manifest, folder)
    assert shipped_reference("digits-oracle-0123", folder) == ref / "digits-oracle-0123.safetensors"
    assert shipped_reference("digits-oracle-9999", folder) is None
    (ref / "digits-oracle-0123.safetensors").write_bytes(b"poison!")
    with pytest.raises(CheckpointError, match="digest"):
        shipped_reference("digits-oracle-0123", folder)


# ---- the artefacts this package ships
SHIPPED = read_manifest()


def test_the_package_manifest_lists_exactly_the_files_it_ships_with_their_digests():
    base = artefacts_folder()
    listed = {rel: d for a in SHIPPED.values() for rel, d in a.files.items()}
    present = {p.relative_to(base).as_posix() for p in base.rglob("*") if p.is_file()
               and p.name not in ("__init__.py", "manifest.json") and "__pycache__" not in p.parts}
    assert present == set(listed)
    for rel, digest in listed.items():
        assert sha256(base / rel) == digest, rel


@pytest.mark.parametrize("name", sorted(a.name for a in SHIPPED.values() if a.kind == "editor"))
def test_each_shipped_editor_loads_through_the_public_api_and_edits(name):
    run = Run.load(f"pretrained:{name}")
    w = run.world
    assert w is not None and w.name == SHIPPED[name].world
    a = w.ascm("eval", oracle=False)
    units = a.units(4, 0)
    action = w.domains.encode(w.figure_actions[0])
    r = run.editor.edit(a.factual(units), action, 2, labels=units.v, seed=0)
    assert r.images.shape == (4, 2, *w.image_shape)
    for k, code in action.items():
        assert (r.factors[k] == code).all()


@pytest.mark.parametrize("name", sorted(a.name for a in SHIPPED.values() if a.kind == "editor"))
def test_each_shipped_editor_holds_the_config_its_recorded_command_trains(name):
    """The manifest's command (`cfedit train --world W ... --config configs/pretrained/NAME.toml`) names a config in
    this repository; the shipped editor's settings are those it gives (over the world's defaults), steps included."""
    from cfedit.editors.ancm import ANCMConfig

    args = shlex.split(SHIPPED[name].command)
    assert args[:2] == ["cfedit", "train"] and "--config" in args and "--world" in args
    world = get_world(args[args.index("--world") + 1])
    root = Path(__file__).resolve().parents[2]
    want = ANCMConfig.from_toml(root / args[args.index("--config") + 1], world.editor_settings)
    assert Run.load(f"pretrained:{name}").editor.config == want
    assert SHIPPED[name].steps == want.steps


def test_packaging_may_change_edit_time_settings_only(tiny_backdoor_run, tmp_path):
    """package_editor(config=...): a setting no trained weight depends on (the VAE's residual_transport) is
    recorded with the run's weights unchanged; a training setting that differs is refused."""
    from dataclasses import replace

    model = ANCM.load(tiny_backdoor_run)
    gated = replace(model.config.image, residual=True, residual_gate=0.1)
    run = tmp_path / "run"
    model.config, model.image.config = replace(model.config, image=gated), gated
    model.save(run)
    on = replace(model.config, image=replace(gated, residual_transport=True))
    entry = package_editor(run, "t", command="cfedit train", seed=0, wall_seconds=1.0, hardware="test", config=on,
                           folder=tmp_path / "art", dtype="float32")
    shipped = ANCM.load(tmp_path / "art" / "t")
    assert shipped.config == on and shipped.image.config.residual_transport and entry.steps == on.steps
    for k, t in model.state_dict().items():
        assert torch.equal(t, shipped.state_dict()[k]), k
    with pytest.raises(CfeditError, match="trained with another config"):
        package_editor(run, "u", command="cfedit train", seed=0, wall_seconds=1.0, hardware="test",
                       config=replace(on, steps=on.steps + 1), folder=tmp_path / "art")
