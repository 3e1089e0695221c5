"""`cfedit edit --extremes`: one row of edits per extremal model, at toy sizes."""

import numpy as np
import pytest
from PIL import Image

from cfedit.worlds import get_world

QUERY = "P(B[C=green]=1 | D=7, C=red, B=0)"


@pytest.fixture(scope="module")
def run_and_image(tmp_path_factory, tiny_backdoor_run):
    w = get_world("backdoor")
    tmp = tmp_path_factory.mktemp("extremes")
    a = w.ascm("eval", oracle=False)
    units = a.units(200, seed=0)
    i = int(np.flatnonzero((units.v["D"] == 7) & (units.v["C"] == 1) & (units.v["B"] == 0))[0])
    x = a.factual(units)[i]
    Image.fromarray((x.transpose(1, 2, 0) * 255).round().astype(np.uint8), "RGB").save(tmp / "x.png")
    return tiny_backdoor_run, tmp / "x.png"


LABELS = ("--label", "D=7", "--label", "C=red", "--label", "B=0")


def test_edit_at_extremes_writes_one_row_per_model(cli, run_and_image, tmp_path):
    run, x = run_and_image
    code, out, err = cli("edit", str(run), "--image", str(x), "--do", "C=green", "-n", "4", *LABELS,
                         "--extremes", QUERY, "-o", str(tmp_path / "range.png"))
    assert code == 0, err
    assert "lower" in out and "upper" in out and "optimal bounds" in out
    with Image.open(tmp_path / "range.png") as grid:
        single = 28 * 3 + 12 + 2  # one tile with its caption and padding (save_grid's scale 3)
        assert grid.height == 2 * single + 2 and grid.width == 5 * (28 * 3 + 2) + 2  # 2 rows of image + 4 samples


@pytest.mark.parametrize("args, message", [
    (("--do", "D=2", *LABELS, "--extremes", QUERY), "asks about do(C=green), not do(D=2)"),
    (("--do", "C=green", *LABELS, "--extremes", "P(Z[C=green]=1 | D=7)"), "unknown factor 'Z'"),
    (("--do", "C=green", *LABELS, "--extremes", "P(B[C=green]=1 | D=3)"), "query's evidence is D=3"),
    (("--do", "C=green", *LABELS, "--extremes", "P(B=1 | D=7)"), "edit form"),
])
def test_bad_extremes_requests_are_refused(cli, run_and_image, tmp_path, args, message):
    run, x = run_and_image
    code, _, err = cli("edit", str(run), "--image", str(x), "-n", "2", *args, "-o", str(tmp_path / "r.png"))
    assert code == 2 and message in err and "Traceback" not in err, err
    assert not (tmp_path / "r.png").exists()


def test_extremes_refuse_evidence_the_training_labels_never_show(cli, run_and_image, tmp_path):
    """The run's record of its training labels, edited as if they held no red 7: the NCM's P(V) is not
    asked about that evidence, with the reason (the certificate's side: tests/evaluation/test_certificate.py)."""
    import json
    import shutil

    run, x = run_and_image
    lacking = tmp_path / "run"
    shutil.copytree(run, lacking)
    cfg = json.loads((lacking / "config.json").read_text())
    counts = np.asarray(cfg["fit"]["label_counts"]).reshape(10, 2, 2)
    counts[7, 1] = 0
    cfg["fit"]["label_counts"] = counts.reshape(-1).tolist()
    (lacking / "config.json").write_text(json.dumps(cfg))
    code, _, err = cli("edit", str(lacking), "--image", str(x), "--do", "C=green", "-n", "2", *LABELS, "--extremes", QUERY,
                       "-o", str(tmp_path / "r.png"))
    assert code == 2 and "D=7, C=red, B=0 never occurs in the run's" in err and "Traceback" not in err, err
