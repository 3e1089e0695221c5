"""`cfedit train`, `edit` and `demo` end to end, at toy sizes (the figures come from the full-size runs)."""

import json
import sys

import numpy as np
import pytest
from PIL import Image

from cfedit.evaluation.results import EvaluationResults
from cfedit.worlds import get_world


def _cfedit(*args: str) -> int:
    """The command line in-process, for module fixtures (the ``cli`` fixture is per test): its exit status."""
    from cfedit.cli import main

    argv, sys.argv = sys.argv, ["cfedit", *args]
    try:
        main()
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        sys.argv = argv
    return 0


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """`cfedit train` run once for this module's tests: the run folder, and a held-out factual image as a PNG (a red 7
    without a bar) with its pixels."""
    tmp = tmp_path_factory.mktemp("train-edit")
    assert _cfedit("train", "--world", "backdoor", "-n", "400", "--steps", "4", "-o", str(tmp / "run")) == 0
    a = get_world("backdoor").ascm("eval", oracle=False)
    units = a.units(200, seed=0)
    i = int(np.flatnonzero((units.v["D"] == 7) & (units.v["C"] == 1) & (units.v["B"] == 0))[0])
    x = (a.factual(units)[i].transpose(1, 2, 0) * 255).round().astype(np.uint8)
    Image.fromarray(x, "RGB").save(tmp / "x.png")
    return tmp / "run", tmp / "x.png", x.transpose(2, 0, 1).astype(np.float32) / 255


def test_train_writes_a_run_folder_that_loads(trained):
    from cfedit.runs import Run

    run, _, _ = trained
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["format"] == "cfedit-ancm" and cfg["config"]["steps"] == 4
    editor = Run.load(run).editor
    assert editor.config.steps == 4 and editor.domains == get_world("backdoor").domains


def test_edit_writes_the_image_then_its_samples(cli, trained, tmp_path):
    """The grid is the input image, then the editor's samples under the action, in order (read back tile by tile
    and compared with the same edit made through the library, same seed)."""
    from cfedit.core.figures import read_grid
    from cfedit.runs import Run

    run, png, x = trained
    code, out, err = cli("edit", str(run), "--image", str(png), "--do", "C=green", "-n", "3", "--label", "D=7",
                         "--label", "C=red", "--label", "B=0", "--seed", "5", "-o", str(tmp_path / "e.png"))
    assert code == 0, err
    assert "the image, then 3 samples under do(C=green)" in " ".join(out.split())
    tiles = read_grid(tmp_path / "e.png", 4, x.shape, ncol=4)
    np.testing.assert_allclose(tiles[0], x, atol=0.5 / 255 + 1e-6)
    edits = Run.load(run).editor.edit(x[None], {"C": "green"}, 3, labels={"D": ["7"], "C": ["red"], "B": ["0"]}, seed=5)
    np.testing.assert_allclose(tiles[1:], edits.images[0], atol=0.5 / 255 + 1e-6)
    assert (edits.factors["C"] == 0).all()


def test_edit_certify_json_is_the_certificate_alone(cli, trained, tmp_path):
    run, png, _ = trained
    code, out, err = cli("edit", str(run), "--image", str(png), "--do", "C=green", "-n", "4", "--label", "D=7",
                         "--label", "C=red", "--label", "B=0", "-o", str(tmp_path / "c.png"), "--certify", "--json")
    assert code == 0, err
    cert = json.loads(out)  # stdout is the JSON alone: the certificate of the world the run matches
    assert cert["factual"] == {"D": "7", "C": "red", "B": "0"} and cert["k"] == 4 and "world backdoor" in cert["p_v"]
    assert all(abs(sum(d.values()) - 1) < 1e-9 for d in cert["distributions"].values())
    kept = next(q for q in cert["queries"] if q["query"] == "P(D[C=green]=7 | D=7, C=red, B=0)")
    assert kept["lower"] == kept["upper"] == 1 and kept["identified"]  # D is not a descendant of C
    assert cert["grid"] == str(tmp_path / "c.png") and (tmp_path / "c.png").is_file()


def test_edit_certify_prints_the_certificate_tables(cli, trained, tmp_path):
    run, png, _ = trained
    code, out, err = cli("edit", str(run), "--image", str(png), "--do", "B=1", "-n", "4", "-o", str(tmp_path / "c.png"),
                         "--certify")
    assert code == 0, err
    assert "certificate: optimal bounds" in out and "consistent" in out and "readings of the 4 edits" in out


def test_edit_refuses_bad_requests(cli, trained, tmp_path):
    run, png, _ = trained
    code, _, err = cli("edit", str(run), "--image", str(png), "--do", "B=1", "-o", str(tmp_path / "c.png"), "--json")
    assert code == 2 and "--certify" in err
    code, _, err = cli("edit", str(run), "--image", str(png), "--do", "C=blue", "-o", str(tmp_path / "f.png"))
    assert code == 2 and "blue" in err and "Traceback" not in err
    Image.fromarray(np.zeros((28, 28), np.uint8), "L").save(tmp_path / "gray.png")
    code, _, err = cli("edit", str(run), "--image", str(tmp_path / "gray.png"), "--do", "C=green", "-o", str(tmp_path / "g.png"))
    assert code == 2 and "mode L" in err
    assert not any((tmp_path / f).exists() for f in ("c.png", "f.png", "g.png"))  # nothing written


def test_demo_runs_end_to_end(cli, tmp_path, monkeypatch):
    monkeypatch.setattr("cfedit.data.WORLD_TRAIN_UNITS", 2000)  # the demo reads it when called
    code, out, err = cli("demo", "--train", "-o", str(tmp_path / "demo"), "--steps", "3", "-n", "100", "--samples", "1")
    assert code == 0, err
    assert "ctf-consistency on 100 held-out units" in out and "preservation" in out
    assert (tmp_path / "demo" / "edits.png").is_file() and (tmp_path / "demo" / "editor" / "weights.safetensors").is_file()
    res = EvaluationResults.load(tmp_path / "demo" / "report" / "results.json")
    assert res.methods == ("ancm",) and len(res.queries) == len(get_world("backdoor").queries)
    assert {i.action for i in res.editors["ancm"].interventions} == {"C=green", "D=2", "B=1"}


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
