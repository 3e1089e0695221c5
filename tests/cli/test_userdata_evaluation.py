"""`cfedit evaluate RUN --images DIR --labels CSV`: evaluation without a world, at toy sizes."""

import json
import shutil

import pytest

from cfedit.editors.ancm import ANCM, ANCMConfig
from cfedit.imaging.vae import VAEConfig
from cfedit.ncm import NCMConfig
from cfedit.worlds import get_world
from cfedit.worlds.export import export_world


@pytest.fixture(scope="module")
def run_and_data(tmp_path_factory, tiny_backdoor_run):
    tmp = tmp_path_factory.mktemp("userdata")
    export_world(get_world("backdoor"), 400, tmp / "data", split="eval", seed=2)
    return tiny_backdoor_run, tmp / "data"


FAST = ("-n", "60", "--samples", "2", "--top", "1", "--bootstrap", "3", "--no-realism")


def test_evaluate_user_data_writes_a_report_with_bounds_ranges_and_the_readers_accuracy(cli, run_and_data, tmp_path):
    run, data = run_and_data
    out = tmp_path / "rep"
    (tmp_path / "q.txt").write_text("# my queries\nP(B[C=green]=1 | D=7, C=red)\n")
    code, stdout, err = cli("evaluate", str(run), "--images", str(data), "--labels", str(data / "labels.csv"),
                            "--graph", str(data / "graph.cg"), "--queries", str(tmp_path / "q.txt"),
                            "-q", "P(D[B=1]=7 | D=7, C=red, B=0)", *FAST, "-o", str(out))
    assert code == 0, err
    assert "queries consistent" in stdout and "reader" in stdout
    res = json.loads((out / "results.json").read_text())
    w = get_world("backdoor")
    n_auto = sum(w.domains.size(x) for x in w.domains.names) * 2
    assert len(res["queries"]) == n_auto + 2
    assert [q["query"] for q in res["queries"][-2:]] == ["P(D[B=1]=7 | D=7, C=red, B=0)", "P(B[C=green]=1 | D=7, C=red)"]
    for q in res["queries"]:
        assert q["truth"] is None and q["widened"][0] <= q["lower"] <= q["upper"] <= q["widened"][1]
        assert q["band"][0] <= q["widened"][0] and q["widened"][1] <= q["band"][1]
        assert q["methods"]["ancm"]["inside"] >= q["methods"]["ancm"]["inside pointwise"]  # the band is wider
        assert q["resamples"] + q["skipped"] == 3
    assert set(res["reader accuracy"]) == {"D", "C", "B"} and res["reader"]["rows"] == 200
    assert res["compatibility"]["flagged"] is False
    assert res["bootstrap"]["resamples"] == 3 and res["bootstrap"]["replicates inside the band"] >= 0.95
    assert {"effectiveness", "preservation", "null-edit error", "reversibility error (C)"} <= set(res["metrics"]["ancm"])
    md = (out / "report.md").read_text()
    assert "conditional on this reader" in md and "95% range" in md and (out / "ctf_intervals.png").is_file()
    # the run records its 400 training labels' counts: the bounds pool them with the folder's 400 rows
    assert res["bounds from"]["source"] == "all" and res["bounds from"]["rows"] == 800
    assert res["bounds from"]["training rows"] == 400 and res["bounds from"]["warning"] is None
    assert "bounds from all 800 label rows" in " ".join(stdout.split())
    # the reader-aware verdict sits beside the strict one, on a band that contains the strict band
    assert set(res["reader misreads"]) == {"D", "C", "B"}
    for q in res["queries"]:
        e = q["methods"]["ancm"]
        assert q["reader-aware band"][0] <= q["band"][0] and q["band"][1] <= q["reader-aware band"][1]
        assert e["inside (reader-aware)"] >= e["inside"] and 0 <= q["misread bound"] <= 1
    assert "reader-aware" in md and "misreads edits no more often than real held-out images" in md


@pytest.mark.parametrize("extra, message", [
    (("-q", "P(Z[C=green]=1 | D=7)"), "unknown factor 'Z'"),
    (("-q", "P(B=1 | D=7)"), "edit form"),
    (("--graph", "GRAPH_CHAIN"), "but"),
    (("--interval", "bca"), "interval must be one of percentile, basic"),
    (("--bounds-from", "both"), "bounds_from must be one of all, eval"),
    (("--world", "backdoor"), "give only one of --world NAME, --images DIR --labels CSV, or --celeba DIR"),
])
def test_bad_user_data_requests_are_refused(cli, run_and_data, tmp_path, extra, message):
    run, data = run_and_data
    (tmp_path / "chain.cg").write_text("D -> C; C -> B")
    extra = tuple(str(tmp_path / "chain.cg") if e == "GRAPH_CHAIN" else e for e in extra)
    code, _, err = cli("evaluate", str(run), "--images", str(data), "--labels", str(data / "labels.csv"), *extra, *FAST,
                       "-o", str(tmp_path / "rep"))
    assert code == 2 and message in err and "Traceback" not in err, err


def test_labels_with_unknown_values_or_unseen_evidence_are_refused(cli, run_and_data, tmp_path):
    run, data = run_and_data
    rows = (data / "labels.csv").read_text().splitlines()
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join([rows[0], rows[1].rsplit(",", 2)[0] + ",blue," + rows[1].rsplit(",", 1)[1], *rows[2:]]) + "\n")
    code, _, err = cli("evaluate", str(run), "--images", str(data), "--labels", str(bad), *FAST, "-o", str(tmp_path / "r"))
    assert code == 2 and "'blue' is not a value of C" in err and "line 2" in err
    # evidence that no label row shows: D=0 with C=red and B=1 is rare; drop those rows
    keep = [r for r in rows[1:] if not r.endswith(",0,red,1")]
    assert len(keep) < len(rows) - 1
    (tmp_path / "few.csv").write_text("\n".join([rows[0], *keep]) + "\n")
    args = ("evaluate", str(run), "--images", str(data), "--labels", str(tmp_path / "few.csv"),
            "-q", "P(B[C=green]=1 | D=0, C=red, B=1)", *FAST)
    code, _, err = cli(*args, "--bounds-from", "eval", "-o", str(tmp_path / "r"))
    assert code == 2 and "never occurs in the 3" in err, err  # the folder's rows alone (3xx of them)
    code, _, err = cli(*args, "-o", str(tmp_path / "r"))  # pooled with the run's 400 training rows, which have it
    assert code == 0, err


def test_a_run_without_training_counts_takes_the_bounds_from_the_folder(cli, run_and_data, tmp_path):
    """A run trained before it recorded its training labels' counts: the bounds use the folder's rows and say why;
    asking for all the rows is refused with a one-line reason."""
    run, data = run_and_data
    old = tmp_path / "old-run"
    shutil.copytree(run, old)
    cfg = json.loads((old / "config.json").read_text())
    del cfg["fit"]["label_counts"]
    (old / "config.json").write_text(json.dumps(cfg))
    args = ("evaluate", str(old), "--images", str(data), "--labels", str(data / "labels.csv"), *FAST, "--top", "0",
            "-q", "P(B[C=green]=1 | D=7, C=red)")
    code, stdout, err = cli(*args, "-o", str(tmp_path / "r"))
    assert code == 0, err
    res = json.loads((tmp_path / "r" / "results.json").read_text())
    assert res["bounds from"]["source"] == "eval" and res["bounds from"]["rows"] == 400
    assert "records no counts of its training labels" in " ".join(stdout.split())
    code, _, err = cli(*args, "--bounds-from", "all", "-o", str(tmp_path / "r2"))
    assert code == 2 and "fit.label_counts" in err and "--bounds-from eval" in err and "Traceback" not in err, err


@pytest.fixture
def celeba_run(celeba_kit, tmp_path_factory):
    """A CelebA folder of the test kit (30 images; partition 20 train / 5 valid / 5 test) and a tiny run on it."""
    from cfedit.core.graph import CausalGraph
    from cfedit.data.celeba import PAPER_GRAPH, load_celeba

    tmp = tmp_path_factory.mktemp("celeba-eval")
    celeba_kit.write(tmp / "celeba", celeba_kit.table())
    tiny = ANCMConfig(steps=2, batch_size=8, ncm=NCMConfig(steps=20, latent_size=8), image=VAEConfig(width=4, latent_dim=2))
    ANCM.fit(CausalGraph.parse(PAPER_GRAPH), load_celeba(tmp / "celeba"), tiny, out_dir=tmp / "run", log=None)
    return tmp / "run", tmp / "celeba"


def test_evaluate_on_a_celeba_folder(cli, celeba_run, tmp_path):
    run, celeba = celeba_run
    code, out, err = cli("evaluate", str(run), "--celeba", str(celeba), "--split", "all", "-n", "10", "--samples", "2",
                         "--top", "1", "--bootstrap", "3", "--no-realism", "-o", str(tmp_path / "rep"))
    assert code == 0, err
    assert "the editor may have seen the images" in " ".join(out.split())
    res = json.loads((tmp_path / "rep" / "results.json").read_text())
    assert res["label rows"] == 30 and res["reader"]["rows"] == 15 and res["n_units"] == 10
    assert set(res["reader accuracy"]) == {"Gender", "Age", "GrayHair"} and "celeba (all)" in res["world"]
    # automatic queries: every action, its most frequent other configuration, each other factor
    assert len(res["queries"]) == 3 * 2 * 2
    kept = [q for q in res["queries"] if q["query"].startswith("P(Gender[Age=")]  # Gender is no descendant of Age
    assert kept and all(q["kept"] and q["lower"] == q["upper"] == 1 for q in kept)


def test_evaluate_celeba_refusals(cli, celeba_run, tmp_path):
    run, celeba = celeba_run
    fast = ("-n", "10", "--samples", "2", "--top", "1", "--bootstrap", "3", "--no-realism", "-o", str(tmp_path / "rep"))
    code, _, err = cli("evaluate", str(run), "--celeba", str(celeba), *fast)  # the test split holds 5 images
    assert code == 2 and "5 labelled images are too few" in err and "Traceback" not in err, err
    (tmp_path / "g.txt").write_text("Smiling -> Eyeglasses")
    code, _, err = cli("evaluate", str(run), "--celeba", str(celeba), "--split", "all", "--factors", "Smiling,Eyeglasses",
                       "--graph", str(tmp_path / "g.txt"), *fast)
    assert code == 2 and "the run was trained on the graph Gender <-> Age" in err, err
    code, _, err = cli("evaluate", str(run), "--celeba", str(celeba), "--images", str(celeba), *fast)
    assert code == 2 and "give only one of --world NAME" in err, err


def test_a_reader_saved_with_one_report_reads_for_another(cli, run_and_data, tmp_path):
    """The reader trained by one evaluation is saved beside its report; `--reader` uses it instead of training
    one, and then every labelled image is held out of it. A folder that is no reader is refused."""
    run, data = run_and_data
    args = ("evaluate", str(run), "--images", str(data), "--labels", str(data / "labels.csv"), *FAST)
    code, _, err = cli(*args, "-o", str(tmp_path / "first"))
    assert code == 0, err
    first = json.loads((tmp_path / "first" / "results.json").read_text())
    assert (tmp_path / "first" / "reader" / "reader.safetensors").is_file() and first["reader"]["external"] is False
    code, _, err = cli(*args, "--reader", str(tmp_path / "first" / "reader"), "-o", str(tmp_path / "second"))
    assert code == 0, err
    second = json.loads((tmp_path / "second" / "results.json").read_text())
    assert second["reader"]["external"] is True and second["reader"]["network"] == first["reader"]["network"]
    assert second["reader"]["rows"] == 0 and second["reader"]["held out"] == second["label rows"] == 400
    assert not (tmp_path / "second" / "reader").exists()
    assert "external reader given by the user" in (tmp_path / "second" / "report.md").read_text()
    code, _, err = cli(*args, "--reader", str(run), "-o", str(tmp_path / "third"))
    assert code == 2 and "is not a reader folder" in err and "Traceback" not in err, err
