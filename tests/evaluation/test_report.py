import json

from PIL import Image

from cfedit.evaluation.report import write_report


def _results():
    est = lambda v, lo, hi, inside: {"estimate": v, "lower": lo, "upper": hi, "n": 100, "inside": inside}  # noqa: E731
    return {
        "world": "backdoor", "n_units": 100, "k_samples": 1, "methods": ["ancm", "non-causal"],
        "queries": [{"query": "P(B[C=green]=1 | D=7, C=red, B=0)", "truth": 0.6, "lower": 0.5, "upper": 0.75,
                     "identified": False, "methods": {"ancm": est(0.62, 0.55, 0.69, True),
                                                      "non-causal": est(0.0, 0.0, 0.04, False)}}],
        "metrics": {"ancm": {"effectiveness": {"value": 0.99, "lower": 0.98, "upper": 1.0, "n": 100}}},
        "grids": {},
    }


def test_report_folder(tmp_path):
    folder = write_report(_results(), tmp_path / "r")
    assert json.loads((folder / "results.json").read_text())["world"] == "backdoor"
    md = (folder / "report.md").read_text()
    assert "0.620 [0.550, 0.690] (n=100) inside" in md and "OUTSIDE" in md
    assert "<td class='bad'>" in (folder / "report.html").read_text()
    assert Image.open(folder / "ctf_intervals.png").size[0] > 100


def test_user_data_rows_show_the_reader_aware_verdict_beside_the_strict_one():
    from cfedit.evaluation.report import ctf_rows

    res = _results()
    q = res["queries"][0]
    q.update({"truth": None, "widened": [0.45, 0.8], "band": [0.4, 0.85], "reader-aware band": [0.39, 0.86]})
    q["methods"]["ancm"].update({"inside": False, "inside (reader-aware)": True})
    _, rows = ctf_rows(res)
    assert "read as [0.390, 0.860]" in rows[0][2]
    assert rows[0][4].endswith("OUTSIDE (reader-aware: inside)") and rows[0][5].endswith("OUTSIDE")
