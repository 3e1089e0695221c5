import dataclasses
import json

import pytest
from PIL import Image

from cfedit.errors import CfeditError
from cfedit.evaluation.metrics import Estimate
from cfedit.evaluation.misread import Misread
from cfedit.evaluation.report import ctf_rows, metric_rows, verdict_line, write_report
from cfedit.evaluation.results import (
    RESULTS_VERSION,
    BoundsRanges,
    EditorScores,
    EvaluationResults,
    InterventionScores,
    QueryResult,
    ReaderReport,
    Verdict,
    dumps,
)

NAN = float("nan")


def _scores(eff: float) -> EditorScores:
    e = Estimate(eff, eff - 0.01, min(1.0, eff + 0.01), 100)
    return EditorScores(effectiveness=e, preservation=e, null_edit_error=Estimate(0.02, 0.01, 0.03, 100),
                        interventions=(InterventionScores(action="C=green", effectiveness=e, preservation=e),),
                        composition_steps=10, composition_error=Estimate(0.05, 0.04, 0.06, 100),
                        faithfulness={"C": e})


def _results() -> EvaluationResults:
    bounds, aware = (0.5, 0.75), (0.45, 0.8)
    query = QueryResult(query="P(B[C=green]=1 | D=7, C=red, B=0)", truth=0.6, lower=0.5, upper=0.75, identified=False,
                        misread_bound=0.1, reader_aware_band=aware,
                        methods={"ancm": Verdict.judge(Estimate(0.62, 0.55, 0.69, 100), bounds, aware),
                                 "non-causal": Verdict.judge(Estimate(0.0, 0.0, 0.04, 100), bounds, aware)})
    untested = dataclasses.replace(query, query="P(B[C=green]=1 | D=0, C=red, B=1)",
                                   methods={m: Verdict.judge(Estimate(NAN, 0.0, 1.0, 0), bounds, aware) for m in ("ancm", "non-causal")})
    reader = ReaderReport(kind="oracle", accuracy={"C": Estimate(1.0, 0.99, 1.0, 100)},
                          misreads={"C": Misread(worst_class="red", misread=0, n=0, upper=1.0, level=0.95)})
    return EvaluationResults(world="backdoor", n_units=100, k_samples=1, config={"seed": 1, "reversibility": None},
                             editors={"ancm": _scores(0.99), "non-causal": _scores(0.9)}, queries=(query, untested), reader=reader)


def test_report_folder(tmp_path):
    folder = write_report(_results(), tmp_path / "r")
    data = json.loads((folder / "results.json").read_text())
    assert data["world"] == "backdoor" and data["version"] == RESULTS_VERSION
    md = (folder / "report.md").read_text()
    assert "0.620 [0.550, 0.690] (n=100) inside" in md and "OUTSIDE" in md
    assert "composition error (10 null edits)" in md and "faithfulness (C)" in md  # titles from the fields
    assert "<td class='bad'>" in (folder / "report.html").read_text()
    assert Image.open(folder / "ctf_intervals.png").size[0] > 100


def test_results_json_is_strict_and_reads_back(tmp_path):
    """NaN (an untested estimate, a class without images) is written as null, never as a bare NaN, and the file
    reads back to the same results (NaN read back as NaN); another layout version is refused."""
    res = _results()
    text = dumps(res)
    json.loads(text, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))
    assert "NaN" not in text and "Infinity" not in text
    (tmp_path / "results.json").write_text(text)
    back = EvaluationResults.load(tmp_path / "results.json")
    assert dumps(back) == text and back.queries[0] == res.queries[0] and back.editors == res.editors
    assert back.queries[1].methods["ancm"].estimate.n == 0 and back.reader.misreads["C"] == res.reader.misreads["C"]
    old = json.loads(text)
    old["version"] = 1
    with pytest.raises(CfeditError, match="layout version 1; this cfedit reads version 2"):
        EvaluationResults.from_json(old)
    del old["version"], old["editors"]["ancm"]["effectiveness"]
    old["version"] = RESULTS_VERSION
    with pytest.raises(CfeditError, match=r"editors.ancm: missing field 'effectiveness'"):
        EvaluationResults.from_json(old)


def test_a_query_without_units_is_untested_never_inconsistent():
    res = _results()
    v = res.queries[1].methods["ancm"]
    assert not v.tested and v.inside is None and v.inside_reader_aware is None
    c = res.counts("ancm")
    assert (c.queries, c.tested, c.untested, c.inside) == (2, 1, 1, 1)
    assert res.counts("non-causal").inside == 0 and res.counts("non-causal").untested == 1
    _, rows = ctf_rows(res)
    assert "untested" in rows[1][4] and "OUTSIDE" not in rows[1][4] and "OUTSIDE" in rows[0][5]
    assert verdict_line(res, "ancm") == ("1/1 tested queries consistent; 1 of 2 untested (no evaluated image was read as "
                                         "their evidence: neither consistent nor inconsistent)")


def test_user_data_rows_show_the_reader_aware_verdict_beside_the_strict_one():
    res = _results()
    q = res.queries[0]
    band, aware = (0.4, 0.85), (0.39, 0.86)
    ranges = BoundsRanges(certified=True, lower_range=(0.45, 0.55), upper_range=(0.7, 0.8), pointwise=(0.45, 0.8),
                          band=band, resamples=10, skipped=0)
    q = dataclasses.replace(q, truth=None, ranges=ranges, reader_aware_band=aware,
                            methods={"ancm": Verdict.judge(Estimate(0.2, 0.1, 0.3, 50), band, (0.25, 0.86), (0.45, 0.8)),
                                     "non-causal": Verdict.judge(Estimate(0.0, 0.0, 0.04, 100), band, aware)})
    _, rows = ctf_rows(dataclasses.replace(res, queries=(q,)))
    assert "(95% range [0.450, 0.800]; all queries at once [0.400, 0.850]) read as [0.390, 0.860]" in rows[0][2]
    assert rows[0][4].endswith("OUTSIDE (reader-aware: inside)") and rows[0][5].endswith("OUTSIDE (reader-aware: OUTSIDE)")


def test_metric_columns_come_from_the_fields():
    res = _results()
    head, rows = metric_rows(res)
    assert head == ["method", "effectiveness", "preservation", "faithfulness (C)", "null-edit error",
                    "composition error (10 null edits)"]
    assert rows[0][0] == "ancm" and rows[0][1] == "0.990 [0.980, 1.000] (n=100)"
