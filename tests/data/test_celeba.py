"""The CelebA / CelebA-HQ loader on small folders that the tests write in the exact file formats."""

import numpy as np
import pytest
from PIL import Image

from cfedit.data.celeba import PAPER_GRAPH, CelebAFolder, load_celeba, read_attributes, read_labels
from cfedit.errors import DataError

ATTRS = ("5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose Black_Hair Blond_Hair "
         "Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses Goatee Gray_Hair Heavy_Makeup High_Cheekbones "
         "Male Mouth_Slightly_Open Mustache Narrow_Eyes No_Beard Oval_Face Pale_Skin Pointy_Nose Receding_Hairline "
         "Rosy_Cheeks Sideburns Smiling Straight_Hair Wavy_Hair Wearing_Earrings Wearing_Hat Wearing_Lipstick "
         "Wearing_Necklace Wearing_Necktie Young").split()
N = 30


def _table(seed=0):
    rng = np.random.default_rng(seed)
    return np.where(rng.random((N, len(ATTRS))) < 0.4, 1, -1)


def _write_celeba(root, table, hq=False, partition=True):
    """CelebA: 178x218 JPEGs whose left half is red for a male face (to check the crop keeps the content)."""
    img_dir = root / ("CelebA-HQ-img" if hq else "img_align_celeba")
    img_dir.mkdir(parents=True)
    names = [f"{i}.jpg" if hq else f"{i + 1:06d}.jpg" for i in range(N)]
    male = table[:, ATTRS.index("Male")] > 0
    w, h = (256, 256) if hq else (178, 218)
    for name, m in zip(names, male):
        a = np.full((h, w, 3), 40, np.uint8)
        a[:, : w // 2, 0 if m else 2] = 230
        Image.fromarray(a).save(img_dir / name, quality=95)
    lines = [str(N), " ".join(ATTRS)] + [f"{n}  " + " ".join(f"{v:2d}" for v in row) for n, row in zip(names, table)]
    (root / ("CelebAMask-HQ-attribute-anno.txt" if hq else "list_attr_celeba.txt")).write_text("\n".join(lines) + "\n")
    if partition and not hq:
        (root / "list_eval_partition.txt").write_text("".join(f"{n} {0 if i < 20 else 1 if i < 25 else 2}\n" for i, n in enumerate(names)))
    return names


def test_celeba_default_factors_map_by_name(tmp_path):
    table = _table()
    _write_celeba(tmp_path, table)
    data = load_celeba(tmp_path)  # default split: train (the first 20 by the partition file)
    assert len(data) == 20 and data.images.shape == (20, 3, 64, 64) and data.images.dtype == np.float32
    assert data.domains.as_dict() == {"Gender": ["female", "male"], "Age": ["young", "old"], "GrayHair": ["0", "1"]}
    t = table[:20]
    np.testing.assert_array_equal(data.labels["Gender"], t[:, ATTRS.index("Male")] > 0)
    np.testing.assert_array_equal(data.labels["Age"], t[:, ATTRS.index("Young")] < 0)  # Young = -1 is old (code 1)
    np.testing.assert_array_equal(data.labels["GrayHair"], t[:, ATTRS.index("Gray_Hair")] > 0)
    # the image content survives the centre crop and resize: red left half for male faces, blue for female
    left = data.images[:, :, :, :28].mean(axis=(2, 3))
    np.testing.assert_array_equal(left[:, 0] > left[:, 2], data.labels["Gender"] == 1)
    assert data.images[:, :, :, 40:].max() < 0.3  # the right half stays dark


def test_celeba_other_factors_splits_and_size(tmp_path):
    table = _table(1)
    names = _write_celeba(tmp_path, table)
    lab = read_labels(tmp_path, ["Smiling", "Eyeglasses"], split="test")
    assert lab.files == tuple(names[25:])
    assert lab.domains.as_dict() == {"Smiling": ["0", "1"], "Eyeglasses": ["0", "1"]}
    np.testing.assert_array_equal(lab.labels["Smiling"], table[25:, ATTRS.index("Smiling")] > 0)
    data = load_celeba(tmp_path, ["Male", "Smiling"], size=128, split="all", limit=7)
    assert data.images.shape == (7, 3, 128, 128) and set(data.domains.names) == {"Gender", "Smiling"}


def test_celeba_hq_layout(tmp_path):
    table = _table(2)
    _write_celeba(tmp_path, table, hq=True)
    folder = CelebAFolder.find(tmp_path)
    assert folder.kind == "CelebA-HQ" and folder.partition is None
    data = load_celeba(tmp_path)  # no partition file: every image
    assert len(data) == N
    np.testing.assert_array_equal(data.labels["Gender"], table[:, ATTRS.index("Male")] > 0)
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
def test_malformed_attribute_files_name_file_and_line(tmp_path, break_it, message):
    _write_celeba(tmp_path, _table())
    _rewrite(tmp_path, break_it(_lines(tmp_path)))
    with pytest.raises(DataError, match=message):
        load_celeba(tmp_path)


def test_unknown_attribute_missing_files_and_folders_are_refused(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_celeba(tmp_path / "nowhere")
    with pytest.raises(DataError, match="is not a CelebA folder: expected img_align_celeba/ and list_attr_celeba.txt"):
        load_celeba(tmp_path)
    names = _write_celeba(tmp_path, _table())
    with pytest.raises(DataError, match=r"list_attr_celeba.txt line 2: no attribute 'Smiles'; attributes are 5_o_Clock"):
        read_labels(tmp_path, ["Smiles"])
    (tmp_path / "img_align_celeba" / names[3]).unlink()
    with pytest.raises(DataError, match=r"image '000004.jpg' is not in"):
        load_celeba(tmp_path)
    (tmp_path / "list_attr_celeba.txt").unlink()
    with pytest.raises(DataError, match="the attribute file list_attr_celeba.txt is missing"):
        load_celeba(tmp_path)


def test_bad_partition_and_corrupt_image_are_refused(tmp_path):
    names = _write_celeba(tmp_path, _table())
    (tmp_path / "list_eval_partition.txt").write_text(f"{names[0]} 0\n{names[1]} train\n")
    with pytest.raises(DataError, match=r"list_eval_partition.txt line 2: expected 'FILE 0\|1\|2'"):
        load_celeba(tmp_path)
    (tmp_path / "list_eval_partition.txt").unlink()
    (tmp_path / "img_align_celeba" / names[2]).write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match="000003.jpg: cannot read as an image"):
        load_celeba(tmp_path)  # no partition file: split train reads every image


def test_attribute_parser_reads_the_count_header_and_rows(tmp_path):
    _write_celeba(tmp_path, _table())
    a = read_attributes(tmp_path / "list_attr_celeba.txt")
    assert a.names == tuple(ATTRS) and len(a.files) == N and a.table.dtype == np.int8
    np.testing.assert_array_equal(a.table, _table())
