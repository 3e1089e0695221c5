"""``cfedit reproduce --mechanism diffusion``: the flag reaches the editor's config (alone or over a preset), and the
command trains, evaluates and reports with the diffusion mechanism (toy sizes; quality lives in benchmarks/)."""

import json
from pathlib import Path

import pytest

import cfedit.data
from cfedit.cli.editing import config_from
from cfedit.editors.ancm import ANCM, ANCMConfig
from cfedit.evaluation.results import EvaluationResults, ReproduceSummary
from cfedit.worlds import get_world

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
TOY = """steps = 4
batch_size = 16
log_every = 2
[ncm]
steps = 50
latent_size = 8
[image]
kind = "diffusion"
channels = [8, 16]
steps = 2
guidance = 2.0
"""


def test_mechanism_flag_selects_the_backend_alone_or_over_a_preset():
    w = get_world("backdoor")
    alone = config_from(None, "diffusion", None, 0, w)
    assert alone.image.kind == "diffusion" and alone.ctf_weight == 0.0
    preset = ANCMConfig.from_toml(CONFIGS / "diffusion-cpu.toml")
    given = config_from(CONFIGS / "diffusion-cpu.toml", "diffusion", 7, 3, w)
    assert given.image == preset.image and (given.steps, given.seed, given.lr) == (7, 3, preset.lr)


@pytest.mark.slow
def test_reproduce_trains_and_evaluates_the_diffusion_mechanism(cli, tmp_path, monkeypatch):
    monkeypatch.setattr(cfedit.data, "WORLD_TRAIN_UNITS", 200)  # reproduce reads it at call time
    (tmp_path / "toy.toml").write_text(TOY)
    code, _, err = cli("reproduce", "--world", "backdoor", "--mechanism", "diffusion", "--config", str(tmp_path / "toy.toml"),
                       "-n", "12", "--samples", "2", "-o", str(tmp_path / "r"))
    assert code == 0, err
    summary = ReproduceSummary.from_json(json.loads((tmp_path / "r" / "summary.json").read_text()))
    assert summary.worlds["backdoor"].mechanism == "diffusion" and summary.worlds["backdoor"].steps == 4
    res = EvaluationResults.load(tmp_path / "r" / "backdoor" / "results.json")
    assert res.methods[0] == "ancm" and "oracle" in res.methods and len(res.queries) == 7
    assert res.training_seconds > 0 and summary.worlds["backdoor"].counts["ancm"].queries == 7
    editor = ANCM.load(tmp_path / "r" / "backdoor" / "editor")
    assert editor.image.kind == "diffusion" and editor.image.config.guidance == 2.0 and int(editor.image.ema_updates) == 4
    assert (tmp_path / "r" / "backdoor" / "report.md").is_file()
