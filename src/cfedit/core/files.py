"""Small file primitives shared by every layer: atomic writes, CSV rows, RGB images. Imports no torch.

Each refuses bad input with a :class:`~cfedit.errors.DataError` that names the file, never a traceback.
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
from pathlib import Path

import numpy as np

from cfedit.errors import DataError


def atomic_write(path: str | Path, data: bytes | str) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and an atomic rename, so a
    reader (or an interrupted writer) never sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = data.encode() if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_text(path: str | Path, what: str = "file") -> str:
    """The UTF-8 text of ``path``; a missing, unreadable or binary file is a :class:`DataError`."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{what} {path} does not exist")
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise DataError(f"{what} {path} is not UTF-8 text") from None
    except OSError as e:
        raise DataError(f"cannot read {what} {path}: {e.strerror or e}") from None


def read_csv_rows(path: str | Path, what: str = "labels file") -> tuple[list[str], list[dict[str, str]]]:
    """Header and rows (dicts of stripped strings) of a CSV file; empty or headerless files are refused."""
    text = read_text(path, what)
    try:
        reader = csv.DictReader(io.StringIO(text))
        rows = [{k: (v or "").strip() for k, v in r.items() if k is not None} for r in reader]
        header = [h.strip() for h in (reader.fieldnames or [])]
    except csv.Error as e:
        raise DataError(f"{what} {path} is not a readable CSV: {e}") from None
    if not header:
        raise DataError(f"{what} {path} is empty")
    if len(set(header)) != len(header):
        raise DataError(f"{what} {path} repeats a column name: {', '.join(header)}")
    rows = [{h.strip(): v for h, v in r.items()} for r in rows]
    return header, rows


def read_rgb(path: str | Path) -> np.ndarray:
    """An RGB image file (PNG or JPEG) as float32 (3, H, W) in [0, 1]; other modes and non-images are refused."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise DataError(f"image {path} does not exist")
    try:
        with Image.open(path) as img:
            if img.mode != "RGB":
                raise DataError(f"{path}: image mode {img.mode}, expected RGB (3 channels)")
            img.load()
            return np.asarray(img, dtype=np.float32).transpose(2, 0, 1) / 255.0
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        if isinstance(e, DataError):
            raise
        raise DataError(f"{path}: cannot read as an image ({e})") from None
