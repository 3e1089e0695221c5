"""An editor's folder on disk: ``weights.safetensors``, ``config.json`` and ``graph.cg``, written atomically
and read without unpickling, with integrity checks before anything is trusted.

* ``config.json``'s ``version`` must be one this cfedit reads, as an integer (``true``, ``1.0`` or ``"2"`` are
  refused). Version 1 recorded no digests: such a folder is refused unless the caller asks for it
  explicitly (``allow_unverified=True``; ``cfedit migrate`` rewrites it once with digests);
* the weights' safetensors header is read and checked first (format, sizes against the file's length, each
  tensor's name, dtype and shape against those of the model the config builds), so a foreign, truncated or
  oversized file is refused without reading it;
* ``config.json`` records the SHA-256 of the weights file, checked by streaming the file before any tensor
  is read; the weights' metadata records digests of the config, the factor domains and the graph: a flipped
  byte, or value names reordered in ``config.json``, is refused;
* every tensor must be finite; image shapes must be plausible;
* the weights' metadata is one JSON value, so identical trainings give byte-identical files.
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
from collections.abc import Callable, Mapping
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
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            raise CheckpointError(f"{path} is corrupt: its header is not JSON (or is nested too deeply)") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path} is corrupt: its header is not a table")
    declared = declared_tensors(header, path)
    end = max((stop for _, _, (_, stop) in declared.values()), default=0)
    if 8 + n + end != size:
        raise CheckpointError(f"{path} is truncated or has trailing data: the header announces "
                              f"{8 + n + end:,} bytes, the file has {size:,}")
    return header


DTYPE_BYTES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
               "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}  # safetensors' dtypes
FLOATS = frozenset({"F16", "BF16", "F32", "F64"})
Declared = dict[str, tuple[str, tuple[int, ...], tuple[int, int]]]
"""Tensor name -> (safetensors dtype, shape, (start, stop) byte offsets), as a header declares them."""


def declared_tensors(header: Mapping, path: Path) -> Declared:
    """Each tensor of a safetensors header with its dtype, shape and byte range, each checked for form (a
    known dtype, a shape of non-negative integers, a byte range of exactly the shape's size)."""
    out: Declared = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape, (start, stop) = entry["dtype"], tuple(entry["shape"]), entry["data_offsets"]
            ok = (dtype in DTYPE_BYTES and all(type(d) is int and d >= 0 for d in shape)
                  and type(start) is int and type(stop) is int and 0 <= start <= stop
                  and stop - start == math.prod(shape) * DTYPE_BYTES[dtype])
        except (KeyError, TypeError, ValueError):
            ok = False
        if not ok:
            raise CheckpointError(f"{path} is corrupt: the header's entry for tensor {str(name)[:80]!r} is malformed")
        out[name] = (dtype, shape, (start, stop))
    return out


_SAFETENSORS_DTYPE = {"float32": "F32", "float64": "F64", "float16": "F16", "bfloat16": "BF16", "int64": "I64",
                      "int32": "I32", "int16": "I16", "int8": "I8", "uint8": "U8", "bool": "BOOL"}


def tensor_layout(tensors: Mapping[str, torch.Tensor]) -> dict[str, tuple[str, tuple[int, ...]]]:
    """Name -> (safetensors dtype, shape) of ``tensors`` (e.g. a model's state built on the ``meta`` device)."""
    return {k: (_SAFETENSORS_DTYPE.get(str(t.dtype).removeprefix("torch."), str(t.dtype)), tuple(t.shape))
            for k, t in tensors.items()}


def check_layout(header: Mapping, path: Path, expected: Mapping[str, tuple[str, tuple[int, ...]]], what: str) -> None:
    """Refuse ``path`` unless its header declares exactly the tensors of ``expected`` (name -> (dtype, shape);
    a floating-point tensor may be stored at another floating precision), before any of them is read: a file
    that announces other or larger tensors costs nothing to refuse."""
    declared = {k: (d, s) for k, (d, s, _) in declared_tensors(header, path).items()}
    extra, missing = sorted(set(declared) - set(expected)), sorted(set(expected) - set(declared))
    if extra or missing:
        parts = ([f"{len(extra)} tensor(s) that model does not have ({', '.join(extra[:3])[:200]})"] if extra else []) + \
                ([f"{len(missing)} of its tensors missing ({', '.join(missing[:3])[:200]})"] if missing else [])
        raise CheckpointError(f"{path} does not match {what}: {'; '.join(parts)}")
    for k in sorted(expected):
        (dt, sh), (et, es) = declared[k], expected[k]
        same_kind = dt == et or (dt in FLOATS and et in FLOATS)  # weights may be stored at another precision (float16)
        if not same_kind or tuple(sh) != tuple(es):
            raise CheckpointError(f"{path} does not match {what}: tensor {k} is {dt} {list(sh)[:8]}, {what} has {et} {list(es)}")


def declared_bytes(header: Mapping, path: Path) -> int:
    """The bytes of tensor data a safetensors header announces."""
    return sum(stop - start for _, _, (start, stop) in declared_tensors(header, path).values())


def metadata(header: dict) -> dict:
    """cfedit's metadata from a header (one JSON value; older files kept flat string keys)."""
    meta = header.get("__metadata__") or {}
    if not isinstance(meta, dict):
        return {}
    if "cfedit" in meta:
        try:
            value = json.loads(meta["cfedit"])
        except (TypeError, json.JSONDecodeError, RecursionError):
            return {}
        return value if isinstance(value, dict) else {}
    return dict(meta)


def load_tensors(path: Path, fmt: str, *, max_bytes: int | None = None) -> tuple[dict[str, torch.Tensor], dict]:
    """The tensors and metadata of a safetensors file written for ``fmt``; header first (a file announcing
    more than ``max_bytes`` of tensor data is refused there), then the tensors, each checked finite."""
    from safetensors import safe_open

    header = read_header(path)
    meta = metadata(header)
    if meta.get("format") != fmt:
        raise CheckpointError(f"{path} was not written by cfedit's {fmt.removeprefix('cfedit-')} (format {meta.get('format')!r})")
    if max_bytes is not None and declared_bytes(header, path) > max_bytes:
        raise CheckpointError(f"{path} announces {declared_bytes(header, path):,} bytes of tensors, more than the "
                              f"{max_bytes:,} the model it belongs to can hold: it is not that model's file")
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


def recorded_version(folder: Path) -> object:
    """The ``version`` that ``folder``'s config.json records, as it is written there (None when unreadable)."""
    try:
        cfg = json.loads((folder / "config.json").read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return None
    return cfg.get("version") if isinstance(cfg, dict) else None


Expected = Callable[[dict, str], Mapping[str, tuple[str, tuple[int, ...]]]]
"""(config dict, graph text) -> the tensors (name -> (safetensors dtype, shape)) the model they describe holds."""


def read_editor(folder: Path, fmt: str, versions: tuple[int, ...], *, allow_unverified: bool = False,
                expected: Expected | None = None) -> tuple[dict, str, dict[str, torch.Tensor]]:
    """(config dict, graph text, tensors) of an editor folder, after every integrity check.

    Cheap checks come first, and no tensor is read before all have passed: the version (an integer of
    ``versions``; version 1, which records no digests, only with ``allow_unverified``), the image shape,
    the weights' header (each tensor's name, dtype and shape against ``expected(config, graph)``, so a file
    announcing other or larger tensors is refused from its header), the digests of the config, the
    factors' values and the graph, then the weights' SHA-256, streamed from the file."""
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
    except RecursionError:
        raise CheckpointError(f"{folder / 'config.json'} is corrupt: nested too deeply") from None
    if not isinstance(cfg, dict) or cfg.get("format") != fmt:
        raise CheckpointError(f"{folder / 'config.json'} was not written by the ANCM editor")
    version = cfg.get("version")
    if type(version) is not int:  # not a bool (true == 1), a float or a string
        raise CheckpointError(f"{folder / 'config.json'}: version {json.dumps(version)[:20]} is not an integer; "
                              "the file was altered: restore it or retrain")
    if version not in versions:
        raise CheckpointError(f"{folder} has checkpoint version {version}; this cfedit reads "
                              f"{', '.join(map(str, versions))}: retrain with `cfedit train` (the run's settings are in its config.json)")
    if version < 2 and not allow_unverified:
        raise CheckpointError(f"{folder} is a version-{version} checkpoint, which records no digests: cfedit cannot tell "
                              "whether its files were altered (e.g. its factors' values swapped). If you trust where it came "
                              f"from, run `cfedit migrate {folder}` once to record them (library: allow_unverified=True)")
    shape = cfg.get("image_shape")
    if (not isinstance(shape, list) or len(shape) != 3 or not all(type(s) is int for s in shape)
            or not 1 <= shape[0] <= 4 or not all(4 <= s <= MAX_SIDE for s in shape[1:])):
        raise CheckpointError(f"{folder / 'config.json'}: image_shape {str(shape)[:50]} is not C x H x W with 1-4 channels "
                              f"and sides of 4 to {MAX_SIDE} pixels")
    weights = folder / "weights.safetensors"
    header = read_header(weights)
    meta = metadata(header)
    if meta.get("format") != fmt:
        raise CheckpointError(f"{weights} was not written by cfedit's {fmt.removeprefix('cfedit-')} (format {meta.get('format')!r})")
    try:
        graph = (folder / "graph.cg").read_text()
    except UnicodeDecodeError:
        raise CheckpointError(f"{folder / 'graph.cg'} is not text") from None
    if expected is not None:
        check_layout(header, weights, expected(cfg, graph), "the model its config.json describes")
    if version >= 2:  # version 1 wrote no digests; from 2 on every one is required
        checks = (
            (meta.get("domains_sha256"), lambda: domains_digest(cfg.get("domains", {})), f"{folder / 'config.json'}: the "
             "factors' values differ from those the weights were trained with (reordered or renamed); restore the file or retrain"),
            (meta.get("config_sha256"), lambda: _config_digest(cfg), f"{folder / 'config.json'} differs from the config the "
             "weights were saved with; restore it or retrain"),
            (meta.get("graph_sha256"), lambda: digest(graph), f"{folder / 'graph.cg'} differs from the graph the weights were "
             "trained with (the order of its nodes fixes the network's inputs); restore it or retrain"),
            (cfg.get("weights_sha256"), lambda: file_digest(weights), f"{weights} does not match the digest in config.json: "
             "the file was changed or damaged"),
        )
        for want, actual, message in checks:
            if not isinstance(want, str) or actual() != want:
                raise CheckpointError(message if want is not None else f"{folder} lacks the digests its version requires: "
                                      "it was not written by cfedit or was altered")
    tensors, _ = load_tensors(weights, fmt)
    return cfg, graph, tensors
