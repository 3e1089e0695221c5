import numpy as np
from PIL import Image


def test_world_list_and_show(cli):
    code, out, _ = cli("world", "list")
    assert code == 0 and "backdoor" in out and "frontdoor" in out
    code, out, _ = cli("world", "show", "frontdoor")
    assert code == 0 and "D -> C" in out and "P(D, C, B)" in out and "P(C[D=2]=red | D=7, C=red)" in out
    assert "optimal bounds" in out and "[0.5000, 0.7500]" in out  # P(B[C=green]=1 | D=7, C=red, B=0): Frechet


def test_world_sample_and_counterfactual_write_pngs(cli, tmp_path):
    code, out, _ = cli("world", "sample", "backdoor", "-n", "6", "-o", str(tmp_path / "g.png"))
    assert code == 0, out
    assert Image.open(tmp_path / "g.png").mode == "RGB"
    code, out, _ = cli("world", "counterfactual", "backdoor", "--do", "C=green", "-n", "4", "-o", str(tmp_path / "p.png"))
    assert code == 0 and "do(C=green)" in out
    assert np.asarray(Image.open(tmp_path / "p.png")).shape[2] == 3


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
    """Issue 14, classes 3 and 4: -n and --seed bounds, values that are not names, huge values."""
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
