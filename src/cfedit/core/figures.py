"""Figures: image grids written as PNG files (one tile per image, a caption under each)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cfedit.core.files import atomic_write, check_png_path

__all__ = ["save_grid"]


def save_grid(
    path: str | Path,
    images: np.ndarray,
    captions: Sequence[str] | None = None,
    ncol: int = 8,
    scale: int = 3,
) -> Path:
    """Write images (N, 3, H, W) in [0, 1] as one PNG grid, a caption under each tile (atomically)."""
    path = check_png_path(path)
    images = np.clip(np.asarray(images, dtype=np.float32), 0, 1)
    n, _, h, w = images.shape
    ncol = max(1, min(ncol, n))
    nrow = (n + ncol - 1) // ncol
    cap_h = 12 if captions else 0
    th, tw = h * scale, w * scale
    pad = 2
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
