"""Labelled image datasets from a world and from a folder of PNGs + labels CSV."""

import numpy as np
import pytest
from PIL import Image

from cfedit.core.domains import Domains
from cfedit.data import LabelledImages
from cfedit.errors import DataError
from cfedit.worlds import get_world


def test_from_world():
    w = get_world("backdoor")
    d = LabelledImages.from_world(w, 64, seed=1)
    assert d.images.shape == (64, 3, 28, 28) and d.images.dtype == np.float32
    assert d.domains == w.domains and set(d.labels) == {"D", "C", "B"}
    assert len(d.subset(np.arange(10))) == 10


def _folder(tmp_path, n=4, size=(8, 8), mode="RGB", header="file,C,S", rows=None):
    img_dir = tmp_path / "imgs"
    img_dir.mkdir(exist_ok=True)
    for i in range(n):
        Image.new(mode, size).save(img_dir / f"{i}.png")
    rows = rows or [f"{i}.png,{'red' if i % 2 else 'green'},{i % 3}" for i in range(n)]
    csv = tmp_path / "labels.csv"
    csv.write_text(header + "\n" + "\n".join(rows) + "\n")
    return img_dir, csv


def test_from_folder_infers_domains(tmp_path):
    d = LabelledImages.from_folder(*_folder(tmp_path))
    assert d.domains == Domains({"C": ["green", "red"], "S": ["0", "1", "2"]})
    assert d.images.shape == (4, 3, 8, 8)
    assert d.labels["C"].tolist() == [0, 1, 0, 1]


def test_from_folder_with_given_domains(tmp_path):
    dom = Domains({"C": ["red", "green"], "S": ["0", "1", "2", "3"]})
    d = LabelledImages.from_folder(*_folder(tmp_path), domains=dom)
    assert d.labels["C"].tolist() == [1, 0, 1, 0]


def test_folder_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        LabelledImages.from_folder(tmp_path / "nope", tmp_path / "x.csv")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no PNG"):
        LabelledImages.from_folder(tmp_path / "empty", tmp_path / "x.csv")
    img_dir, csv = _folder(tmp_path)
    with pytest.raises(DataError, match="lacks column"):
        LabelledImages.from_folder(img_dir, csv, domains=Domains({"C": ["green", "red"], "Q": ["a"]}))
    with pytest.raises(DataError, match="not a value"):
        LabelledImages.from_folder(img_dir, csv, domains=Domains({"C": ["green"], "S": ["0", "1", "2"]}))


def test_missing_file_column(tmp_path):
    img_dir, csv = _folder(tmp_path, header="name,C,S")
    with pytest.raises(DataError, match="'file'"):
        LabelledImages.from_folder(img_dir, csv)


def test_wrong_mode_and_size(tmp_path):
    img_dir, csv = _folder(tmp_path, mode="L")
    with pytest.raises(DataError, match="mode L"):
        LabelledImages.from_folder(img_dir, csv)
    img_dir, csv = _folder(tmp_path / "b" if (tmp_path / "b").mkdir() is None else tmp_path)
    Image.new("RGB", (9, 8)).save(img_dir / "3.png")
    with pytest.raises(DataError, match="size"):
        LabelledImages.from_folder(img_dir, csv)
