"""`cfedit evaluate RUN --images DIR --labels CSV`: evaluation without a world, at toy sizes."""

import json
import shutil

import pytest

from cfedit.editors.ancm import ANCM, ANCMConfig
from cfedit.evaluation.results import EvaluationResults
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
    res = EvaluationResults.load(out / "results.json")
    w = get_world("backdoor")
    n_auto = sum(w.domains.size(x) for x in w.domains.names) * 2
    assert len(res.queries) == n_auto + 2
    assert [q.query for q in res.queries[-2:]] == ["P(D[B=1]=7 | D=7, C=red, B=0)", "P(B[C=green]=1 | D=7, C=red)"]
    for q in res.queries:
        r, v = q.ranges, q.methods["ancm"]
        assert q.truth is None and r.pointwise[0] <= q.lower <= q.upper <= r.pointwise[1]
        assert r.band[0] <= r.pointwise[0] and r.pointwise[1] <= r.band[1]
        assert not v.tested or v.inside >= v.inside_pointwise  # the band is wider
        assert r.resamples + r.skipped == 3
    assert set(res.reader.accuracy) == {"D", "C", "B"} and res.reader.rows == 200 and res.reader.kind == "trained"
    assert res.labels.compatibility.flagged is False
    assert res.labels.bootstrap.resamples == 3 and res.labels.bootstrap.covered >= 0.95
    m = res.editors["ancm"]
    assert m.reversibility_factor == "C" and m.reversibility_error is not None and m.composition_steps == 10
    assert set(m.null_edit_agreement) == {"D", "C", "B"} and all(e.n == 60 for e in m.null_edit_agreement.values())
    md = (out / "report.md").read_text()
    assert "conditional on this reader" in md and "95% range" in md and (out / "ctf_intervals.png").is_file()
    # the run records its 400 training labels' counts: the bounds pool them with the folder's 400 rows
    assert res.labels.bounds_from.source == "all" and res.labels.bounds_from.rows == 800
    assert res.labels.bounds_from.training_rows == 400 and res.labels.bounds_from.warning is None
    assert "bounds from all 800 label rows" in " ".join(stdout.split())
    # the reader-aware verdict sits beside the strict one, on a band that contains the strict band
    assert set(res.reader.misreads) == {"D", "C", "B"}
    for q in res.queries:
        v = q.methods["ancm"]
        assert q.reader_aware_band[0] <= q.ranges.band[0] and q.ranges.band[1] <= q.reader_aware_band[1]
        assert (not v.tested or v.inside_reader_aware >= v.inside) and 0 <= q.misread_bound <= 1
    assert "reader-aware" in md and "misreads edits no more often than real held-out images" in md


def test_a_folder_too_small_to_test_the_queries_is_warned_of_and_its_queries_are_untested(cli, run_and_data, tmp_path):
    """60 labelled images: 30 train the reader, 30 are evaluated, too few for the 56 automatic queries' evidence.
    The start warns with the folder size that would do; a query whose evidence no evaluated image is read as is
    untested (null verdicts, counted apart in the headline), never inconsistent; results.json is strict JSON."""
    run, _ = run_and_data
    export_world(get_world("backdoor"), 60, tmp_path / "small", split="eval", seed=5)
    out = tmp_path / "rep"
    code, stdout, err = cli("evaluate", str(run), "--images", str(tmp_path / "small"), "--labels",
                            str(tmp_path / "small" / "labels.csv"), "--samples", "2", "--bootstrap", "3", "--no-realism",
                            "-o", str(out))
    assert code == 0, err
    said = " ".join(stdout.split())
    assert "warning: 60 labelled images are too few to test the automatic queries: 30 images are evaluated" in said
    text = (out / "results.json").read_text()
    json.loads(text, parse_constant=lambda c: pytest.fail(f"results.json holds the bare constant {c}"))
    res = EvaluationResults.load(out / "results.json")
    c = res.counts("ancm")
    assert len(res.queries) == c.queries == 56 and c.untested > 0
    assert res.labels.rows_needed > 60 and f"a folder of at least {res.labels.rows_needed:,} labelled images" in said
    for q in res.queries:
        v = q.methods["ancm"]
        assert v.tested == (v.estimate.n > 0)
        assert (v.inside is None) == (v.inside_reader_aware is None) == (v.inside_pointwise is None) == (not v.tested)
    assert f"{c.inside}/{c.tested} tested queries consistent" in said and f"{c.untested} of 56 queries untested" in said
    assert "untested" in (out / "report.md").read_text()


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
    res = EvaluationResults.load(tmp_path / "r" / "results.json")
    assert res.labels.bounds_from.source == "eval" and res.labels.bounds_from.rows == 400
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
    res = EvaluationResults.load(tmp_path / "rep" / "results.json")
    assert res.labels.label_rows == 30 and res.reader.rows == 15 and res.n_units == 10
    assert set(res.reader.accuracy) == {"Gender", "Age", "GrayHair"} and "celeba (all)" in res.world
    # automatic queries: every action, its most frequent other configuration, each other factor
    assert len(res.queries) == 3 * 2 * 2
    kept = [q for q in res.queries if q.query.startswith("P(Gender[Age=")]  # Gender is no descendant of Age
    assert kept and all(q.kept and q.lower == q.upper == 1 for q in kept)


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
    first = EvaluationResults.load(tmp_path / "first" / "results.json")
    assert (tmp_path / "first" / "reader" / "reader.safetensors").is_file() and first.reader.kind == "trained"
    code, _, err = cli(*args, "--reader", str(tmp_path / "first" / "reader"), "-o", str(tmp_path / "second"))
    assert code == 0, err
    second = EvaluationResults.load(tmp_path / "second" / "results.json")
    assert second.reader.kind == "external" and second.reader.network == first.reader.network
    assert second.reader.rows == 0 and second.reader.held_out == second.labels.label_rows == 400
    assert not (tmp_path / "second" / "reader").exists()
    assert "external reader given by the user" in (tmp_path / "second" / "report.md").read_text()
    code, _, err = cli(*args, "--reader", str(run), "-o", str(tmp_path / "third"))
    assert code == 2 and "is not a reader folder" in err and "Traceback" not in err, err


def test_user_data_realism_is_pooled_over_the_actions_and_given_per_action(cli, run_and_data, tmp_path):
    """With realism on, each action's edits are compared with held-out real images that carry its value, alone (its
    own floor) and pooled: the pooled set is the actions' sets together."""
    run, data = run_and_data
    fast = tuple(a for a in FAST if a != "--no-realism")
    code, _, err = cli("evaluate", str(run), "--images", str(data), "--labels", str(data / "labels.csv"),
                       "--graph", str(data / "graph.cg"), *fast, "-o", str(tmp_path / "rep"))
    assert code == 0, err
    m = EvaluationResults.load(tmp_path / "rep" / "results.json").editors["ancm"]
    parts = [i.realism for i in m.interventions if i.realism is not None]
    assert m.realism is not None and len(parts) >= 2
    assert sum(p.distance.n for p in parts) == m.realism.distance.n
    assert all(p.network == m.realism.network and p.floor >= 0 for p in parts)
    assert "realism FD (floor)" in (tmp_path / "rep" / "report.md").read_text()
