"""The shared file primitives: text, CSV rows, and the cut of echoed input."""

import pytest

from cfedit.core.files import clip, read_csv_rows, read_text
from cfedit.errors import DataError


def test_clip_says_how_long_the_input_was():
    assert clip("abc") == "abc"
    assert clip("7" * 5000, 10) == "7777777777... (5,000 characters)"


def test_read_text_says_what_is_wrong(tmp_path):
    with pytest.raises(DataError, match="query file .*nope does not exist"):
        read_text(tmp_path / "nope", "query file")
    with pytest.raises(DataError, match="query file /dev/null is not a regular file"):
        read_text("/dev/null", "query file")
    with pytest.raises(DataError, match="is a folder"):
        read_text(tmp_path, "query file")
    (tmp_path / "b").write_bytes(b"\xff\xfe\x00\x01")
    with pytest.raises(DataError, match="not UTF-8 text"):
        read_text(tmp_path / "b")
    (tmp_path / "z").write_bytes(b"D,C\n\x00\x00\n")
    with pytest.raises(DataError, match="NUL bytes"):
        read_csv_rows(tmp_path / "z")
    (tmp_path / "ok").write_text("\ufeffa,b\n1,2\n")
    assert read_csv_rows(tmp_path / "ok") == (["a", "b"], [{"a": "1", "b": "2"}])


def test_read_text_refuses_files_over_the_limit(tmp_path, monkeypatch):
    monkeypatch.setattr("cfedit.core.files.MAX_TEXT_BYTES", 10)
    (tmp_path / "g.cg").write_text("X -> Y; Y -> Z\n")
    with pytest.raises(DataError, match="has 15 bytes, more than the 10 read as text"):
        read_text(tmp_path / "g.cg", "graph file")


def _png_header(path, width, height):
    """A real 1x1 PNG whose header is rewritten to announce width x height: Pillow opens it with that size
    (enough for a size check; decoding it fails for lack of pixels)."""
    import io
    import struct
    import zlib

    import numpy as np
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.zeros((1, 1, 3), np.uint8)).save(buf, format="PNG")
    raw = bytearray(buf.getvalue())
    raw[16:24] = struct.pack(">II", width, height)  # IHDR data starts after signature (8), length (4), type (4)
    raw[29:33] = struct.pack(">I", zlib.crc32(bytes(raw[12:29])))
    path.write_bytes(bytes(raw))
    return path


def test_image_size_is_checked_from_the_header_before_decoding(tmp_path):
    import pytest

    from cfedit.core.files import image_size, read_rgb
    from cfedit.errors import DataError

    with pytest.raises(DataError, match="5000x5000 pixels, more than cfedit's limit"):
        read_rgb(_png_header(tmp_path / "big.png", 5000, 5000))
    with pytest.raises(DataError, match="decompression bomb"):  # Pillow's own refusal, beyond 179 megapixels
        read_rgb(_png_header(tmp_path / "bomb.png", 20000, 20000))
    assert image_size(_png_header(tmp_path / "ok.png", 64, 32)) == (64, 32)
    with pytest.raises(DataError, match="cannot read"):
        read_rgb(tmp_path / "ok.png")  # announces 64x32, holds one pixel: truncated


def test_written_files_are_readable_by_others(tmp_path):
    import os
    import stat

    from cfedit.core.files import atomic_write

    path = atomic_write(tmp_path / "f.json", "{}")
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask


def test_csv_rows_with_extra_cells_are_refused(tmp_path):
    import pytest

    from cfedit.core.files import read_csv_rows
    from cfedit.errors import DataError

    (tmp_path / "l.csv").write_text("file,C\n0.png,red\n1.png,green,extra\n")
    with pytest.raises(DataError, match="line 3: 3 cells, the header has 2 columns"):
        read_csv_rows(tmp_path / "l.csv")


def test_a_repeated_header_row_is_refused_not_read_as_data(tmp_path):
    """Two CSV files concatenated: the second header would become a row of values named like the factors."""
    (tmp_path / "l.csv").write_text("D,C,B\n7,red,0\n D , C,B\n3,green,1\n")
    with pytest.raises(DataError, match="l.csv line 3 repeats the header row"):
        read_csv_rows(tmp_path / "l.csv")
    (tmp_path / "ok.csv").write_text("D,C,B\nD,red,0\n")  # a value equal to its column's name alone is data
    assert read_csv_rows(tmp_path / "ok.csv")[1] == [{"D": "D", "C": "red", "B": "0"}]


def test_image_paths_that_are_not_files_say_so(tmp_path):
    import pytest

    from cfedit.core.files import read_rgb
    from cfedit.errors import DataError

    with pytest.raises(DataError, match="is a folder"):
        read_rgb(tmp_path)
    with pytest.raises(DataError, match="not a regular file"):
        read_rgb("/dev/null")
    with pytest.raises(DataError, match="does not exist"):
        read_rgb(tmp_path / "absent.png")


@pytest.mark.parametrize("orientation", range(1, 9))
def test_images_are_read_upright(tmp_path, upright, oriented, orientation):
    """A file stored turned or flipped, with the EXIF orientation that a camera writes instead of turning the
    pixels, reads as it displays: the upright image (exactly for a PNG, within JPEG's error for a JPEG), and its
    size from the header is the upright one."""
    from cfedit.core.files import image_size, read_rgb

    for fmt, tol in (("PNG", 1e-6), ("JPEG", 4 / 255)):  # mean absolute error; a wrong turn or flip gives over 0.15
        path = tmp_path / f"o{orientation}.{fmt.lower()}"
        path.write_bytes(oriented(upright, orientation, fmt))
        x = read_rgb(path)
        assert x.shape == (3, 12, 20) and image_size(path) == (20, 12)
        assert abs(x - upright.transpose(2, 0, 1) / 255).mean() <= tol, (fmt, orientation)


def test_grey_images_read_and_grids_of_grey_images(tmp_path):
    """A 1-channel model reads a grey PNG, or an RGB one as its luma (exact for R = G = B); grids draw grey images."""
    import numpy as np
    from PIL import Image

    from cfedit.core.figures import save_grid
    from cfedit.core.files import read_image, read_rgb

    grey = (np.arange(28 * 28).reshape(28, 28) % 256).astype(np.uint8)
    Image.fromarray(grey, "L").save(tmp_path / "g.png")
    Image.fromarray(np.stack([grey] * 3, axis=2), "RGB").save(tmp_path / "c.png")
    for name in ("g.png", "c.png"):
        x = read_image(tmp_path / name, 1)
        assert x.shape == (1, 28, 28) and np.allclose(x[0] * 255, grey)
    with pytest.raises(DataError, match="expected RGB"):
        read_rgb(tmp_path / "g.png")
    path = save_grid(tmp_path / "grid.png", np.stack([grey[None] / 255.0] * 2).astype(np.float32), ["a", "b"])
    assert Image.open(path).mode == "RGB"
