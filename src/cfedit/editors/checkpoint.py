"""An editor's folder on disk: ``weights.safetensors``, ``config.json`` and ``graph.cg``, written atomically
and read without unpickling, with integrity checks before anything is trusted.

* the weights' safetensors header is read and checked first (format, sizes against the file's length), so a
  foreign or truncated file is refused without reading it whole;
* ``config.json`` records the SHA-256 of the weights file, and the weights' metadata records a digest of
  the factor domains: a flipped byte, or value names reordered in ``config.json``, is refused;
* every tensor must be finite; image shapes must be plausible;
* the weights' metadata is one JSON value, so identical trainings give byte-identical files.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Mapping
from pathlib import Path

import torch

from cfedit.core.files import atomic_write
from cfedit.errors import CheckpointError

FILES = ("weights.safetensors", "config.json", "graph.cg")
STATE_FILE = "train_state.safetensors"
MAX_HEADER = 64 << 20  # bytes of a safetensors header we are willing to parse
MAX_SIDE = 2048  # largest image height or width an editor may declare


def digest(data: bytes | str) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def domains_digest(domains: Mapping[str, list[str]]) -> str:
    return digest(json.dumps(domains))


def safetensors_bytes(tensors: Mapping[str, torch.Tensor], meta: Mapping[str, object]) -> bytes:
    """Tensors and metadata as safetensors bytes; the metadata as one sorted JSON value (deterministic bytes)."""
    from safetensors.torch import save

    return save({k: t.detach().cpu().contiguous() for k, t in tensors.items()},
                metadata={"cfedit": json.dumps(dict(meta), sort_keys=True)})


def read_header(path: Path) -> dict:
    """The safetensors header of ``path``, checked against the file's length, without reading the tensors."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise CheckpointError(f"{path} is corrupt: {size} bytes, too short for a safetensors file")
        (n,) = struct.unpack("<Q", head)
        if n > min(MAX_HEADER, size - 8):
            raise CheckpointError(f"{path} is corrupt or not a safetensors file (header of {n:,} bytes in a {size:,}-byte file)")
        try:
            header = json.loads(f.read(n))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise CheckpointError(f"{path} is corrupt: its header is not JSON") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path} is corrupt: its header is not a table")
    ends = [v.get("data_offsets", [0, 0])[1] for k, v in header.items() if k != "__metadata__" and isinstance(v, dict)]
    if 8 + n + max(ends, default=0) != size:
        raise CheckpointError(f"{path} is truncated or has trailing data: the header announces "
                              f"{8 + n + max(ends, default=0):,} bytes, the file has {size:,}")
    return header


def metadata(header: dict) -> dict:
    """cfedit's metadata from a header (one JSON value; older files kept flat string keys)."""
    meta = header.get("__metadata__") or {}
    if "cfedit" in meta:
        try:
            return json.loads(meta["cfedit"])
        except json.JSONDecodeError:
            return {}
    return dict(meta)


def load_tensors(path: Path, fmt: str) -> tuple[dict[str, torch.Tensor], dict]:
    """The tensors and metadata of a safetensors file written for ``fmt``; header first, then the tensors,
    each checked finite."""
    from safetensors import safe_open

    meta = metadata(read_header(path))
    if meta.get("format") != fmt:
        raise CheckpointError(f"{path} was not written by cfedit's {fmt.removeprefix('cfedit-')} (format {meta.get('format')!r})")
    try:
        with safe_open(path, framework="pt") as f:
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # safetensors raises its own error types
        raise CheckpointError(f"{path} is corrupt: {str(e)[:200]}") from None
    bad = [k for k, t in tensors.items() if t.is_floating_point() and not torch.isfinite(t).all()]
    if bad:
        raise CheckpointError(f"{path} holds non-finite values in {', '.join(bad[:5])}: the training diverged or the file is damaged")
    return tensors, meta


def _config_digest(config: Mapping[str, object]) -> str:
    """Digest of config.json's content but its own weights digest and the training report."""
    return digest(json.dumps({k: v for k, v in config.items() if k not in ("weights_sha256", "fit")}, sort_keys=True))


def write_editor(folder: Path, tensors: Mapping[str, torch.Tensor], fmt: str, version: int, config: dict, graph_text: str) -> Path:
    """Write the three files (weights first, so that config.json can record their digest; the weights'
    metadata records digests of the config, the factors' values and the graph)."""
    weights = safetensors_bytes(tensors, {"format": fmt, "version": version, "domains_sha256": domains_digest(config["domains"]),
                                          "config_sha256": _config_digest(config), "graph_sha256": digest(graph_text)})
    atomic_write(folder / "weights.safetensors", weights)
    atomic_write(folder / "config.json", json.dumps({**config, "weights_sha256": digest(weights)}, indent=2))
    atomic_write(folder / "graph.cg", graph_text)
    remove_stale_temporaries(folder)
    return folder


def remove_stale_temporaries(folder: Path) -> None:
    """Temporary files that an interrupted atomic write of one of our files left behind."""
    for name in (*FILES, STATE_FILE):
        for tmp in folder.glob(f".{name}.*.tmp"):
            tmp.unlink(missing_ok=True)


def remove_editor(folder: Path) -> bool:
    """Remove an editor's files from ``folder`` (before a fresh training writes there); True if any existed."""
    found = False
    for name in FILES:
        if (folder / name).exists():
            (folder / name).unlink()
            found = True
    return found


def read_editor(folder: Path, fmt: str, versions: tuple[int, ...]) -> tuple[dict, str, dict[str, torch.Tensor]]:
    """(config dict, graph text, tensors) of an editor folder, after every integrity check."""
    if not folder.is_dir():
        raise CheckpointError(f"no editor at {folder}: not a folder")
    missing = [n for n in FILES if not (folder / n).is_file()]
    if missing:
        if (folder / STATE_FILE).is_file():
            raise CheckpointError(f"{folder} holds an unfinished training ({', '.join(missing)} not written yet): "
                                  "resume it by running the same `cfedit train` command again")
        raise CheckpointError(f"{folder} is not an editor checkpoint: {', '.join(missing)} missing")
    try:
        cfg = json.loads((folder / "config.json").read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{folder / 'config.json'} is corrupt: {str(e)[:200]}") from None
    if not isinstance(cfg, dict) or cfg.get("format") != fmt:
        raise CheckpointError(f"{folder / 'config.json'} was not written by the ANCM editor")
    if cfg.get("version") not in versions:
        raise CheckpointError(f"{folder} has checkpoint version {str(cfg.get('version'))[:20]}; this cfedit reads "
                              f"{', '.join(map(str, versions))}: retrain with `cfedit train` (the run's settings are in its config.json)")
    shape = cfg.get("image_shape")
    if (not isinstance(shape, list) or len(shape) != 3 or not all(isinstance(s, int) for s in shape)
            or not 1 <= shape[0] <= 4 or not all(4 <= s <= MAX_SIDE for s in shape[1:])):
        raise CheckpointError(f"{folder / 'config.json'}: image_shape {str(shape)[:50]} is not C x H x W with 1-4 channels "
                              f"and sides of 4 to {MAX_SIDE} pixels")
    weights = folder / "weights.safetensors"
    tensors, meta = load_tensors(weights, fmt)
    try:
        graph = (folder / "graph.cg").read_text()
    except UnicodeDecodeError:
        raise CheckpointError(f"{folder / 'graph.cg'} is not text") from None
    if cfg["version"] >= 2:  # version 1 wrote no digests; from 2 on every one is required
        checks = (
            (cfg.get("weights_sha256"), lambda: file_digest(weights), f"{weights} does not match the digest in config.json: "
             "the file was changed or damaged"),
            (meta.get("domains_sha256"), lambda: domains_digest(cfg.get("domains", {})), f"{folder / 'config.json'}: the "
             "factors' values differ from those the weights were trained with (reordered or renamed); restore the file or retrain"),
            (meta.get("config_sha256"), lambda: _config_digest(cfg), f"{folder / 'config.json'} differs from the config the "
             "weights were saved with; restore it or retrain"),
            (meta.get("graph_sha256"), lambda: digest(graph), f"{folder / 'graph.cg'} differs from the graph the weights were "
             "trained with (the order of its nodes fixes the network's inputs); restore it or retrain"),
        )
        for expected, actual, message in checks:
            if expected is None or actual() != expected:
                raise CheckpointError(message if expected is not None else f"{folder} lacks the digests its version requires: "
                                      "it was not written by cfedit or was altered")
    return cfg, graph, tensors
