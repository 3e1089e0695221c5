"""The shared file primitives: text, CSV rows, and the cut of echoed input (issue 14, class 4)."""

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
