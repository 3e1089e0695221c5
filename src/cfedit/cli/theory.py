"""``cfedit theory witness``: the two impossibility results as one figure."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer

from cfedit.cli import app
from cfedit.cli.common import MAX_SEED, console, print_table
from cfedit.core.figures import save_grid
from cfedit.core.files import check_png_path
from cfedit.errors import CfeditError
from cfedit.theory import diagram_witness, handwriting_witness, posterior_units, witness_defaults
from cfedit.worlds import get_world

theory_app = typer.Typer(no_args_is_help=True, help="The impossibility results, executable.")
app.add_typer(theory_app, name="theory")


@theory_app.command("witness")
def witness(
    name: str,
    output: Annotated[Path, typer.Option("-o", "--output", help="PNG file to write")] = Path("witness.png"),
    do: Annotated[Optional[str], typer.Option("--do", help="the action [default: the world's first figure action]")] = None,
    evidence: Annotated[Optional[str], typer.Option(help="factual units shown satisfy this [default: X at another value]")] = None,
    n: Annotated[int, typer.Option("-n", min=1, max=64, help="units shown")] = 8,
    seed: Annotated[int, typer.Option(min=0, max=MAX_SEED, help="random seed")] = 0,
) -> None:
    """Rows: factual; counterfactual under diagrams Y->X, X->Y, Y<->X (same P(V, I)); under M and M'."""
    w = get_world(name)
    check_png_path(output)
    if do is None:
        do, default_evidence = witness_defaults(w)
        evidence = evidence or default_evidence
    if evidence is None:
        raise CfeditError("give --evidence with --do: the factual units the witness is about")
    x = w.domains.parse_assignments(do)
    ev = w.domains.parse_assignments(evidence)
    a = w.ascm("eval", oracle=False)
    models = diagram_witness(w, evidence, do)
    y = models[0].factor
    print_table(
        f"impossibility 1: same P(V, I), different diagrams ({name})",
        ["diagram", "max |P(V) - P_world(V)|", f"P({y} kept | do({do}), {evidence})"],
        [(m.graph, f"{np.abs(m.scm.observational() - w.scm.observational()).max():.1e}", f"{m.kept:.3f}") for m in models],
    )
    units = a.units(2000, seed)
    hw = handwriting_witness(a, x, units=units)
    console.print(
        f"impossibility 2: P(I | v) identical under M and M': {hw.law_identical}; counterfactual images differ for "
        f"{hw.share_different:.1%} of 2,000 units ({hw.share_different_changed:.1%} of those the action changes)"
    )
    pick = np.flatnonzero(np.all([units.v[k] == c for k, c in ev.items()], axis=0))[:n]
    rows, caps = [a.factual(_subset(units, pick))], [[f"fact {y}={w.domains.decode(y, d)}" for d in units.v[y][pick]]]
    for m in models:
        cf_imgs, cf_caps = [], []
        for j, i in enumerate(pick):
            v_i = {k: int(units.v[k][i]) for k in units.v}
            post = posterior_units(m.scm, v_i, float(units.u_image[i]), 1, seed + j)
            v_cf = m.scm.counterfactual(post.u, x)
            cf_imgs.append(a.image.generate(v_cf, post.u_image))
            cf_caps.append(f"{m.graph.to_line().split(';')[0].replace(' ', '')}: {y}={w.domains.decode(y, v_cf[y][0])}")
        rows.append(np.concatenate(cf_imgs))
        caps.append(cf_caps)
    rows += [hw.counterfactual_m[pick], hw.counterfactual_m2[pick]]
    caps += [["M (true)"] * len(pick), ["M' (tau_v)"] * len(pick)]
    k = min(len(r) for r in rows)
    images = np.concatenate([r[:k] for r in rows])
    path = save_grid(output, images, [c for row in caps for c in row[:k]], ncol=k)
    console.print(f"wrote {path}: rows = factual; do({do}) under {', '.join(m.graph.to_line().split(';')[0] for m in models)}; "
                  "under M; under M'")


def _subset(units, idx):
    from cfedit.scm import Units

    return Units({k: a[idx] for k, a in units.u.items()}, units.u_image[idx], {k: a[idx] for k, a in units.v.items()})
