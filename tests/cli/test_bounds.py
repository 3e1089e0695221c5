import json

import numpy as np

from cfedit.worlds import get_world


def test_world_queries_table_and_json(cli):
    code, out, err = cli("bounds", "--world", "backdoor", "P(B[C=green]=1 | D=7, C=red, B=0)", "--json")
    assert code == 0, err
    (row,) = json.loads(out)
    assert abs(row["lower"] - 0.5) < 1e-6 and abs(row["upper"] - 0.75) < 1e-6 and not row["identified"]
    assert row["lower"] < row["truth"] < row["upper"]


def test_graph_and_labels_csv_give_empirical_bounds(cli, tmp_path):
    w = get_world("backdoor")
    v = w.scm.sample(20000, seed=0)
    lines = ["D,C,B"] + [f"{d},{'green' if c == 0 else 'red'},{b}" for d, c, b in zip(v["D"], v["C"], v["B"])]
    (tmp_path / "labels.csv").write_text("\n".join(lines) + "\n")
    (tmp_path / "g.cg").write_text(w.graph.to_cg())
    (tmp_path / "q.txt").write_text("# edit colour\nP(B[C=green]=1 | D=7, C=red)\nP(D[C=green]=7 | D=7, C=red)\n")
    code, out, err = cli("bounds", "--graph", str(tmp_path / "g.cg"), "--labels", str(tmp_path / "labels.csv"),
                         "-f", str(tmp_path / "q.txt"), "--json")
    assert code == 0, err
    rows = json.loads(out)
    # identified: the empirical P(B=1 | D=7, C=green) from ~580 rows, within 4 standard errors of 0.6
    n = int(((v["D"] == 7) & (v["C"] == 0)).sum())
    assert rows[0]["identified"] and abs(rows[0]["lower"] - 0.6) < 4 * np.sqrt(0.24 / n)
    assert rows[1]["lower"] == rows[1]["upper"] == 1.0


def test_bad_input(cli, tmp_path):
    code, _, err = cli("bounds", "--world", "backdoor", "P(B[C=blue]=1)")
    assert code == 2 and "valid values are green, red" in err
    code, _, err = cli("bounds", "--world", "backdoor", "P(B[C=green]=1 | D=7, D=3)")
    assert code == 2 and "error:" in err and "Traceback" not in err
    (tmp_path / "g.cg").write_text("D -> B")
    (tmp_path / "l.csv").write_text("D\n1\n2\n")
    code, _, err = cli("bounds", "--graph", str(tmp_path / "g.cg"), "--labels", str(tmp_path / "l.csv"), "P(B=1)")
    assert code == 2 and "lacks column(s) B" in err
    (tmp_path / "l.csv").write_text("D,B\n1,0\n2,0\n")
    code, _, err = cli("bounds", "--graph", str(tmp_path / "g.cg"), "--labels", str(tmp_path / "l.csv"), "P(B[D=1]=0 | D=5)")
    assert code == 2 and "error:" in err


# ---------------------------------------------------------------- values are names; malformed files refused
def _user_files(tmp_path):
    (tmp_path / "g.cg").write_text("X -> Z\n")
    (tmp_path / "l.csv").write_text("X,Z\n1,0\n2,1\n1,1\n2,0\n")
    return ["--graph", str(tmp_path / "g.cg"), "--labels", str(tmp_path / "l.csv")]


def _refused(result, *fragments):
    code, out, err = result
    assert code == 2 and err.startswith("error:") and "Traceback" not in err + out, (code, err[:300])
    for f in fragments:
        assert f in err, (f, err[:300])
    assert len(err) < 1000
    return err


def test_a_value_that_is_not_a_name_is_refused_not_read_as_a_code(cli, tmp_path):
    """Class 3: with X in {1, 2}, X=0 used to mean the value 1 (code 0) and gave an answer with status 0."""
    args = _user_files(tmp_path)
    for q in ["P(Z[X=1]=1 | X=0, Z=0)", "P(Z[X=-1]=1)", "P(Z=1 | X=a)"]:
        _refused(cli("bounds", *args, q), "is not a value of X; valid values are 1, 2")
    code, out, err = cli("bounds", *args, "P(Z[X=1]=1 | X=2, Z=0)", "--json")
    assert code == 0, err
    assert json.loads(out)[0]["query"] == "P(Z[X=1]=1 | X=2, Z=0)"


def test_malformed_graph_label_and_query_files_are_refused(cli, tmp_path):
    """Class 4: empty, blank and binary files, /dev/null, values outside ASCII and huge values."""
    args = _user_files(tmp_path)
    g, lab = tmp_path / "bad.cg", tmp_path / "bad.csv"
    for text, msg in [("", "declares no factors"), ("\n  \n", "declares no factors")]:
        g.write_text(text)
        _refused(cli("bounds", "--graph", str(g), *args[2:], "P(Z=1)"), msg)
    g.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xd8\x00")
    _refused(cli("bounds", "--graph", str(g), *args[2:], "P(Z=1)"), "graph file", "not UTF-8 text")
    _refused(cli("bounds", *args[:2], "--labels", str(g), "P(Z=1)"), "labels file", "not UTF-8 text")
    _refused(cli("bounds", *args, "-f", str(g)), "query file", "not UTF-8 text")
    err = _refused(cli("bounds", *args, "-f", "/dev/null"), "query file /dev/null is not a regular file")
    assert "does not exist" not in err
    (tmp_path / "q.txt").write_text("# nothing but a comment\n\n")
    _refused(cli("bounds", *args, "-f", str(tmp_path / "q.txt")), "has no queries")
    lab.write_text("X,Z\n1,0\n²,1\n")
    _refused(cli("bounds", *args[:2], "--labels", str(lab), "P(Z=1)"), "line 3", "'²' of X")
    lab.write_text("X,Z\n1,0\n" + "7" * 5000 + ",1\n")
    _refused(cli("bounds", *args[:2], "--labels", str(lab), "P(Z=1)"), "line 3", "longer than 100")
    _refused(cli("bounds", *args, "P(Z=1 | X=" + "7" * 5000 + ")"), "is not a value of X", "(5,000 characters)")
    _refused(cli("bounds", *args, "P(Z=²)"), "unexpected character '²'")


def test_a_joint_table_too_large_is_refused_before_allocation(cli, tmp_path):
    """Class 4: 40 binary factors make a P(V) of 2^40 cells (8 TiB): refused with its size."""
    names = [f"X{i}" for i in range(40)]
    (tmp_path / "g.cg").write_text("; ".join(f"{a} -> {b}" for a, b in zip(names, names[1:])))
    rng = np.random.default_rng(0)
    rows = [",".join(names)] + [",".join(map(str, r)) for r in rng.integers(0, 2, (50, 40))]
    (tmp_path / "l.csv").write_text("\n".join(rows) + "\n")
    _refused(cli("bounds", "--graph", str(tmp_path / "g.cg"), "--labels", str(tmp_path / "l.csv"), "P(X1=1)"),
             "P(V) over 40 factors has 1.1e+12 cells", "limit of 1e+07")


def test_a_large_query_prints_its_size_then_its_progress(cli, tmp_path, caplog):
    """A long bounds query shows its size before it starts, then its progress, on
    stderr through the cfedit logger; a small one prints nothing but its table. X (14 values) -> Y:
    P(Y_0 = 1, ..., Y_13 = 1) couples 14 slots (2^14 response types)."""
    import logging

    (tmp_path / "g.cg").write_text("X -> Y\n")
    rows = ["X,Y"] + [f"x{x},{int(i < 8 + x % 3)}" for x in range(14) for i in range(10)]
    (tmp_path / "l.csv").write_text("\n".join(rows) + "\n")
    files = ["--graph", str(tmp_path / "g.cg"), "--labels", str(tmp_path / "l.csv")]
    every = "P(" + ", ".join(f"Y[X=x{x}]=1" for x in range(14)) + ")"
    caplog.set_level(logging.INFO, logger="cfedit")
    code, out, err = cli("bounds", *files, "P(Y[X=x1]=1 | X=x0)", every, "--json")
    assert code == 0, err
    lines = [r.getMessage() for r in caplog.records if r.name == "cfedit"]
    assert lines and all(ln.startswith("[2/2] ") for ln in lines), lines  # the small query printed nothing
    assert "response types per component read: {Y} 16,384" in lines[0]
    assert lines[1].startswith("[2/2] bounds: 1 of 1 component laws free; programme of ")
    assert lines[2].startswith("[2/2] lower bound") and lines[3].startswith("[2/2] upper bound")
    row = json.loads(out)[1]
    p_y1 = np.array([(8 + x % 3) / 10 for x in range(14)])
    assert abs(row["lower"] - max(0.0, p_y1.sum() - 13)) < 1e-6 and abs(row["upper"] - p_y1.min()) < 1e-6
