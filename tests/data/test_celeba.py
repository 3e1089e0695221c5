"""The CelebA / CelebA-HQ loader on small folders that the tests write in the exact file formats."""

import numpy as np
import pytest

from cfedit.data.celeba import PAPER_GRAPH, CelebAFolder, load_celeba, read_attributes, read_labels
from cfedit.errors import DataError

N = 30  # images in the test folders (conftest.celeba_kit)



def test_celeba_default_factors_map_by_name(celeba_kit, tmp_path):
    table = celeba_kit.table()
    celeba_kit.write(tmp_path, table)
    data = load_celeba(tmp_path)  # default split: train (the first 20 by the partition file)
    assert len(data) == 20 and data.images.shape == (20, 3, 64, 64) and data.images.dtype == np.float32
    assert data.domains.as_dict() == {"Gender": ["female", "male"], "Age": ["young", "old"], "GrayHair": ["0", "1"]}
    t = table[:20]
    np.testing.assert_array_equal(data.labels["Gender"], t[:, celeba_kit.attributes.index("Male")] > 0)
    np.testing.assert_array_equal(data.labels["Age"], t[:, celeba_kit.attributes.index("Young")] < 0)  # Young = -1 is old (code 1)
    np.testing.assert_array_equal(data.labels["GrayHair"], t[:, celeba_kit.attributes.index("Gray_Hair")] > 0)
    # the image content survives the centre crop and resize: red left half for male faces, blue for female
    left = data.images[:, :, :, :28].mean(axis=(2, 3))
    np.testing.assert_array_equal(left[:, 0] > left[:, 2], data.labels["Gender"] == 1)
    assert data.images[:, :, :, 40:].max() < 0.3  # the right half stays dark


def test_celeba_other_factors_splits_and_size(celeba_kit, tmp_path):
    table = celeba_kit.table(1)
    names = celeba_kit.write(tmp_path, table)
    lab = read_labels(tmp_path, ["Smiling", "Eyeglasses"], split="test")
    assert lab.files == tuple(names[25:])
    assert lab.domains.as_dict() == {"Smiling": ["0", "1"], "Eyeglasses": ["0", "1"]}
    np.testing.assert_array_equal(lab.labels["Smiling"], table[25:, celeba_kit.attributes.index("Smiling")] > 0)
    data = load_celeba(tmp_path, ["Male", "Smiling"], size=128, split="all", limit=7)
    assert data.images.shape == (7, 3, 128, 128) and set(data.domains.names) == {"Gender", "Smiling"}


def test_celeba_hq_layout(celeba_kit, tmp_path):
    table = celeba_kit.table(2)
    celeba_kit.write(tmp_path, table, hq=True)
    folder = CelebAFolder.find(tmp_path)
    assert folder.kind == "CelebA-HQ" and folder.partition is None
    data = load_celeba(tmp_path)  # no partition file: every image
    assert len(data) == N
    np.testing.assert_array_equal(data.labels["Gender"], table[:, celeba_kit.attributes.index("Male")] > 0)
    assert PAPER_GRAPH == "Gender <-> Age; Age -> GrayHair"


def _lines(root):
    return (root / "list_attr_celeba.txt").read_text().splitlines()


def _rewrite(root, lines):
    (root / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("break_it, message", [
    (lambda ls: ["thirty", *ls[1:]], r"list_attr_celeba.txt line 1: expected the number of images"),
    (lambda ls: ["31", *ls[1:]], r"line 1: says 31 images but the file lists 30"),
    (lambda ls: [*ls[:4], ls[4] + " 1", *ls[5:]], r"line 5: 41 values for 40 attributes"),
    (lambda ls: [*ls[:6], ls[6].replace(" 1", " 0", 1) if " 1" in ls[6] else ls[6].replace("-1", " 0", 1), *ls[7:]],
     r"line 7: attribute values must be -1 or 1"),
    (lambda ls: [*ls[:3], ls[2], *ls[4:]], r"line 4: '000001.jpg' is listed again \(first on line 3\)"),
    (lambda ls: [ls[0], "000001.jpg 1 -1"], r"line 2: expected distinct attribute names"),
])
def test_malformed_attribute_files_name_file_and_line(celeba_kit, tmp_path, break_it, message):
    celeba_kit.write(tmp_path, celeba_kit.table())
    _rewrite(tmp_path, break_it(_lines(tmp_path)))
    with pytest.raises(DataError, match=message):
        load_celeba(tmp_path)


def test_unknown_attribute_missing_files_and_folders_are_refused(celeba_kit, tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_celeba(tmp_path / "nowhere")
    with pytest.raises(DataError, match="is not a CelebA folder: expected img_align_celeba/ and list_attr_celeba.txt"):
        load_celeba(tmp_path)
    names = celeba_kit.write(tmp_path, celeba_kit.table())
    with pytest.raises(DataError, match=r"list_attr_celeba.txt line 2: no attribute 'Smiles'; attributes are 5_o_Clock"):
        read_labels(tmp_path, ["Smiles"])
    (tmp_path / "img_align_celeba" / names[3]).unlink()
    with pytest.raises(DataError, match=r"image '000004.jpg' is not in"):
        load_celeba(tmp_path)
    (tmp_path / "list_attr_celeba.txt").unlink()
    with pytest.raises(DataError, match="the attribute file list_attr_celeba.txt is missing"):
        load_celeba(tmp_path)


def test_bad_partition_and_corrupt_image_are_refused(celeba_kit, tmp_path):
    names = celeba_kit.write(tmp_path, celeba_kit.table())
    (tmp_path / "list_eval_partition.txt").write_text(f"{names[0]} 0\n{names[1]} train\n")
    with pytest.raises(DataError, match=r"list_eval_partition.txt line 2: expected 'FILE 0\|1\|2'"):
        load_celeba(tmp_path)
    (tmp_path / "list_eval_partition.txt").unlink()
    (tmp_path / "img_align_celeba" / names[2]).write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match="000003.jpg: cannot read as an image"):
        load_celeba(tmp_path)  # no partition file: split train reads every image


def test_attribute_parser_reads_the_count_header_and_rows(celeba_kit, tmp_path):
    celeba_kit.write(tmp_path, celeba_kit.table())
    a = read_attributes(tmp_path / "list_attr_celeba.txt")
    assert a.names == tuple(celeba_kit.attributes) and len(a.files) == N and a.table.dtype == np.int8
    np.testing.assert_array_equal(a.table, celeba_kit.table())


def test_celeba_images_are_read_upright(celeba_kit, tmp_path, oriented):
    """A face stored turned a quarter (218 x 178 in its header) with EXIF orientation 6 reads as the upright face:
    after the centre crop, its red half is still on the left, as in the file written upright."""
    from PIL import Image

    names = celeba_kit.write(tmp_path, celeba_kit.table())
    before = load_celeba(tmp_path, split="all").images
    path = tmp_path / "img_align_celeba" / names[0]
    with Image.open(path) as img:
        path.write_bytes(oriented(np.asarray(img), 6, "JPEG"))
    after = load_celeba(tmp_path, split="all").images
    assert np.abs(after[0] - before[0]).mean() < 4 / 255 and np.array_equal(after[1:], before[1:])
