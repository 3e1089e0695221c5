"""A world's units written as a user's data set: one PNG per unit, ``labels.csv``, ``graph.cg``, ``truth.json``.

The folder reads back with :meth:`cfedit.data.LabelledImages.from_folder` (and ``cfedit train --images``,
``cfedit evaluate --images``), so that every world can be run through the user-data path, where nothing
but the images, the labels and the diagram is known. ``truth.json`` keeps what only the world knows: the
exact P(V) and the true values of its documented counterfactual queries, to check a user-data report
against. The folder is written under a temporary name and renamed into place, so a reader never sees
half an export.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from cfedit.core.files import UMASK, clip
from cfedit.core.query import parse_query
from cfedit.errors import CfeditError
from cfedit.worlds.base import World

MAX_EXPORT_UNITS = 200_000  # units of one export (one PNG each)
LABELS, GRAPH, TRUTH = "labels.csv", "graph.cg", "truth.json"


def export_world(world: World, n: int, folder: str | Path, *, split: str = "eval", seed: int = 0,
                 data_dir: str | None = None) -> Path:
    """Write ``n`` units of ``world`` (image noise from ``split``, drawn with ``seed``) into ``folder``,
    which must not exist or be empty. Returns the folder."""
    if world.domains.continuous_names:
        raise CfeditError(f"world {world.name!r} has continuous factors ({', '.join(world.domains.continuous_names)}); the "
                          "user-data path reads labels as value names, so it cannot be exported as a user's data set")
    if not 1 <= n <= MAX_EXPORT_UNITS:
        raise CfeditError(f"export -n must be 1 to {MAX_EXPORT_UNITS:,}, got {n}")
    folder = Path(folder)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise CfeditError(f"{clip(folder)} exists and is {'not a folder' if not folder.is_dir() else 'not empty'}: "
                          "give a new or empty folder")
    a = world.ascm(split, data_dir, oracle=False)  # checks the split
    units = a.units(n, seed)
    images = a.factual(units)
    names = world.domains.names
    width = len(str(n - 1))
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.", suffix=".tmp"))
    try:
        rows = ["file," + ",".join(names)]
        for i in range(n):
            file = f"{i:0{width}d}.png"
            (tmp / file).write_bytes(_png(images[i]))
            rows.append(file + "," + ",".join(world.domains.decode(k, int(units.v[k][i])) for k in names))
        (tmp / LABELS).write_text("\n".join(rows) + "\n")
        (tmp / GRAPH).write_text(world.graph.to_cg())
        (tmp / TRUTH).write_text(json.dumps(truth(world) | {"split": split, "seed": seed, "n": n}, indent=2))
        os.chmod(tmp, 0o777 & ~UMASK)  # mkdtemp's 0700 would hide the data set from others
        os.replace(tmp, folder)  # an empty folder is replaced too
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def truth(world: World) -> dict:
    """What the world knows and a user's data does not: the exact P(V) (axes in ``factors`` order) and the
    true value of each documented query."""
    p = world.scm.observational()
    return {"world": world.name, "graph": str(world.graph), "factors": world.domains.as_dict(),
            "p_v": p.tolist(), "queries": [{"query": q, "truth": world.scm.probability(parse_query(q, world.domains))}
                                           for q in world.queries]}


def _png(image: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray((np.clip(image, 0, 1).transpose(1, 2, 0) * 255).round().astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()

