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

from cfedit.errors import CfeditError, DataError, StorageError


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
        os.chmod(tmp, 0o666 & ~UMASK)  # mkstemp's 0600 would hide a run from the other users of a shared folder
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


UMASK = _umask()  # the process's umask, read once: files and folders shared with other users get mode & ~UMASK


MAX_PIXELS = 4096 * 4096  # largest image (height x width) that cfedit decodes: 200 MB as float32 RGB
ORIENTATION = 0x0112  # the EXIF tag a camera or phone writes instead of turning the pixels (1: upright, 5-8: a quarter turn)


class NotAnImage(DataError):
    """A file that is no image, or not of a format asked for."""


class ImageTooLarge(DataError):
    """An image with more pixels than a limit, refused from its header before any pixel is decoded."""


def _path(source: str | Path) -> Path:
    path = Path(source)
    if not path.exists():
        raise DataError(f"image {clip(str(path))} does not exist")
    if not path.is_file():
        raise DataError(f"image {clip(str(path))} is {'a folder' if path.is_dir() else 'not a regular file'}")
    return path


def _upright_size(img, name: str, max_pixels: int, formats: tuple[str, ...] | None) -> tuple[int, int]:
    """(width, height) of an opened image as it displays, from its header: format and pixel count checked."""
    if formats is not None and img.format not in formats:
        raise NotAnImage(f"{name}: {'a ' + img.format if img.format else 'an unknown'} image, not {' or '.join(formats)}")
    w, h = img.size
    if w * h > max_pixels:
        raise ImageTooLarge(f"{name}: {w}x{h} pixels, more than cfedit's limit of {max_pixels:,}; resize it first")
    # Pillow looks for a PNG's EXIF after its pixels by decoding them; the header's (before the pixels) is the one read here
    header_exif = img.format != "PNG" or "exif" in img.info
    return (h, w) if header_exif and img.getexif().get(ORIENTATION, 1) in (5, 6, 7, 8) else (w, h)


def _opened(source: str | Path | bytes, name: str, max_pixels: int, formats: tuple[str, ...] | None, decode: bool):
    """The size as displayed, and (``decode``) the upright pixels, of an image file or its bytes."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as img:
                size = _upright_size(img, name, max_pixels, formats)
                return size, ImageOps.exif_transpose(img) if decode else None
    except UnidentifiedImageError:
        raise NotAnImage(f"{name}: cannot read as an image (not an image file, or of a format cfedit does not read)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageTooLarge(f"{name}: cannot read as an image ({clip(e)})") from None
    except (OSError, SyntaxError, ValueError) as e:
        if isinstance(e, DataError):
            raise
        raise DataError(f"{name}: cannot read as an image, its pixels cannot be decoded ({clip(e)})") from None


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) of an image file as it displays (EXIF orientation applied), from its header without
    decoding it; refused beyond MAX_PIXELS."""
    path = _path(path)
    return _opened(path, clip(str(path)), MAX_PIXELS, None, decode=False)[0]


def open_image(source: str | Path | bytes, *, name: str | None = None, max_pixels: int = MAX_PIXELS,
               formats: tuple[str, ...] | None = None):
    """An image file (its path, or its bytes) decoded upright: as it displays, with the EXIF orientation that a
    camera or phone writes instead of turning the pixels applied (``PIL.ImageOps.exif_transpose``). Every reader
    of a user's image goes through here. Its format (one of ``formats``, when given) and pixel count are checked
    from the header before any pixel is decoded. Refusals: :class:`NotAnImage`, :class:`ImageTooLarge`, else a
    :class:`DataError` (missing, truncated, corrupt) whose message starts with ``name`` (default: the path)."""
    if not isinstance(source, bytes):
        source = _path(source)
    return _opened(source, name or clip(str(source)), max_pixels, formats, decode=True)[1]


def read_rgb(path: str | Path) -> np.ndarray:
    """An RGB image file (PNG or JPEG) as float32 (3, H, W) in [0, 1], upright (:func:`open_image`). Its size
    is read from the header and checked against MAX_PIXELS before decoding; other modes, non-images and
    truncated files are refused."""
    return read_image(path, 3)


def read_image(path: str | Path, channels: int = 3) -> np.ndarray:
    """An image file as float32 (channels, H, W) in [0, 1], upright: RGB for 3 channels (:func:`read_rgb`); for 1
    channel a grey (mode L) image, or an RGB one converted to grey (its luma: exact for R = G = B)."""
    img = open_image(path)
    modes = ("L", "RGB") if channels == 1 else ("RGB",)
    if img.mode not in modes:
        want = "grey (L) or RGB" if channels == 1 else "RGB (3 channels)"
        raise DataError(f"{clip(str(path))}: image mode {img.mode}, expected {want}")
    if channels == 1:
        return np.asarray(img.convert("L"), dtype=np.float32)[None] / 255.0
    return np.asarray(img, dtype=np.float32).transpose(2, 0, 1) / 255.0


def check_folder_path(path: str | Path) -> Path:
    """An output folder: refused, before any work, if it exists and is not a folder, or if the system would
    not let us write there (a read-only file system, no permission)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise CfeditError(f"output {path} is a file; give a folder")
    for parent in (path, *path.parents):
        if parent.exists():
            if not parent.is_dir():
                raise CfeditError(f"cannot make the folder {path}: {parent} is a file")
            _check_writable(parent, path)
            break
    return path


def _check_writable(folder: Path, path: Path) -> None:
    if not os.access(folder, os.W_OK | os.X_OK):
        raise CfeditError(f"cannot write {path}: {folder} is read-only or not ours to write (check its permissions "
                          "and that its file system is not mounted read-only)")


def check_png_path(path: str | Path) -> Path:
    """An output path for a PNG file: refused, before any work, if it is a folder or lacks the .png suffix."""
    path = Path(path)
    if path.is_dir():
        raise CfeditError(f"output {path} is a folder; give a file name ending in .png")
    if path.suffix.lower() != ".png":
        raise CfeditError(f"output {path} must end in .png (images are written as PNG)")
    if path.parent.exists() and not path.parent.is_dir():
        raise CfeditError(f"cannot write {path}: {path.parent} is not a folder")
    check_folder_path(path.parent)
    return path
