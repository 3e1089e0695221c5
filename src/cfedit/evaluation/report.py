"""Evaluation reports: a folder with results.json, report.md, report.html and PNG figures.

The input is the typed results of an evaluation (:class:`~cfedit.evaluation.results.EvaluationResults`, what
:mod:`cfedit.evaluation.protocol` and :mod:`cfedit.evaluation.userdata` produce); results.json is their
strict-JSON form. The tables read the results' fields; the CLI prints the same tables.
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np

from cfedit.core.files import atomic_write
from cfedit.evaluation.misread import describe
from cfedit.evaluation.results import EvaluationResults, dumps


def _fmt(x) -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "-"
    return f"{x:.3f}" if isinstance(x, float) else str(x)


def ctf_rows(results: EvaluationResults) -> tuple[list[str], list[list[str]]]:
    """Counterfactual consistency: a row per query (bounds and their ranges), a column per editor (its verdict)."""
    methods = results.methods
    head = ["query", "truth", "optimal bounds", "identified", *methods]
    rows = []
    for q in results.queries:
        bounds = f"[{_fmt(q.lower)}, {_fmt(q.upper)}]"
        if q.ranges is not None:  # bounds from labels: with the 95% bootstrap range they are widened to
            bounds += (f" (95% range [{_fmt(q.ranges.pointwise[0])}, {_fmt(q.ranges.pointwise[1])}]"
                       f"; all queries at once [{_fmt(q.ranges.band[0])}, {_fmt(q.ranges.band[1])}])")
        # the bounds widened by the reader's misread rate (cfedit.evaluation.misread)
        bounds += f" read as [{_fmt(q.reader_aware_band[0])}, {_fmt(q.reader_aware_band[1])}]"
        cells = [q.query, _fmt(q.truth), bounds, "yes" if q.identified else "no"]
        cells += [q.methods[m].format() if m in q.methods else "-" for m in methods]
        rows.append(cells)
    return head, rows


def metric_rows(results: EvaluationResults) -> tuple[list[str], list[list[str]]]:
    """A row per editor, a column per metric measured (in the order of :meth:`~cfedit.evaluation.results.EditorScores.cells`)."""
    cells = {m: s.cells() for m, s in results.editors.items()}
    names = list(dict.fromkeys(k for c in cells.values() for k in c))
    return ["method", *names], [[m, *(c.get(k, "-") for k in names)] for m, c in cells.items()]


def intervention_rows(results: EvaluationResults) -> tuple[list[str], list[list[str]]]:
    """Effectiveness and preservation per method and intervention (and the error to the true counterfactual image,
    where a world gives it)."""
    truth = any(i.ground_truth_error is not None for s in results.editors.values() for i in s.interventions)
    real = any(i.realism is not None for s in results.editors.values() for i in s.interventions)
    head = ["method", "do", "effectiveness", "preservation (non-descendants)"]
    head += ["error to the true counterfactual image"] if truth else []
    head += ["realism FD (floor)"] if real else []
    rows = [[m, i.action, i.effectiveness.format(), i.preservation.format()]
            + ([i.ground_truth_error.format(4) if i.ground_truth_error is not None else "-"] if truth else [])
            + ([f"{i.realism.distance.format()} ({i.realism.floor:.3f})" if i.realism is not None else "-"] if real else [])
            for m, s in results.editors.items() for i in s.interventions]
    return head, rows


def verdict_line(results: EvaluationResults, method: str) -> str:
    """The headline of one editor's verdicts: consistent out of tested, and the untested apart."""
    c = results.counts(method)
    out = f"{c.inside}/{c.tested} tested queries consistent"
    if c.untested:
        out += (f"; {c.untested} of {c.queries} untested (no evaluated image was read as their evidence: neither "
                "consistent nor inconsistent)")
    return out


def markdown_table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _html_table(head: list[str], rows: list[list[str]]) -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join(
        "<tr>" + "".join(f"<td class='{'bad' if 'OUTSIDE' in c else ''}'>{html.escape(c)}</td>" for c in r) + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def interval_plot(results: EvaluationResults, path: Path) -> Path:
    """One panel per query: the optimal bounds (grey band), the truth (black tick), each method's
    estimate with its 95% interval."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    qs, methods = results.queries, results.methods
    fig, axes = plt.subplots(len(qs), 1, figsize=(8, 0.5 + 0.32 * len(methods) * len(qs) + 0.4 * len(qs)), squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, q in zip(axes[:, 0], qs):
        if q.ranges is not None:
            ax.axvspan(*q.ranges.band, color="0.96", label="bounds' simultaneous 95% band")
            ax.axvspan(*q.ranges.pointwise, color="0.92", label="bounds' 95% range")
        ax.axvspan(q.lower, q.upper, color="0.85", label="optimal bounds")
        if q.truth is not None:
            ax.axvline(q.truth, color="k", lw=1.5, label="truth")
        for j, m in enumerate(methods):
            v = q.methods.get(m)
            if v is None or not v.tested:  # untested: no point to draw
                continue
            e = v.estimate
            ax.errorbar([e.value], [j], xerr=[[e.value - e.lower], [e.upper - e.value]],
                        fmt="o", color=colours[j % len(colours)], capsize=3)
        ax.set_yticks(range(len(methods)), methods, fontsize=7)
        ax.set_xlim(-0.02, 1.02)
        ax.set_ylim(-0.7, len(methods) - 0.3)
        ax.set_title(q.query, fontsize=8)
        ax.tick_params(axis="x", labelsize=7)
    axes[0, 0].legend(fontsize=7, loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=2, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(results: EvaluationResults, folder: str | Path, title: str | None = None) -> Path:
    """Write results.json (strict JSON), ctf_intervals.png, report.md and report.html into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write(folder / "results.json", dumps(results))
    interval_plot(results, folder / "ctf_intervals.png")
    title = title or f"cfedit evaluation: {results.world}"
    ch, cr = ctf_rows(results)
    mh, mr = metric_rows(results)
    ih, ir = intervention_rows(results)
    acc = results.reader.accuracy
    acc_text = (" The oracle read the factual images' factors as the truth for these shares of units: "
                + ", ".join(f"{k} {e.format()}" for k, e in acc.items())
                + "; every figure is conditional on it: an edit the oracle misreads counts against the editor, so a "
                "'kept' query can fall a little below 1 for that reason alone.") if acc else ""
    mis = results.reader.misreads
    acc_text += (" The reader-aware verdict meets the bounds [l, u] widened to [l(1 - eps), u + (1 - u) eps], eps the sum "
                 "over the outcome's factors of the oracle's misread rate (one-sided upper 95% limit, worst class, on "
                 "these factual images): " + describe(mis) + ". It assumes the oracle misreads edits no more often "
                 "than the world's own images of the same class, and cannot tell a misread from an edit that lacks "
                 "the factor; the strict verdict stays the headline.") if mis else ""
    note = (f"{results.n_units} held-out factual units, {results.k_samples} edit sample(s) each; factors read by the "
            "world's oracle (factual and edited images alike); estimates with 95% intervals (Wilson over units, or normal "
            "over unit means when a unit's samples disagree); 'inside' means the interval meets the optimal bounds; "
            "'untested' means no held-out unit was read as the query's evidence (neither consistent nor inconsistent)."
            f"{acc_text} Realism: Frechet distance in a reference CNN's "
            "features (not Inception FID) to the world's own images under the same action, a 95% interval (standard error "
            "from the delete-half jackknife), and the world-vs-world floor at the same sample size; 'net' is the "
            "fingerprint of the feature network: distances are comparable only between reports with the same one "
            "(the network is trained once per machine and cached; other CPU kernels can give other weights).")
    note = results.note or note  # a report without a world (user data) states its own reading
    grids = results.grids
    md = [f"# {title}", "", note, "", "## Counterfactual consistency", "", markdown_table(ch, cr), "",
          "![ctf intervals](ctf_intervals.png)", "", "## Metrics", "", markdown_table(mh, mr), ""]
    if ir:
        md += ["## Per intervention", "", markdown_table(ih, ir), ""]
    md += [line for cap, f in grids.items() for line in (f"### {cap}", "", f"![{cap}]({f})", "")]
    atomic_write(folder / "report.md", "\n".join(md))
    body = [f"<h1>{html.escape(title)}</h1>", f"<p>{html.escape(note)}</p>", "<h2>Counterfactual consistency</h2>",
            _html_table(ch, cr), "<img src='ctf_intervals.png' alt='ctf intervals'>", "<h2>Metrics</h2>", _html_table(mh, mr)]
    if ir:
        body += ["<h2>Per intervention</h2>", _html_table(ih, ir)]
    body += [f"<h3>{html.escape(cap)}</h3><img src='{html.escape(f)}' alt='{html.escape(cap)}'>" for cap, f in grids.items()]
    style = ("body{font-family:sans-serif;max-width:1200px;margin:auto} table{border-collapse:collapse;font-size:12px}"
             "td,th{border:1px solid #ccc;padding:3px 6px} td.bad{background:#fdd} img{max-width:100%}")
    atomic_write(folder / "report.html", f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
                  f"</title><style>{style}</style></head><body>{''.join(body)}</body></html>")
    return folder


