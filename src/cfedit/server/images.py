"""Images in and out of the web editor: uploads decoded under limits, edits encoded as PNG (base64).

Every refusal is a :class:`ImageRefused` with the HTTP status it maps to (413: too large, 415: not a PNG or
JPEG, 400: undecodable), raised before the image is decoded where its header suffices. Bytes come from the
request body only: no user input names a file.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
from pathlib import Path

import numpy as np

from cfedit.core.files import ImageTooLarge, NotAnImage, open_image
from cfedit.errors import DataError

MAX_UPLOAD_BYTES = 5 << 20  # largest image file accepted (5 MiB)
MAX_UPLOAD_PIXELS = 2048 * 2048  # largest image (width x height) decoded; larger ones are refused from the header
FORMATS = ("PNG", "JPEG")
_MODES = {1: "L", 3: "RGB", 4: "RGBA"}  # the editor's channels -> the colour mode an image is converted to
_DATA_URL = re.compile(r"^data:image/[a-z+.-]+;base64,", re.I)


class ImageRefused(DataError):
    """An image the server will not take, with the HTTP status that says why."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def from_base64(text: str) -> bytes:
    """The bytes of a base64 text (a ``data:image/...;base64,`` prefix allowed), checked against the size limit."""
    body = _DATA_URL.sub("", text.strip(), count=1)
    if len(body) > (MAX_UPLOAD_BYTES * 4) // 3 + 8:
        raise ImageRefused(f"the image is larger than the limit of {MAX_UPLOAD_BYTES >> 20} MiB", 413)
    try:
        data = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise ImageRefused("the image is not valid base64") from None
    if len(data) > MAX_UPLOAD_BYTES:
        raise ImageRefused(f"the image has {len(data):,} bytes, more than the limit of {MAX_UPLOAD_BYTES >> 20} MiB", 413)
    if not data:
        raise ImageRefused("the image is empty")
    return data


def decode(data: bytes, shape: tuple[int, int, int], name: str = "the image") -> tuple[np.ndarray, tuple[int, int] | None]:
    """A PNG or JPEG file's bytes as float32 (C, H, W) in [0, 1] of the editor's ``shape``, upright (its EXIF
    orientation applied, :func:`cfedit.core.files.open_image`): any colour mode converted to the editor's (RGB for
    3 channels), any other size resized (returned as the (width, height) it had upright; None when it fitted)."""
    from PIL import Image

    if len(data) > MAX_UPLOAD_BYTES:
        raise ImageRefused(f"{name} has {len(data):,} bytes, more than the limit of {MAX_UPLOAD_BYTES >> 20} MiB", 413)
    try:
        img = open_image(data, name=name, max_pixels=MAX_UPLOAD_PIXELS, formats=FORMATS)
    except NotAnImage as e:
        raise ImageRefused(str(e), 415) from None
    except ImageTooLarge as e:
        raise ImageRefused(str(e), 413) from None
    except DataError as e:
        raise ImageRefused(str(e)) from None
    rgb = img.convert(_MODES.get(shape[0], "RGB"))
    _, hh, ww = shape
    resized = None
    if rgb.size != (ww, hh):
        rgb, resized = rgb.resize((ww, hh), Image.BILINEAR), rgb.size
    arr = np.asarray(rgb, dtype=np.float32).reshape(hh, ww, -1)
    return arr.transpose(2, 0, 1) / 255.0, resized


def read_file(path: Path, shape: tuple[int, int, int]) -> np.ndarray:
    """An example image from a folder the operator named (same limits as an upload)."""
    if path.stat().st_size > MAX_UPLOAD_BYTES:
        raise ImageRefused(f"example {path.name} is larger than {MAX_UPLOAD_BYTES >> 20} MiB", 413)
    return decode(path.read_bytes(), shape, f"example {path.name}")[0]


def png_base64(image: np.ndarray) -> str:
    """An image (C, H, W) in [0, 1] as base64 PNG bytes."""
    from PIL import Image

    arr = (np.clip(np.asarray(image, np.float32), 0, 1).transpose(1, 2, 0) * 255).round().astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr if arr.shape[2] != 1 else arr[:, :, 0]).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")
