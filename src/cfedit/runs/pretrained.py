"""The editors that ship with the package, and their manifest.

Each shipped editor is a checkpoint folder (``weights.safetensors``, ``config.json``, ``graph.cg``) inside
``cfedit/runs/artefacts/``; ``manifest.json`` beside them records, per artefact, the world, the image
mechanism, the command that made it, its seed, steps, wall time and machine, the SHA-256 of every file, and
the figures its evaluation measured. :func:`pretrained_folder` checks the files' digests against the manifest
before anything reads them; the checkpoint loader then applies its own checks.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from cfedit.editors.checkpoint import file_digest
from cfedit.errors import CfeditError, CheckpointError

__all__ = ["MANIFEST_FORMAT", "PretrainedEntry", "artefacts_folder", "list_pretrained", "pretrained_folder", "read_manifest"]

MANIFEST_FORMAT = "cfedit-pretrained"
MANIFEST_VERSION = 1


@dataclass(frozen=True)
class PretrainedEntry:
    """One shipped artefact as the manifest records it."""

    name: str
    kind: str  # "editor"
    world: str
    mechanism: str
    files: dict[str, str]  # file name -> SHA-256
    command: str  # the command that made it (reproduces it byte for byte on the same software)
    seed: int
    steps: int
    wall_seconds: float
    hardware: str
    dtype: str  # how the weights are stored (float16 halves the package)
    figures: dict = field(default_factory=dict)  # measured by `cfedit evaluate` (see the docs' results page)

    @property
    def fingerprint(self) -> str:
        """The first 12 hex digits of the weights' SHA-256: the same on every machine."""
        return self.files.get("weights.safetensors", "")[:12]


def artefacts_folder() -> Path:
    """The package folder that holds the shipped artefacts and ``manifest.json``."""
    return Path(str(resources.files("cfedit.runs.artefacts")))


def read_manifest(folder: Path | None = None) -> dict[str, PretrainedEntry]:
    """The manifest's entries by name (an empty dict where the package ships none)."""
    path = (folder or artefacts_folder()) / "manifest.json"
    if not path.is_file():
        return {}
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        if raw.get("format") != MANIFEST_FORMAT or raw.get("version") != MANIFEST_VERSION:
            raise CheckpointError(f"{path} is not a version-{MANIFEST_VERSION} cfedit manifest")
        return {name: PretrainedEntry(name=name, **entry) for name, entry in raw["artefacts"].items()}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, AttributeError) as e:
        raise CheckpointError(f"the package's manifest {path} is unreadable ({str(e)[:200]}): reinstall cfedit") from None


def list_pretrained() -> list[PretrainedEntry]:
    """Every shipped artefact, by name."""
    return [e for _, e in sorted(read_manifest().items())]


def pretrained_folder(name: str, folder: Path | None = None) -> Path:
    """The checkpoint folder of the shipped editor ``name``, after checking every file against the manifest."""
    base = folder or artefacts_folder()
    entries = read_manifest(base)
    if name not in entries:
        known = ", ".join(sorted(entries)) or "none in this installation"
        raise CfeditError(f"no shipped editor named {name!r}; shipped: {known}")
    entry = entries[name]
    out = base / name
    for file, expected in sorted(entry.files.items()):
        path = out / file
        if not path.is_file():
            raise CheckpointError(f"the shipped editor {name!r} lacks {file}: reinstall cfedit")
        if file_digest(path) != expected:
            raise CheckpointError(f"{path} does not match the digest in the package's manifest: the file was changed or "
                                  "damaged; reinstall cfedit")
    return out
