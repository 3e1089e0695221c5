"""Small file primitives shared by every layer: atomic writes, text, CSV rows, RGB images. Imports no torch.

Each refuses bad input with a :class:`~cfedit.errors.DataError` that names the file, never a traceback.
:func:`clip` cuts user input echoed in a message (a 5 MB graph line, a 5,000-digit value) to a readable length.
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np

from cfedit.errors import DataError, StorageError


def atomic_write(path: str | Path, data: bytes | str) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and an atomic rename, so a
    reader (or an interrupted writer) never sees half a file. A write the system refuses (a read-only
    folder, a full disk, no permission) is a :class:`~cfedit.errors.StorageError` naming ``path``."""
    path = Path(path)
    raw = data.encode() if isinstance(data, str) else data
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp's 0600 would hide a run from the other users of a shared folder
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError) and not isinstance(e, StorageError):
            raise storage_error(e, f"cannot write {clip(path)}") from None
        raise
    return path


def storage_error(e: OSError, doing: str) -> StorageError:
    """``e`` (an ``OSError`` from the system) as one line: what was being done, and the system's reason."""
    return StorageError(f"{doing}: {e.strerror or e}", e.errno)


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
    """Header and rows (dicts of stripped strings) of a CSV file; empty or headerless files are refused, and so
    is a row equal to the header (a second header inside the file would otherwise become data)."""
    text = read_text(path, what)
    try:
        reader = csv.DictReader(io.StringIO(text))
        rows = []
        for r in reader:
            if None in r:  # more cells than the header has columns
                raise DataError(f"{what} {clip(path)} line {reader.line_num}: {len(r) - 1 + len(r[None])} cells, "
                                f"the header has {len(r) - 1} columns")
            row = {k: (v or "").strip() for k, v in r.items()}
            if all(v == k.strip() for k, v in row.items()):  # e.g. two CSV files concatenated: the header is no data
                raise DataError(f"{what} {clip(path)} line {reader.line_num} repeats the header row; remove it")
            rows.append(row)
        header = [h.strip() for h in (reader.fieldnames or [])]
    except csv.Error as e:
        raise DataError(f"{what} {clip(path)} is not a readable CSV: {clip(e)}") from None
    if not header:
        raise DataError(f"{what} {clip(path)} is empty")
    if len(set(header)) != len(header):
        raise DataError(f"{what} {clip(path)} repeats a column name: {clip(', '.join(header))}")
    rows = [{h.strip(): v for h, v in r.items()} for r in rows]
    return header, rows


def _umask() -> int:
    mask = os.umask(0)  # the only way to read it; done once, at import
    os.umask(mask)
    return mask


_UMASK = _umask()


MAX_PIXELS = 4096 * 4096  # largest image (height x width) that cfedit decodes: 200 MB as float32 RGB


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) of an image file from its header, without decoding it; refused beyond MAX_PIXELS."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.exists():
        raise DataError(f"image {clip(str(path))} does not exist")
    if not path.is_file():
        raise DataError(f"image {clip(str(path))} is {'a folder' if path.is_dir() else 'not a regular file'}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                w, h = img.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError,
            Image.DecompressionBombWarning) as e:
        raise DataError(f"{clip(str(path))}: cannot read as an image ({clip(str(e))})") from None
    if w * h > MAX_PIXELS:
        raise DataError(f"{clip(str(path))}: {w}x{h} pixels, more than cfedit's limit of {MAX_PIXELS:,} (4096x4096); "
                        "resize it first")
    return w, h


def read_rgb(path: str | Path) -> np.ndarray:
    """An RGB image file (PNG or JPEG) as float32 (3, H, W) in [0, 1]. Its size is read from the header and
    checked against MAX_PIXELS before decoding; other modes, non-images and truncated files are refused."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    image_size(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                if img.mode != "RGB":
                    raise DataError(f"{clip(str(path))}: image mode {img.mode}, expected RGB (3 channels)")
                img.load()
                return np.asarray(img, dtype=np.float32).transpose(2, 0, 1) / 255.0
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError,
            Image.DecompressionBombWarning) as e:
        if isinstance(e, DataError):
            raise
        raise DataError(f"{clip(str(path))}: cannot read as an image ({clip(str(e))})") from None
