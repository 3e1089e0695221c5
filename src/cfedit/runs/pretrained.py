"""The editors that ship with the package: ``pretrained:NAME`` (see :mod:`cfedit.artefacts` for the manifest)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from cfedit.artefacts import Artefact, artefacts_folder, checked_files, read_manifest, sha256, write_manifest
from cfedit.errors import CfeditError

if TYPE_CHECKING:
    from cfedit.editors.ancm import ANCM, ANCMConfig

__all__ = ["list_pretrained", "package_editor", "pretrained_folder"]


def list_pretrained(folder: Path | None = None) -> list[Artefact]:
    """Every shipped editor, by name."""
    return [a for _, a in sorted(read_manifest(folder).items()) if a.kind == "editor"]


def pretrained_folder(name: str, folder: Path | None = None) -> Path:
    """The checkpoint folder of the shipped editor ``name``, after checking every file against the manifest."""
    editors = {a.name: a for a in list_pretrained(folder)}
    if name not in editors:
        known = ", ".join(sorted(editors)) or "none in this installation"
        raise CfeditError(f"no shipped editor named {name!r}; shipped: {known}")
    paths = checked_files(editors[name], folder)
    return next(iter(paths.values())).parent


def package_editor(run: str | Path, name: str, *, command: str, seed: int, wall_seconds: float, hardware: str,
                   figures: dict | None = None, dtype: str = "float16", folder: Path | None = None,
                   config: ANCMConfig | None = None) -> Artefact:
    """Copy the trained run ``run`` into the artefacts folder as the shipped editor ``name`` (weights stored as
    ``dtype``), and record it in the manifest with its provenance and ``figures``. ``config`` (default: the run's)
    is the config the artefact records: it may differ from the run's only in the image mechanism's edit-time
    settings (``EDIT_TIME``), which no trained weight depends on; any other difference is refused. For maintainers:
    the script ``scripts/pretrained.py`` trains each shipped editor and calls this."""
    import torch

    from cfedit.editors.ancm import ANCM

    base = folder or artefacts_folder()
    model = ANCM.load(Path(run) / "editor" if (Path(run) / "editor").is_dir() else run)
    if config is not None and config != model.config:
        model = _with_edit_time_settings(model, config, run)
    if dtype not in ("float16", "float32"):
        raise CfeditError(f"dtype must be float16 or float32, not {dtype!r}")
    out = base / name
    out.mkdir(parents=True, exist_ok=True)
    model.save(out, dtype=getattr(torch, dtype))
    files = {f"{name}/{f}": sha256(out / f) for f in ("weights.safetensors", "config.json", "graph.cg")}
    entry = Artefact(name=name, kind="editor", files=files, command=command, seed=seed, wall_seconds=round(wall_seconds, 1),
                     hardware=hardware, world=name, mechanism=model.config.image.kind, steps=model.config.steps, dtype=dtype,
                     figures=dict(figures or {}))
    manifest = read_manifest(base)
    manifest[name] = entry
    write_manifest(manifest, base)
    return entry


def _with_edit_time_settings(model: ANCM, config: ANCMConfig, run: str | Path) -> ANCM:
    """``model`` with ``config``, which may differ from its own only in edit-time settings of the image mechanism."""
    from dataclasses import replace

    image = model.config.image
    keep = {k: getattr(image, k) for k in type(image).EDIT_TIME if k in config.image.__dataclass_fields__}
    if type(config.image) is not type(image) or replace(config, image=replace(config.image, **keep)) != model.config:
        raise CfeditError(f"{run} was trained with another config than the one given: only the image mechanism's "
                          f"edit-time settings ({', '.join(type(image).EDIT_TIME) or 'none'}) may differ; retrain it")
    model.config = config
    model.image.config = config.image
    return model
