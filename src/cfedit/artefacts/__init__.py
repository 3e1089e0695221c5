"""The trained artefacts that ship inside the package, and their manifest.

This folder holds the shipped editors (one checkpoint folder each, read by :mod:`cfedit.runs.pretrained`)
and the reference networks that metrics and oracles depend on (``reference/NAME-KEY.safetensors``, found by
:meth:`cfedit.worlds.reference.ReferenceNet.fit_cached` before any cache or training). ``manifest.json``
records, per artefact, how it was made (command, seed, steps, wall time, machine), the SHA-256 of each of its
files and, for an editor, the figures its evaluation measured. Every file is checked against the manifest
before anything reads it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from cfedit.errors import CheckpointError

__all__ = ["MANIFEST_FORMAT", "MANIFEST_VERSION", "Artefact", "artefacts_folder", "checked_files", "read_manifest", "sha256",
           "shipped_reference", "write_manifest"]

MANIFEST_FORMAT = "cfedit-artefacts"
MANIFEST_VERSION = 1


@dataclass(frozen=True)
class Artefact:
    """One shipped artefact as the manifest records it."""

    name: str  # an editor's name (pretrained:NAME), or a reference network's file stem
    kind: str  # "editor" or "reference"
    files: dict[str, str]  # path inside the artefacts folder -> SHA-256
    command: str  # the command that made it
    seed: int
    wall_seconds: float
    hardware: str
    world: str = ""  # the world it was trained on
    mechanism: str = ""  # an editor's image mechanism
    steps: int = 0  # an editor's image-stage steps
    dtype: str = "float32"  # how the weights are stored
    figures: dict = field(default_factory=dict)  # measured by `cfedit evaluate` (the docs' results page gives the command)

    @property
    def fingerprint(self) -> str:
        """The first 12 hex digits of the SHA-256 of its weights file: the same on every machine."""
        weights = [d for f, d in sorted(self.files.items()) if f.endswith(".safetensors")]
        return weights[0][:12] if weights else ""


def artefacts_folder() -> Path:
    """The package folder that holds the shipped artefacts and ``manifest.json``."""
    return Path(str(resources.files("cfedit.artefacts")))


def sha256(path: Path) -> str:
    """The SHA-256 of a file, read in blocks."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def read_manifest(folder: Path | None = None) -> dict[str, Artefact]:
    """The manifest's artefacts by name (an empty dict where the package ships none)."""
    path = (folder or artefacts_folder()) / "manifest.json"
    if not path.is_file():
        return {}
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        if raw.get("format") != MANIFEST_FORMAT or raw.get("version") != MANIFEST_VERSION:
            raise CheckpointError(f"{path} is not a version-{MANIFEST_VERSION} cfedit manifest")
        return {name: Artefact(name=name, **entry) for name, entry in raw["artefacts"].items()}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, AttributeError) as e:
        raise CheckpointError(f"the package's manifest {path} is unreadable ({str(e)[:200]}): reinstall cfedit") from None


def checked_files(artefact: Artefact, folder: Path | None = None) -> dict[str, Path]:
    """The paths of an artefact's files, after checking each against its digest in the manifest."""
    base = folder or artefacts_folder()
    out = {}
    for rel, expected in sorted(artefact.files.items()):
        path = base / rel
        if not path.is_file():
            raise CheckpointError(f"the shipped artefact {artefact.name!r} lacks {rel}: reinstall cfedit")
        if sha256(path) != expected:
            raise CheckpointError(f"{path} does not match the digest in the package's manifest: the file was changed or "
                                  "damaged; reinstall cfedit")
        out[rel] = path
    return out


def shipped_reference(stem: str, folder: Path | None = None) -> Path | None:
    """The shipped weights of the reference network ``stem`` (``NAME-KEY``, the name its cache entry would
    have), checked against the manifest; None where the package does not ship it."""
    artefact = read_manifest(folder).get(stem)
    if artefact is None or artefact.kind != "reference":
        return None
    return next(iter(checked_files(artefact, folder).values()))


def write_manifest(artefacts: dict[str, Artefact], folder: Path | None = None) -> Path:
    """Write ``manifest.json`` (atomically, sorted, one stable JSON text for the same artefacts)."""
    from dataclasses import asdict

    from cfedit.core.files import atomic_write

    body = {"format": MANIFEST_FORMAT, "version": MANIFEST_VERSION,
            "artefacts": {n: {k: v for k, v in asdict(a).items() if k != "name"} for n, a in sorted(artefacts.items())}}
    return atomic_write((folder or artefacts_folder()) / "manifest.json", json.dumps(body, indent=2, sort_keys=True) + "\n")
