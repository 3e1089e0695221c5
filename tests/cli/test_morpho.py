"""The command line on the Morpho-MNIST worlds (continuous thickness and intensity): world list and show,
bounds over the declared bins, train and evaluate (measured edits), and the refusal of reproduce."""

import json

import pytest


@pytest.fixture(autouse=True)
def wide(monkeypatch):
    """Tables one row per line, so that the tests can find whole cells."""
    from cfedit.cli.common import console

    monkeypatch.setattr(console, "width", 400)


def test_world_list_and_show_a_continuous_world(cli):
    code, out, _ = cli("world", "list")
    assert code == 0 and "morpho-confounded" in out and "continuous factors" in out
    code, out, err = cli("world", "show", "morpho")
    assert code == 0, err
    assert "T -> I" in out and "continuous in [1.5, 6.5]" in out and "E[I[T=3] | T=1.8, I=120]" in out
    assert "220.7250" in out  # I's noise is recovered from (T, I): the documented mean is a point
    assert "P(T[D=2]=2.5-3 | D=7, T=2.5-3, I=150-200)" in out and "[1.0000, 1.0000]" in out  # a non-descendant keeps its bin


def test_bounds_on_a_continuous_world_are_over_its_declared_bins(cli):
    code, out, err = cli("bounds", "--world", "morpho-confounded", "--json")
    assert code == 0, err
    rows = {r["query"]: r for r in json.loads(out)}
    r = rows["P(I[T=2-2.5]=150-200 | D=7, T=2.5-3, I=150-200)"]
    assert r["lower"] - 0.05 <= r["truth"] <= r["upper"] + 0.05 and not r["identified"]  # truth sampled: 4 se is ~0.03
    code, out, err = cli("bounds", "--world", "morpho", "P(I[T=3-3.5]=200-255 | D=1, T=2-2.5, I=100-150)")
    assert code == 0 and "0.7183" in out, err
    code, _, err = cli("bounds", "--world", "morpho", "P(I[T=4]=200-255 | T=1.8)")
    assert code == 2 and "declared bins" in err and "T: 1.5-2, 2-2.5" in err and "Traceback" not in err


def test_reproduce_demo_and_export_refuse_a_continuous_world(cli, tmp_path):
    for cmd in ("reproduce", "demo"):
        code, _, err = cli(cmd, "--world", "morpho", "-o", str(tmp_path / "r"))
        assert code == 2 and "cfedit train --world morpho" in err and not (tmp_path / "r").exists()
    code, _, err = cli("world", "export", "morpho", "-n", "2", "-o", str(tmp_path / "x"))
    assert code == 2 and "continuous factors" in err and not (tmp_path / "x").exists()


@pytest.mark.slow
def test_train_and_evaluate_on_morpho(cli, tmp_path):
    """Smoke level: 48 units, 4 image steps; the point is the commands and their outputs, not the figures."""
    pytest.importorskip("skimage")
    cfg = tmp_path / "tiny.toml"
    cfg.write_text("batch_size = 16\n[ncm]\nsteps = 40\n[image]\nkind = 'vae'\nwidth = 4\nlatent_dim = 2\n[labeller]\nwidth = 4\n")
    run = tmp_path / "run"
    code, out, err = cli("train", "--world", "morpho", "-n", "48", "--steps", "4", "--config", str(cfg), "-o", str(run), "--threads", "1")
    assert code == 0, err
    report = tmp_path / "rep"
    code, out, err = cli("evaluate", str(run), "--world", "morpho", "-n", "3", "-o", str(report), "--threads", "1")
    assert code == 0, err
    assert "thickness MAE" in out and "composition (5 null edits)" in out and "reversibility (T)" in out
    res = json.loads((report / "results.json").read_text())
    assert [m["name"] for m in res["methods"]] == ["ancm", "non-causal", "associational", "independent", "oracle"]
    assert [a["action"] for a in res["methods"][0]["actions"]] == ["T=4", "I=220", "D=2"]
    assert {q["query"] for q in res["queries"]} == {"E[I[T=3] | T=1.8, I=120]", "P(I[T=4] > 200 | T=1.8, I=120)",
                                                    "P(T[I=200] > 2.5 | T=1.8)"}
    assert all(q["consistent"]["oracle"] for q in res["queries"]) and (report / "report.md").is_file()
    from PIL import Image

    from cfedit.worlds import get_world

    a = get_world("morpho").ascm("eval", oracle=False)
    Image.fromarray((a.factual(a.units(1, seed=3))[0, 0] * 255).round().astype("uint8"), "L").save(tmp_path / "one.png")
    code, out, err = cli("edit", str(run), "--image", str(tmp_path / "one.png"), "--do", "T=4", "-n", "2", "-o", str(tmp_path / "e.png"))
    assert code == 0 and "do(T=4)" in out and (tmp_path / "e.png").is_file(), err
    # --certify: the run is matched to world morpho; the certificate is over its declared bins
    one = ["edit", str(run), "--image", str(tmp_path / "one.png"), "-n", "2", "-o", str(tmp_path / "c.png"), "--certify"]
    code, out, err = cli(*one, "--do", "T=4.2", "--label", "D=3, T=1.8, I=120", "--json")
    assert code == 0, err
    cert = json.loads(out)
    assert cert["do"] == {"T": "4.2"} and cert["binned_do"] == {"T": "3.5-6.5"} and cert["binned_factual"] == {"T": "1.5-2", "I": "100-150"}
    assert "declared bins" in cert["binning"] and "binned P(V)" in cert["p_v"] and cert["queries"]
    from cfedit.bounds import optimal_bounds
    from cfedit.core.query import parse_query
    from cfedit.worlds.morpho import Binning, binned_table

    dom = Binning().domains
    for q in cert["queries"]:
        b = optimal_bounds(parse_query(q["query"], dom), get_world("morpho").graph, dom, binned_table(False, Binning()))
        assert (q["lower"], q["upper"]) == pytest.approx((b.lower, b.upper), abs=1e-9)
    code, out, err = cli(*one, "--do", "T=4.2")
    assert code == 0 and "T, I continuous: the certificate is over their declared bins" in out and "1.5-2" in out, err
    code, _, err = cli(*one, "--do", "T=nan")
    assert code == 2 and "nan is outside the range of T" in err and "Traceback" not in err
