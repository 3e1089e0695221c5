"""CelebA and CelebA-HQ from a local folder (nothing is downloaded).

Layouts read (the files as their authors distribute them):

* CelebA: ``img_align_celeba/*.jpg``, ``list_attr_celeba.txt`` (a count line, a line of 40 attribute
  names, then one line per image: ``000001.jpg  -1  1 ...``) and, optionally, ``list_eval_partition.txt``
  (``000001.jpg 0``: 0 training, 1 validation, 2 test);
* CelebA-HQ: ``CelebA-HQ-img/*.jpg`` with ``CelebAMask-HQ-attribute-anno.txt`` (the same format).

Factors are attributes mapped by name. The default is the paper's: Male -> Gender (female, male), Young ->
Age (young, old; Young = -1 is old), Gray_Hair -> GrayHair (0, 1), over the diagram Gender <-> Age,
Age -> GrayHair. Any other attribute becomes a factor of its own name with values 0 (-1) and 1 (1).
Images are centre-cropped to a square and resized (64 by default). Every file and line is checked before
any image is decoded; a problem is a :class:`DataError` naming the file and the line.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cfedit.core.domains import Domains
from cfedit.core.files import clip, open_image
from cfedit.data import MAX_DATASET_BYTES, LabelledImages
from cfedit.errors import DataError

# attribute -> (factor, value name for -1, value name for 1); other attributes: (attribute, "0", "1")
NAMED = {"Male": ("Gender", "female", "male"), "Young": ("Age", "old", "young"), "Gray_Hair": ("GrayHair", "0", "1")}
DEFAULT_FACTORS = ("Male", "Young", "Gray_Hair")
PAPER_GRAPH = "Gender <-> Age; Age -> GrayHair"  # the paper's diagram over the default factors
DOMAIN_ORDER = {"Age": ("young", "old")}  # codes as in the faces world (young = 0)
LAYOUTS = (  # (kind, image folder, attribute file, partition file or "")
    ("CelebA", "img_align_celeba", "list_attr_celeba.txt", "list_eval_partition.txt"),
    ("CelebA-HQ", "CelebA-HQ-img", "CelebAMask-HQ-attribute-anno.txt", ""),
)
SPLITS = {"train": 0, "valid": 1, "test": 2}  # list_eval_partition.txt codes; "all" reads every image
MAX_LINE_REPORT = 200


@dataclass(frozen=True)
class Attributes:
    """The attribute file of a folder: attribute names, image file names and the (N, A) table of -1 / 1."""

    path: Path
    names: tuple[str, ...]
    files: tuple[str, ...]
    table: np.ndarray  # int8, -1 or 1

    def column(self, name: str) -> np.ndarray:
        if name not in self.names:
            raise DataError(f"{clip(self.path)} line 2: no attribute {clip(name)!r}; attributes are {', '.join(self.names)}")
        return self.table[:, self.names.index(name)]


@dataclass(frozen=True)
class CelebAFolder:
    """A CelebA or CelebA-HQ folder: which layout, its image folder and its annotation files."""

    root: Path
    kind: str
    images: Path
    attributes: Path
    partition: Path | None

    @classmethod
    def find(cls, root: str | Path) -> CelebAFolder:
        """Recognise the layout of ``root``; a folder with neither layout's files is refused, naming what lacks."""
        root = Path(root)
        if not root.is_dir():
            raise DataError(f"CelebA folder {clip(root)} {'is not a folder' if root.exists() else 'does not exist'}")
        for kind, img, attr, part in LAYOUTS:
            if (root / attr).exists() or (root / img).exists():
                if not (root / attr).is_file():
                    raise DataError(f"{kind} folder {clip(root)}: the attribute file {attr} is missing")
                if not (root / img).is_dir():
                    raise DataError(f"{kind} folder {clip(root)}: the image folder {img}/ is missing")
                p = root / part if part and (root / part).is_file() else None
                return cls(root, kind, root / img, root / attr, p)
        want = "; or ".join(f"{img}/ and {attr}" for _, img, attr, _ in LAYOUTS)
        raise DataError(f"{clip(root)} is not a CelebA folder: expected {want}")


def read_attributes(path: str | Path) -> Attributes:
    """Parse an attribute file; a bad count line, header, row length, value or repeated file is refused with
    its line number."""
    path = Path(path)
    where = clip(path)
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError:
        raise DataError(f"{where} is not a text file") from None
    except OSError as e:
        raise DataError(f"cannot read {where}: {e.strerror or e}") from None
    if len(lines) < 2:
        raise DataError(f"{where}: expected a count line and a header line of attribute names, found {len(lines)} line(s)")
    try:
        count = int(lines[0].strip())
    except ValueError:
        raise DataError(f"{where} line 1: expected the number of images, found {clip(lines[0], 60)!r}") from None
    names = tuple(lines[1].split())
    if not names or len(set(names)) != len(names) or any(n.lstrip("-").isdigit() or n.endswith(".jpg") for n in names):
        raise DataError(f"{where} line 2: expected distinct attribute names, found {clip(lines[1], 80)!r}")
    body = [(i, ln) for i, ln in enumerate(lines[2:], start=3) if ln.strip()]
    if len(body) != count:
        raise DataError(f"{where} line 1: says {count:,} images but the file lists {len(body):,}")
    files, table, seen = [], np.empty((len(body), len(names)), dtype=np.int8), {}
    for r, (i, ln) in enumerate(body):
        cells = ln.split()
        if len(cells) != len(names) + 1:
            raise DataError(f"{where} line {i}: {len(cells) - 1} values for {len(names)} attributes")
        if cells[0] in seen:
            raise DataError(f"{where} line {i}: {clip(cells[0], 60)!r} is listed again (first on line {seen[cells[0]]})")
        seen[cells[0]] = i
        try:
            row = [int(c) for c in cells[1:]]
        except ValueError:
            row = [2]
        if any(c not in (-1, 1) for c in row):
            raise DataError(f"{where} line {i}: attribute values must be -1 or 1, found {clip(' '.join(cells[1:]), 80)!r}")
        files.append(cells[0])
        table[r] = row
    return Attributes(path, names, tuple(files), table)


def read_partition(path: Path, files: Sequence[str], split: str) -> np.ndarray:
    """Mask of ``files`` in ``split`` per ``list_eval_partition.txt`` (``file code`` lines)."""
    where = clip(path)
    code: dict[str, int] = {}
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read {where}: {e}") from None
    for i, ln in enumerate(text.splitlines(), start=1):
        if not ln.strip():
            continue
        cells = ln.split()
        if len(cells) != 2 or cells[1] not in ("0", "1", "2"):
            raise DataError(f"{where} line {i}: expected 'FILE 0|1|2', found {clip(ln, 80)!r}")
        code[cells[0]] = int(cells[1])
    missing = [f for f in files if f not in code]
    if missing:
        raise DataError(f"{where}: no partition for {len(missing):,} image(s) of the attribute file, e.g. {clip(missing[0], 60)!r}")
    return np.array([code[f] == SPLITS[split] for f in files])


def factor_domains(attributes: Sequence[str]) -> tuple[dict[str, tuple[str, str, str]], Domains]:
    """Factor name -> (attribute, value for -1, value for 1), and the domains, for the chosen attributes."""
    if not attributes:
        raise DataError("no attributes chosen as factors")
    if len(set(attributes)) != len(attributes):
        raise DataError(f"an attribute is chosen twice: {', '.join(attributes)}")
    spec = {}
    for a in attributes:
        factor, neg, pos = NAMED.get(a, (a, "0", "1"))
        spec[factor] = (a, neg, pos)
    values = {f: list(DOMAIN_ORDER.get(f, (neg, pos))) for f, (_, neg, pos) in spec.items()}
    return spec, Domains(values)


@dataclass(frozen=True)
class CelebALabels:
    """The chosen factors of the chosen images of a folder (no pixels read)."""

    folder: CelebAFolder
    files: tuple[str, ...]
    labels: dict[str, np.ndarray]
    domains: Domains


def read_labels(root: str | Path, attributes: Sequence[str] = DEFAULT_FACTORS, split: str = "all",
                limit: int | None = None) -> CelebALabels:
    """Factor codes of the images of ``split`` ("train", "valid", "test" per the partition file, or "all"),
    the first ``limit`` of them if given."""
    folder = CelebAFolder.find(root)
    if split not in (*SPLITS, "all"):
        raise DataError(f"unknown split {split!r}; splits are {', '.join(SPLITS)}, all")
    attrs = read_attributes(folder.attributes)
    spec, domains = factor_domains(attributes)
    columns = {f: attrs.column(a) for f, (a, _, _) in spec.items()}  # unknown attribute names fail here
    keep = np.ones(len(attrs.files), dtype=bool)
    if split != "all":
        if folder.partition is None:
            raise DataError(f"{folder.kind} folder {clip(folder.root)} has no partition file: use split 'all'")
        keep = read_partition(folder.partition, attrs.files, split)
    index = np.flatnonzero(keep)[:limit]
    if len(index) == 0:
        raise DataError(f"{clip(folder.attributes)}: no image in split {split!r}")
    labels = {}
    for f, (_, neg, pos) in spec.items():
        codes = np.where(columns[f][index] > 0, domains.code(f, pos), domains.code(f, neg))
        labels[f] = codes.astype(np.int64)
    return CelebALabels(folder, tuple(attrs.files[i] for i in index), labels, domains)


def load_celeba(root: str | Path, attributes: Sequence[str] = DEFAULT_FACTORS, size: int = 64, split: str = "train",
                limit: int | None = None) -> LabelledImages:
    """Images (centre-cropped square, resized to ``size``) and factors of a CelebA or CelebA-HQ folder.
    ``split`` "train" falls back to "all" for a folder without a partition file (CelebA-HQ)."""
    if size not in (32, 64, 128, 256):
        raise DataError(f"image size must be 32, 64, 128 or 256, got {size}")
    folder = CelebAFolder.find(root)
    if split == "train" and folder.partition is None:
        split = "all"
    lab = read_labels(root, attributes, split, limit)
    need = 4 * 3 * size * size * len(lab.files)
    if need > MAX_DATASET_BYTES:
        raise DataError(f"{len(lab.files):,} images at {size}x{size} need {need / 2**30:.1f} GiB as float32, more than "
                        f"{MAX_DATASET_BYTES / 2**30:.0f} GiB: give fewer (-n) or a smaller size")
    root_dir = folder.images.resolve()
    paths = []
    for name in lab.files:  # every file checked before any is decoded
        path = (root_dir / name).resolve()
        if not path.is_relative_to(root_dir) or not path.is_file():
            raise DataError(f"{clip(folder.attributes)}: image {clip(name, 60)!r} is not in {clip(folder.images)}")
        paths.append(path)
    images = np.empty((len(paths), 3, size, size), dtype=np.float32)
    for i, path in enumerate(paths):
        images[i] = _square(path, size)
    return LabelledImages(images, lab.labels, lab.domains)


def _square(path: Path, size: int) -> np.ndarray:
    """The centre square of an image, resized to size x size, float32 (3, size, size) in [0, 1]."""
    from PIL import Image

    img = open_image(path).convert("RGB")
    w, h = img.size
    s = min(w, h)
    box = ((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s)
    out = img.resize((size, size), Image.Resampling.LANCZOS, box=box)
    return np.asarray(out, dtype=np.float32).transpose(2, 0, 1) / np.float32(255)


def parse_factors(text: str | None) -> tuple[str, ...]:
    """``--factors`` text: attribute names separated by commas (None: the paper's Male, Young, Gray_Hair)."""
    if text is None:
        return DEFAULT_FACTORS
    names = tuple(t.strip() for t in text.split(",") if t.strip())
    if not names:
        raise DataError("--factors needs attribute names separated by commas, e.g. Male,Young,Gray_Hair")
    return names


def graph_text(attributes: Sequence[str], graph: str | None = None) -> str:
    """The diagram: ``graph`` if given, else the paper's for the default factors; other factors need one."""
    if graph is not None:
        return graph
    if tuple(attributes) != DEFAULT_FACTORS:
        raise DataError(f"factors {', '.join(attributes)} are not the paper's (Male, Young, Gray_Hair): give their "
                        f"diagram with --graph (factor names: {', '.join(factor_domains(attributes)[1].names)})")
    return PAPER_GRAPH
