"""Labelled image datasets from a world and from a folder of PNGs + labels CSV."""

import numpy as np
import pytest
from PIL import Image

from cfedit.core.domains import Domains
from cfedit.data import LabelledImages
from cfedit.errors import DataError
from cfedit.worlds import get_world


def test_world_dataset():
    w = get_world("backdoor")
    d = w.dataset(64, seed=1)
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
    with pytest.raises(DataError, match="no file column: name it one of file, filename, image, path"):
        LabelledImages.from_folder(img_dir, csv)


@pytest.mark.parametrize("column", ["file", "filename", "image", "path"])
def test_file_column_names_that_other_tools_write(tmp_path, column):
    d = LabelledImages.from_folder(*_folder(tmp_path, header=f"{column},C,S"))
    assert d.domains.names == ("C", "S") and len(d) == 4


def test_two_file_columns_are_ambiguous(tmp_path):
    img_dir, csv = _folder(tmp_path, header="file,image,C", rows=[f"{i}.png,{i}.png,red" for i in range(4)])
    with pytest.raises(DataError, match=r"2 \(file, image\); give one file column"):
        LabelledImages.from_folder(img_dir, csv)


# ---------------------------------------------------------------- files outside the folder
@pytest.mark.parametrize("name", ["../outside.png", "{outside}", "../../../../etc/passwd", "sub/../../outside.png",
                                  "link.png"])
def test_files_outside_the_folder_are_refused_unopened(tmp_path, monkeypatch, name):
    img_dir, _ = _folder(tmp_path)
    Image.new("RGB", (8, 8)).save(tmp_path / "outside.png")
    (img_dir / "link.png").symlink_to(tmp_path / "outside.png")  # a link out of the folder counts as outside
    name = name.format(outside=tmp_path / "outside.png")
    csv = tmp_path / "labels.csv"
    csv.write_text(f"file,C\n0.png,red\n{name},green\n")
    opened = []
    monkeypatch.setattr("cfedit.data.read_rgb", lambda p: opened.append(p))
    with pytest.raises(DataError, match=r"labels.csv line 3: .* is outside the image folder .*only files inside it"):
        LabelledImages.from_folder(img_dir, csv)
    assert opened == []  # refused before any image is opened


def test_a_long_outside_path_is_cut_in_the_message(tmp_path):
    img_dir, csv = _folder(tmp_path, rows=["../" * 2000 + "etc/passwd,red,0"])
    with pytest.raises(DataError) as e:
        LabelledImages.from_folder(img_dir, csv)
    assert "outside the image folder" in str(e.value) and len(str(e.value)) < 600


def test_inside_paths_in_subfolders_are_read(tmp_path):
    img_dir, _ = _folder(tmp_path)
    (img_dir / "sub").mkdir()
    Image.new("RGB", (8, 8), (255, 0, 0)).save(img_dir / "sub" / "r.png")
    csv = tmp_path / "labels.csv"
    csv.write_text(f"file,C\nsub/r.png,red\n./0.png,green\n{img_dir / '1.png'},green\n")
    d = LabelledImages.from_folder(img_dir, csv)
    assert len(d) == 3 and d.images[0, 0].min() == 1.0


@pytest.mark.parametrize("second,how", [("0.png,green", "with other labels"), ("./0.png,red", "with the same labels")])
def test_duplicate_files_are_refused(tmp_path, second, how):
    img_dir, csv = _folder(tmp_path, header="file,C", rows=["0.png,red", "1.png,green", second])
    with pytest.raises(DataError, match=rf"line 4: .* is listed again \({how}; first on line 2\)"):
        LabelledImages.from_folder(img_dir, csv)


# ---------------------------------------------------------------- values
def test_csv_codes_follow_sorted_names_and_text_is_never_a_code(tmp_path):
    img_dir, csv = _folder(tmp_path, header="file,X", rows=["0.png,2", "1.png,10", "2.png,1"])
    d = LabelledImages.from_folder(img_dir, csv)
    assert d.domains.values("X") == ("1", "2", "10")  # numerically sorted names; codes follow them
    assert d.labels["X"].tolist() == [1, 2, 0]
    dom = Domains({"X": ["1", "2"]})
    img_dir, csv = _folder(tmp_path, header="file,X", rows=["0.png,1", "1.png,0"])
    with pytest.raises(DataError, match="line 3: '0' is not a value of X; valid values are 1, 2"):
        LabelledImages.from_folder(img_dir, csv, domains=dom)


@pytest.mark.parametrize("value,match", [("²", "line 3.*other than ASCII letters"), ("7" * 5000, "longer than 100"),
                                         ("", "line 3: no value in column 'X'"), ("light blue", "other than ASCII")])
def test_malformed_values_in_a_csv_are_refused(tmp_path, value, match):
    img_dir, csv = _folder(tmp_path, header="file,X", rows=["0.png,1", f"1.png,{value}"])
    with pytest.raises(DataError, match=match) as e:
        LabelledImages.from_folder(img_dir, csv)
    assert len(str(e.value)) < 600


def test_wrong_mode_and_size(tmp_path):
    img_dir, csv = _folder(tmp_path, mode="L")
    with pytest.raises(DataError, match="mode L"):
        LabelledImages.from_folder(img_dir, csv)
    img_dir, csv = _folder(tmp_path / "b" if (tmp_path / "b").mkdir() is None else tmp_path)
    Image.new("RGB", (9, 8)).save(img_dir / "3.png")
    with pytest.raises(DataError, match="size"):
        LabelledImages.from_folder(img_dir, csv)


def test_a_folder_too_large_for_memory_is_refused_before_decoding(tmp_path, monkeypatch):
    import numpy as np
    from PIL import Image

    import cfedit.data as data

    for i in range(3):
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / f"{i}.png")
    (tmp_path / "labels.csv").write_text("file,X\n0.png,a\n1.png,b\n2.png,a\n")
    monkeypatch.setattr(data, "MAX_DATASET_BYTES", 2 * 3 * 8 * 8 * 4)  # room for two images
    decoded = []
    monkeypatch.setattr(data, "read_rgb", lambda p: decoded.append(p))
    with pytest.raises(DataError, match="need .* GiB as float32"):
        data.LabelledImages.from_folder(tmp_path, tmp_path / "labels.csv")
    assert decoded == []


def test_from_folder_reads_images_upright(tmp_path, upright, oriented):
    """A folder of phone photos: some stored turned (their header says 12 x 20) with the EXIF orientation that
    turns them back. Each is read as it displays, all the same size upright, none sideways."""
    for i, o in enumerate((1, 6, 8, 3)):
        (tmp_path / f"{i}.jpg").write_bytes(oriented(upright, o, "JPEG"))
    (tmp_path / "labels.csv").write_text("file,X\n" + "".join(f"{i}.jpg,{i % 2}\n" for i in range(4)))
    d = LabelledImages.from_folder(tmp_path, tmp_path / "labels.csv")
    assert d.images.shape == (4, 3, 12, 20)
    assert np.abs(d.images - upright.transpose(2, 0, 1) / 255).mean(axis=(1, 2, 3)).max() < 4 / 255
