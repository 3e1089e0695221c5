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
