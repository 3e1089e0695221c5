"""`cfedit train`, `edit` and `demo` end to end, at toy sizes (the figures come from the full-size runs)."""

import json

import numpy as np
import pytest
from PIL import Image

from cfedit.worlds import get_world


def test_train_then_edit_a_png(cli, tmp_path):
    run = tmp_path / "run"
    code, out, err = cli("train", "--world", "backdoor", "-n", "400", "--steps", "4", "-o", str(run))
    assert code == 0, err
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["format"] == "cfedit-ancm" and cfg["config"]["steps"] == 4
    a = get_world("backdoor").ascm("eval", oracle=False)
    x = a.factual(a.units(1, seed=0))[0]
    Image.fromarray((x.transpose(1, 2, 0) * 255).round().astype(np.uint8), "RGB").save(tmp_path / "x.png")
    code, out, err = cli("edit", str(run), "--image", str(tmp_path / "x.png"), "--do", "C=green", "-n", "3",
                         "--label", "D=7", "--label", "C=red", "--label", "B=0", "-o", str(tmp_path / "e.png"))
    assert code == 0, err
    with Image.open(tmp_path / "e.png") as grid:
        assert grid.mode == "RGB" and grid.width > grid.height  # the image, then 3 samples in one row
    code, out, err = cli("edit", str(run), "--image", str(tmp_path / "x.png"), "--do", "C=green", "-n", "4", "--label", "D=7",
                         "--label", "C=red", "--label", "B=0", "-o", str(tmp_path / "c.png"), "--certify", "--json")
    assert code == 0, err
    cert = json.loads(out)  # stdout is the JSON alone: the certificate of the world the run matches
    assert cert["factual"] == {"D": "7", "C": "red", "B": "0"} and cert["k"] == 4 and "world backdoor" in cert["p_v"]
    assert all(abs(sum(d.values()) - 1) < 1e-9 for d in cert["distributions"].values())
    kept = next(q for q in cert["queries"] if q["query"] == "P(D[C=green]=7 | D=7, C=red, B=0)")
    assert kept["lower"] == kept["upper"] == 1 and kept["identified"]  # D is not a descendant of C
    assert (tmp_path / "c.png").is_file()
    code, out, err = cli("edit", str(run), "--image", str(tmp_path / "x.png"), "--do", "B=1", "-n", "4", "-o", str(tmp_path / "c.png"),
                         "--certify")
    assert code == 0 and "certificate: optimal bounds" in out and "consistent" in out, err
    code, _, err = cli("edit", str(run), "--image", str(tmp_path / "x.png"), "--do", "B=1", "-o", str(tmp_path / "c.png"), "--json")
    assert code == 2 and "--certify" in err
    code, _, err = cli("edit", str(run), "--image", str(tmp_path / "x.png"), "--do", "C=blue", "-o", str(tmp_path / "f.png"))
    assert code == 2 and "blue" in err and "Traceback" not in err
    Image.fromarray(np.zeros((28, 28), np.uint8), "L").save(tmp_path / "gray.png")
    code, _, err = cli("edit", str(run), "--image", str(tmp_path / "gray.png"), "--do", "C=green", "-o", str(tmp_path / "g.png"))
    assert code == 2 and "mode L" in err


def test_demo_runs_end_to_end(cli, tmp_path, monkeypatch):
    monkeypatch.setattr("cfedit.data.WORLD_TRAIN_UNITS", 2000)  # the demo reads it when called
    code, out, err = cli("demo", "--train", "-o", str(tmp_path / "demo"), "--steps", "3", "-n", "100", "--samples", "1")
    assert code == 0, err
    assert "ctf-consistency on 100 held-out units" in out and "preservation" in out
    assert (tmp_path / "demo" / "edits.png").is_file() and (tmp_path / "demo" / "editor" / "weights.safetensors").is_file()
    res = json.loads((tmp_path / "demo" / "report" / "results.json").read_text())
    assert res["methods"] == ["ancm"] and len(res["queries"]) == len(get_world("backdoor").queries)
    assert set(res["interventions"]["ancm"]) == {"C=green", "D=2", "B=1"}


@pytest.mark.slow
def test_train_with_the_diffusion_mechanism_then_edit(cli, tmp_path):
    """`--mechanism diffusion` trains (ctf term off) and `edit` uses the saved backend; a ctf weight is refused."""
    f = tmp_path / "toy.toml"
    f.write_text('batch_size = 16\n[image]\nkind = "diffusion"\nchannels = [8, 16]\nsteps = 2\n[ncm]\nsteps = 20\n')
    run = tmp_path / "run"
    code, out, err = cli("train", "--world", "backdoor", "-n", "200", "--steps", "3", "--config", str(f), "-o", str(run))
    assert code == 0, err
    cfg = json.loads((run / "config.json").read_text())["config"]
    assert cfg["image"]["kind"] == "diffusion" and cfg["ctf_weight"] == 0.0
    a = get_world("backdoor").ascm("eval", oracle=False)
    x = a.factual(a.units(1, seed=0))[0]
    Image.fromarray((x.transpose(1, 2, 0) * 255).round().astype(np.uint8), "RGB").save(tmp_path / "x.png")
    code, out, err = cli("edit", str(run), "--image", str(tmp_path / "x.png"), "--do", "D=2", "-n", "2", "-o", str(tmp_path / "e.png"))
    assert code == 0, err
    f.write_text('ctf_weight = 0.1\n[image]\nkind = "diffusion"\n')
    code, _, err = cli("train", "--world", "backdoor", "-n", "200", "--config", str(f), "-o", str(tmp_path / "r2"))
    assert code == 2 and "cannot edit differentiably" in err and "Traceback" not in err
