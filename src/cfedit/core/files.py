"""Small file primitives shared by every layer: atomic writes, text, CSV rows, RGB images. Imports no torch.

Each refuses bad input with a :class:`~cfedit.errors.DataError` that names the file, never a traceback.
:func:`clip` cuts user input echoed in a message (a 5 MB graph line, a 5,000-digit value) to a readable length.
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


MESSAGE_CHARS = 200  # the most characters of user input that a message echoes
MAX_TEXT_BYTES = 1 << 30  # the largest text file read (graph, queries, labels CSV): 1 GiB


def clip(text: object, limit: int = MESSAGE_CHARS) -> str:
    """``text`` as it may appear in a message: cut to ``limit`` characters, saying how long it was.

    >>> clip("7" * 5000, 10)
    '7777777777... (5,000 characters)'
    """
    text = str(text)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


def read_text(path: str | Path, what: str = "file") -> str:
    """The UTF-8 text of ``path``. A missing path, something that is not a regular file (a folder,
    ``/dev/null``, a pipe), a file over :data:`MAX_TEXT_BYTES`, an unreadable file or a binary one (not
    UTF-8, or with NUL bytes) is a :class:`DataError` that says which."""
    path = Path(path)
    name = clip(path)
    try:
        exists, regular = path.exists(), path.is_file()
        size = path.stat().st_size if regular else 0
    except OSError as e:  # e.g. a name too long for the file system
        raise DataError(f"cannot read {what} {name}: {e.strerror or e}") from None
    if not exists:
        raise DataError(f"{what} {name} does not exist")
    if not regular:
        kind = "a folder" if path.is_dir() else "not a regular file"
        raise DataError(f"{what} {name} is {kind}")
    if size > MAX_TEXT_BYTES:
        raise DataError(f"{what} {name} has {size:,} bytes, more than the {MAX_TEXT_BYTES:,} read as text")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise DataError(f"{what} {name} is not UTF-8 text (a binary file?)") from None
    except OSError as e:
        raise DataError(f"cannot read {what} {name}: {e.strerror or e}") from None
    if "\x00" in text:
        raise DataError(f"{what} {name} contains NUL bytes: not a text file")
    return text


def read_csv_rows(path: str | Path, what: str = "labels file") -> tuple[list[str], list[dict[str, str]]]:
    """Header and rows (dicts of stripped strings) of a CSV file; empty or headerless files are refused."""
    text = read_text(path, what)
    try:
        reader = csv.DictReader(io.StringIO(text))
        rows = [{k: (v or "").strip() for k, v in r.items() if k is not None} for r in reader]
        header = [h.strip() for h in (reader.fieldnames or [])]
    except csv.Error as e:
        raise DataError(f"{what} {clip(path)} is not a readable CSV: {clip(e)}") from None
    if not header:
        raise DataError(f"{what} {clip(path)} is empty")
    if len(set(header)) != len(header):
        raise DataError(f"{what} {clip(path)} repeats a column name: {clip(', '.join(header))}")
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
