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
