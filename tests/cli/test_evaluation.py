import pytest

from cfedit.editors.ancm import ANCM, ANCMConfig
from cfedit.evaluation.results import EvaluationResults
from cfedit.imaging.vae import VAEConfig
from cfedit.ncm import NCMConfig
from cfedit.worlds import get_world

TINY = ANCMConfig(steps=10, batch_size=32, log_every=10, ncm=NCMConfig(steps=100, latent_size=8),
                  image=VAEConfig(width=8, latent_dim=4))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    w = get_world("backdoor")
    folder = tmp_path_factory.mktemp("run")
    ANCM.fit(w.graph, w.dataset(500, seed=0), TINY, out_dir=folder, log=None)
    return folder


def test_evaluate_writes_a_report(cli, run, tmp_path):
    code, out, err = cli("evaluate", str(run), "--world", "backdoor", "-n", "120", "--no-realism", "-o", str(tmp_path / "r"))
    assert code == 0, err
    res = EvaluationResults.load(tmp_path / "r" / "results.json")
    assert res.methods == ("ancm", "non-causal", "associational", "markovian", "independent", "oracle")
    assert "ancm: " in out and "tested queries consistent" in out
    assert (tmp_path / "r" / "report.html").is_file() and (tmp_path / "r" / "ctf_intervals.png").is_file()
    assert any(p.name.startswith("grid_") for p in (tmp_path / "r").iterdir())


def test_run_of_another_world_is_refused(cli, run, tmp_path):
    code, _, err = cli("evaluate", str(run), "--world", "frontdoor", "-o", str(tmp_path / "r"))
    assert code == 2 and "trained on the graph" in err and "Traceback" not in err
    code, _, err = cli("evaluate", str(tmp_path / "absent"), "--world", "backdoor")
    assert code == 2 and "does not exist" in err
    code, _, err = cli("reproduce", "--world", "sideways", "-o", str(tmp_path / "x"))
    assert code == 2 and "worlds are backdoor, frontdoor" in err


def test_empty_images_folder_is_refused(cli, tmp_path):
    (tmp_path / "imgs").mkdir()
    (tmp_path / "labels.csv").write_text("file,D,C,B\n")
    (tmp_path / "g.cg").write_text("D <-> C; D -> B; C -> B")
    code, _, err = cli("train", "--images", str(tmp_path / "imgs"), "--labels", str(tmp_path / "labels.csv"),
                       "--graph", str(tmp_path / "g.cg"), "-o", str(tmp_path / "out"))
    assert code == 2 and "error:" in err and "Traceback" not in err
