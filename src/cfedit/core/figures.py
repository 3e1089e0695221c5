"""Figures: image grids written as PNG files (one tile per image, a caption under each)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cfedit.core.files import atomic_write, check_png_path

__all__ = ["read_grid", "save_grid"]

PAD = 2  # white pixels between tiles
CAPTION_HEIGHT = 12  # pixels under each tile for its caption


def save_grid(
    path: str | Path,
    images: np.ndarray,
    captions: Sequence[str] | None = None,
    ncol: int = 8,
    scale: int = 3,
) -> Path:
    """Write images (N, 3, H, W) in [0, 1] (or grey, (N, 1, H, W)) as one PNG grid, a caption under each tile
    (atomically)."""
    path = check_png_path(path)
    images = np.clip(np.asarray(images, dtype=np.float32), 0, 1)
    if images.ndim == 4 and images.shape[1] == 1:
        images = np.repeat(images, 3, axis=1)
    n, _, h, w = images.shape
    ncol = max(1, min(ncol, n))
    nrow = (n + ncol - 1) // ncol
    cap_h = CAPTION_HEIGHT if captions else 0
    th, tw = h * scale, w * scale
    pad = PAD
    from PIL import Image, ImageDraw

    canvas = Image.new("RGB", (ncol * (tw + pad) + pad, nrow * (th + cap_h + pad) + pad), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for i in range(n):
        r, c = divmod(i, ncol)
        tile = Image.fromarray((images[i].transpose(1, 2, 0) * 255).round().astype(np.uint8))
        x, y = pad + c * (tw + pad), pad + r * (th + cap_h + pad)
        canvas.paste(tile.resize((tw, th), Image.NEAREST), (x, y))
        if captions:
            draw.text((x + 1, y + th), captions[i], fill=(0, 0, 0))
    buf = io.BytesIO()
    canvas.save(buf, format="PNG")
    return atomic_write(path, buf.getvalue())


def read_grid(path: str | Path, n: int, tile_shape: tuple[int, int, int], ncol: int = 8, scale: int = 3,
              captions: bool = True) -> np.ndarray:
    """The n images (N, C, H, W) in [0, 1] of a grid that :func:`save_grid` wrote with these settings (to within the
    PNG's 8 bits): the inverse of the layout, for checks that a figure shows the images it should."""
    from PIL import Image

    c, h, w = tile_shape
    ncol = max(1, min(ncol, n))
    cap_h = CAPTION_HEIGHT if captions else 0
    with Image.open(path) as im:
        canvas = np.asarray(im.convert("RGB"), dtype=np.float32) / 255
    out = np.empty((n, c, h, w), np.float32)
    for i in range(n):
        r, col = divmod(i, ncol)
        x, y = PAD + col * (w * scale + PAD), PAD + r * (h * scale + cap_h + PAD)
        out[i] = canvas[y:y + h * scale:scale, x:x + w * scale:scale, :c].transpose(2, 0, 1)
    return out
