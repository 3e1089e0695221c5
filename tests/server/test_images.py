"""Uploads decoded by the server: upright, as they display (no trained run needed)."""

import io

import numpy as np
import pytest
from PIL import Image

from cfedit.server.images import ImageRefused, decode


@pytest.mark.parametrize("fmt, tol", [("PNG", 1e-6), ("JPEG", 4 / 255)])
@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_uploads_are_decoded_upright(upright, oriented, orientation, fmt, tol):
    """A photo stored turned, with its EXIF orientation, is the upright image (its size too, when resized)."""
    x, resized = decode(oriented(upright, orientation, fmt), (3, 12, 20))
    assert resized is None and np.abs(x - upright.transpose(2, 0, 1) / 255).mean() <= tol
    assert decode(oriented(upright, orientation, fmt), (3, 28, 28))[1] == (20, 12)


def test_refusals_keep_their_status(oriented, upright):
    """Read through the shared reader, a refusal still maps to its HTTP status: 415 for another format, 400 for a
    truncated file."""
    buf = io.BytesIO()
    Image.fromarray(upright).save(buf, format="GIF")
    with pytest.raises(ImageRefused, match="the image: a GIF image, not PNG or JPEG") as e:
        decode(buf.getvalue(), (3, 12, 20))
    assert e.value.status == 415
    data = oriented(upright, 6, "PNG")
    with pytest.raises(ImageRefused, match="cannot be decoded") as e:
        decode(data[: len(data) // 2], (3, 12, 20))
    assert e.value.status == 400
