import numpy as np


def test_world_list_and_show(cli):
    code, out, _ = cli("world", "list")
    assert code == 0 and "backdoor" in out and "frontdoor" in out
    code, out, _ = cli("world", "show", "frontdoor")
    assert code == 0 and "D -> C" in out and "P(D, C, B)" in out and "P(C[D=2]=red | D=7, C=red)" in out
    assert "optimal bounds" in out and "[0.5000, 0.7500]" in out  # P(B[C=green]=1 | D=7, C=red, B=0): Frechet


def test_world_sample_and_counterfactual_write_pngs(cli, tmp_path):
    """The grids show the world's own renders: `sample` the factual images of the units of the seed, in order;
    `counterfactual` each unit's factual image, then its true counterfactual (read back tile by tile)."""
    from cfedit.core.figures import read_grid
    from cfedit.worlds import get_world

    a = get_world("backdoor").ascm("eval", oracle=False)
    code, out, _ = cli("world", "sample", "backdoor", "-n", "6", "--seed", "3", "-o", str(tmp_path / "g.png"))
    assert code == 0, out
    units = a.units(6, 3)
    np.testing.assert_allclose(read_grid(tmp_path / "g.png", 6, (3, 28, 28)), a.factual(units), atol=0.5 / 255 + 1e-6)
    code, out, _ = cli("world", "counterfactual", "backdoor", "--do", "C=green", "-n", "4", "-o", str(tmp_path / "p.png"))
    assert code == 0 and "do(C=green)" in out
    units = a.units(4, 0)
    v_cf, cf = a.counterfactual(units, {"C": 0})
    tiles = read_grid(tmp_path / "p.png", 8, (3, 28, 28))
    np.testing.assert_allclose(tiles[0::2], a.factual(units), atol=0.5 / 255 + 1e-6)
    np.testing.assert_allclose(tiles[1::2], cf, atol=0.5 / 255 + 1e-6)
    red = units.v["C"] == 1
    assert red.any() and (np.abs(tiles[1::2][red] - tiles[0::2][red]).max(axis=(1, 2, 3)) > 0.5).all()  # recoloured
    assert (tiles[1::2][:, 0] == 0).all()  # no red strokes left: every counterfactual is green


def test_bad_input_gives_message_not_traceback(cli, tmp_path):
    code, _, err = cli("world", "counterfactual", "backdoor", "--do", "C=blue", "-o", str(tmp_path / "x.png"))
    assert code == 2 and "valid values are green, red" in err and "Traceback" not in err
    code, _, err = cli("world", "counterfactual", "backdoor", "--do", "Z=1", "-o", str(tmp_path / "x.png"))
    assert code == 2 and "unknown factor 'Z'" in err
    code, _, err = cli("world", "show", "sideways")
    assert code == 2 and "worlds are backdoor, frontdoor" in err
    code, _, err = cli("world", "sample", "backdoor", "--mnist", str(tmp_path / "none"), "-o", str(tmp_path / "x.png"))
    assert code == 2 and "does not exist" in err


def test_unit_counts_seeds_and_values_out_of_bounds_are_refused(cli, tmp_path):
    """-n and --seed bounds, values that are not names, huge values."""
    out = str(tmp_path / "x.png")
    for args in (["sample", "backdoor", "-n", "-1"], ["sample", "backdoor", "-n", "0"], ["sample", "backdoor", "-n", "99999"],
                 ["counterfactual", "backdoor", "--do", "C=green", "-n", "0"], ["sample", "backdoor", "--seed", "-1"]):
        code, _, err = cli("world", *args, "-o", out)
        assert code == 2 and "error:" in err and "Traceback" not in err, (args, err)
        assert ("'-n'" in err or "'--seed'" in err)
    for do, msg in [("C=1", "'1' is not a value of C; valid values are green, red"),
                    ("D=²", "'²' is not a value of D"), ("D=07", "'07' is not a value of D"),
                    ("D=" + "7" * 5000, "(5,000 characters)")]:
        code, _, err = cli("world", "counterfactual", "backdoor", "--do", do, "-o", out)
        assert code == 2 and msg in err and "Traceback" not in err and len(err) < 1000, err[:300]
    assert not (tmp_path / "x.png").exists()


def test_world_export_reads_back_as_user_data(cli, tmp_path):
    """`world export`: the PNGs and labels.csv read back as the world's units, graph.cg as its graph,
    truth.json holds the exact P(V) and the documented queries' true values."""
    import json

    from cfedit.core.graph import CausalGraph
    from cfedit.core.query import parse_query
    from cfedit.data import LabelledImages
    from cfedit.worlds import get_world

    out = tmp_path / "bd"
    code, msg, err = cli("world", "export", "backdoor", "-n", "25", "-o", str(out), "--seed", "4", "--split", "train")
    assert code == 0, err
    w = get_world("backdoor")
    a = w.ascm("train", oracle=False)
    units = a.units(25, seed=4)
    data = LabelledImages.from_folder(out, out / "labels.csv", w.domains)
    np.testing.assert_allclose(data.images, a.factual(units), atol=0.5 / 255)
    for k in w.domains.names:
        np.testing.assert_array_equal(data.labels[k], units.v[k])
    assert CausalGraph.load(out / "graph.cg") == w.graph
    truth = json.loads((out / "truth.json").read_text())
    np.testing.assert_allclose(np.array(truth["p_v"]), w.scm.observational(), atol=1e-15)
    assert [q["query"] for q in truth["queries"]] == list(w.queries)
    assert truth["queries"][1]["truth"] == w.scm.probability(parse_query(w.queries[1], w.domains))
    assert truth["split"] == "train" and truth["seed"] == 4
    # an existing, non-empty folder is refused, and so are a bad split and unit count
    for args, message in ((["-n", "5", "-o", str(out)], "not empty"), (["-n", "5", "-o", str(tmp_path / "x"), "--split", "test"],
                                                                       "unknown split"),
                          (["-n", "0", "-o", str(tmp_path / "y")], "'-n'")):
        code, _, err = cli("world", "export", "backdoor", *args)
        assert code == 2 and message in err and "Traceback" not in err, err
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
