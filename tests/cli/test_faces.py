"""The faces world and CelebA folders from the command line, at toy sizes."""

import json

import numpy as np
from PIL import Image

from cfedit.editors.ancm import ANCMConfig
from cfedit.worlds import get_world


def test_world_show_and_counterfactual_pairs(cli, tmp_path):
    code, out, err = cli("world", "show", "faces")
    assert code == 0, err
    assert "Gender <-> Age" in out and "P(GrayHair[Age=old]=1" in out
    assert "[0.6667, 0.7778]" in out and "0.7000" in out  # the non-identified query: bounds and truth
    code, out, err = cli("world", "counterfactual", "faces", "--do", "Age=old", "-n", "4", "-o", str(tmp_path / "pairs.png"))
    assert code == 0, err
    with Image.open(tmp_path / "pairs.png") as im:
        assert im.mode == "RGB" and im.width > 4 * 64


def test_a_worlds_editor_settings_are_defaults_under_the_users(tmp_path):
    """`cfedit train / demo / reproduce --world faces` start from the world's settings; a TOML file and the
    flags override them (the CLI's config_from; training itself is tested with CelebA below)."""
    from cfedit.cli.editing import config_from

    w = get_world("faces")
    settings = w.editor_settings
    cfg = config_from(None, None, 2, None, w)
    assert cfg.image.norm == settings["image"]["norm"] == "group"
    assert (cfg.image.latent_dim, cfg.image.width, cfg.image.depth, cfg.batch_size) == (16, 32, 4, 64) == (
        settings["image"]["latent_dim"], settings["image"]["width"], settings["image"]["depth"], settings["batch_size"])
    assert cfg.image.residual is settings["image"]["residual"] is True  # the residual latent keeps the identity
    assert cfg.ctf_weight == settings["ctf_weight"] == 0.01  # 0.1 collapses z under the residual (docs: results/faces.md)
    assert cfg.ctf_keep == settings["ctf_keep"] == 1.0
    assert cfg.steps == 2  # the flag wins
    (tmp_path / "c.toml").write_text("batch_size = 8\n[image]\nwidth = 8\n")
    c = config_from(tmp_path / "c.toml", None, None, None, w)
    assert (c.batch_size, c.image.width, c.image.latent_dim, c.image.depth) == (8, 8, 16, 4)
    assert ANCMConfig.from_toml(tmp_path / "c.toml").image.latent_dim == ANCMConfig().image.latent_dim == 8
    assert config_from(None, None, None, None, get_world("backdoor")) == ANCMConfig()


def test_celeba_train_and_bounds(cli, tmp_path, celeba_kit):
    table = celeba_kit.table()
    celeba_kit.write(tmp_path / "celeba", table)
    (tmp_path / "fast.toml").write_text("[ncm]\nsteps = 20\n")  # the NCM's fit is tested elsewhere
    code, _, err = cli("train", "--celeba", str(tmp_path / "celeba"), "--steps", "2", "--config", str(tmp_path / "fast.toml"),
                       "-o", str(tmp_path / "run"))
    assert code == 0, err
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["image_shape"] == [3, 64, 64] and saved["domains"]["Age"] == ["young", "old"]
    from cfedit.core.graph import CausalGraph

    assert CausalGraph.load(tmp_path / "run" / "graph.cg") == CausalGraph.parse("Gender <-> Age; Age -> GrayHair")
    code, out, err = cli("bounds", "--celeba", str(tmp_path / "celeba"), "P(GrayHair[Age=old]=1 | Age=young)", "--json")
    assert code == 0, err
    (row,) = json.loads(out)
    # identified: the empirical P(Gray_Hair = 1 | Young = -1) of the 30 rows
    old = table[:, celeba_kit.attributes.index("Young")] < 0
    gray = table[:, celeba_kit.attributes.index("Gray_Hair")] > 0
    assert row["identified"] and abs(row["lower"] - gray[old].mean()) < 1e-9


def test_celeba_bad_input_is_one_line(cli, tmp_path, celeba_kit):
    celeba_kit.write(tmp_path / "celeba", celeba_kit.table())
    code, _, err = cli("train", "--celeba", str(tmp_path / "celeba"), "--factors", "Smiling,Eyeglasses", "-o", str(tmp_path / "r"))
    assert code == 2 and "give their diagram with --graph" in err and "Traceback" not in err
    code, _, err = cli("bounds", "--celeba", str(tmp_path / "celeba"), "--factors", "Smile", "--graph", str(tmp_path / "g"), "P(Smile=1)")
    assert code == 2 and "error:" in err
    (tmp_path / "g.txt").write_text("Smiling -> Eyeglasses")
    code, out, err = cli("bounds", "--celeba", str(tmp_path / "celeba"), "--factors", "Smiling,Eyeglasses", "--graph",
                         str(tmp_path / "g.txt"), "P(Eyeglasses[Smiling=1]=1)", "--json")
    assert code == 0, err and np.isfinite(json.loads(out)[0]["lower"])
    (tmp_path / "celeba" / "list_attr_celeba.txt").write_text("3\nMale Young\n000001.jpg 1\n")
    code, _, err = cli("bounds", "--celeba", str(tmp_path / "celeba"), "P(GrayHair[Age=old]=1)")
    assert code == 2 and "list_attr_celeba.txt line 1: says 3 images but the file lists 1" in err
