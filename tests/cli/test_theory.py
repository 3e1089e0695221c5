from PIL import Image


def test_theory_witness_figure(cli, tmp_path):
    code, out, err = cli("theory", "witness", "backdoor", "-n", "3", "-o", str(tmp_path / "w.png"))
    assert code == 0, err
    assert "C -> D" in out and "identical under M and M': True" in out
    w, h = Image.open(tmp_path / "w.png").size
    assert h > w  # six rows of three tiles
