"""Pages generated from the code at build time (the `gen-files` plugin runs this file), so they cannot drift.

- ``worlds/NAME.md`` for every registered world: its diagram, mechanisms, P(V), documented queries with their
  exact truth and optimal bounds (computed here), and the grids of factual and true counterfactual images
  committed under ``docs/img/worlds/``;
- ``reference/cli.md``: every command of the typer app with its usage, help and options;
- ``reference/api.md`` and ``reference/api/MODULE.md``: the exported names, and one mkdocstrings page per module.

The grids are rendered once and committed: ``python docs/gen_pages.py images [WORLD ...]`` writes them with
``cfedit world sample`` and ``cfedit world counterfactual`` (the ``edit`` extra). The functions here need only
the light install; ``tests/test_docs.py`` calls them.
"""

from __future__ import annotations

import math
import re
import subprocess
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
IMG = DOCS / "img" / "worlds"
SAMPLE_N, PAIRS_N = 16, 8  # units in a world's sample grid and in each counterfactual grid


# ------------------------------------------------------------------------------------------------ worlds
def image_files(world) -> dict[str, Path]:
    """Caption -> PNG path of the grids a world's page shows (sample, one per figure action)."""
    out = {"A sample of units (evaluation split, seed 0), factors under each image": IMG / f"{world.name}_sample.png"}
    for action in world.figure_actions:
        tag = "_".join(f"{k}-{v}" for k, v in action.items())
        text = ", ".join(f"{k}={v}" for k, v in action.items())
        out[f"do({text}): factual | true counterfactual of the same units, side by side"] = IMG / f"{world.name}_do_{tag}.png"
    return out


def render_images(names: list[str]) -> None:
    """Render the grids of the named worlds (all when none) with the CLI, into docs/img/worlds/."""
    from cfedit.worlds import get_world, world_names

    IMG.mkdir(parents=True, exist_ok=True)
    for name in names or world_names():
        world = get_world(name)
        files = list(image_files(world).values())
        cli = [sys.executable, "-m", "cfedit", "world"]
        subprocess.run([*cli, "sample", name, "-n", str(SAMPLE_N), "-o", str(files[0])], check=True)
        for action, path in zip(world.figure_actions, files[1:]):
            do = [a for k, v in action.items() for a in ("--do", f"{k}={v}")]
            subprocess.run([*cli, "counterfactual", name, *do, "-n", str(PAIRS_N), "-o", str(path)], check=True)


def diagram_svg(graph) -> str:
    """The causal diagram as an inline SVG: factors in topological order on a circle's arc, directed edges as
    arrows, bidirected edges (a shared hidden cause) as dashed arcs with two heads."""
    order = graph.topological_order()
    n = len(order)
    w, h, r = 360, 200, 22
    if n == 1:
        pos = {order[0]: (w / 2, h / 2)}
    else:
        pos = {v: (60 + i * (w - 120) / (n - 1), 140 - 80 * math.sin(math.pi * i / (n - 1))) for i, v in enumerate(order)}

    def ends(a, b):
        (x1, y1), (x2, y2) = pos[a], pos[b]
        d = math.hypot(x2 - x1, y2 - y1) or 1
        ux, uy = (x2 - x1) / d, (y2 - y1) / d
        return x1 + ux * r, y1 + uy * r, x2 - ux * (r + 2), y2 - uy * (r + 2)

    import html

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" '
             f'aria-label="causal diagram {html.escape(str(graph))}">',
             '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
             'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="currentColor"/></marker></defs>',
             '<g stroke="currentColor" fill="none" stroke-width="1.6">']
    for a, b in graph.directed:
        x1, y1, x2, y2 = ends(a, b)
        parts.append(f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" marker-end="url(#arrow)"/>')
    for a, b in graph.bidirected:
        x1, y1, x2, y2 = ends(a, b)
        mx, my = (x1 + x2) / 2, (y1 + y2) / 2
        dx, dy = x2 - x1, y2 - y1
        cx, cy = mx + 0.35 * dy, my - 0.35 * dx  # bend to one side
        if cy > my:
            cx, cy = mx - 0.35 * dy, my + 0.35 * dx
        parts.append(f'<path d="M{x1:.1f},{y1:.1f} Q{cx:.1f},{cy:.1f} {x2:.1f},{y2:.1f}" stroke-dasharray="5 4" '
                     'marker-start="url(#arrow)" marker-end="url(#arrow)"/>')
    parts.append("</g>")
    for v, (x, y) in pos.items():
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r}" fill="none" stroke="currentColor" stroke-width="1.6"/>')
        size = 14 if len(v) <= 3 else max(8, int(56 / len(v) * 1.6))
        parts.append(f'<text x="{x:.1f}" y="{y + size / 3:.1f}" text-anchor="middle" font-size="{size}" '
                     f'fill="currentColor">{v}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _fmt(x: float) -> str:
    return f"{x:.4f}".rstrip("0").rstrip(".") if abs(x - round(x, 4)) < 1e-12 else f"{x:.4f}"


def world_page(name: str) -> str:
    """The Markdown page of world ``name``, computed from the world object."""
    import html

    import numpy as np

    from cfedit.bounds import optimal_bounds
    from cfedit.core.query import parse_query
    from cfedit.worlds import get_world

    w = get_world(name)
    dom, g = w.domains, w.graph
    p = w.scm.observational()
    lines = [f"# {w.description.split(':')[0]}", "",
             "<!-- Generated by docs/gen_pages.py from the world object: edit the world, not this page. -->", "",
             f"`get_world({w.name!r})` · {w.description}  ", f"Reference: {w.reference}.", "",
             '<figure markdown="span">', diagram_svg(g),
             f"<figcaption>{html.escape(str(g))}: arrows are mechanisms, dashed two-headed arcs shared hidden causes.</figcaption>",
             "</figure>", "",
             "## Factors", "", "| factor | values | parents | shares a hidden cause with |", "|---|---|---|---|"]
    for k in dom.names:
        lines.append(f"| {k} | {', '.join(dom.values(k))} | {', '.join(g.parents(k)) or '-'} | {', '.join(g.spouses(k)) or '-'} |")
    c, hh, ww = w.image_shape
    lines += ["", f"Images are {c} x {hh} x {ww} (channels x height x width), floats in [0, 1].", ""]
    if w.data_note:
        lines += [f"Image noise: {w.data_note}.", ""]
    lines += ["## Mechanisms", "", "As the world documents them (`cfedit world show " + w.name + "` prints the same):", "",
              "```text", w.mechanisms.strip(), "```", "", "## P(V)", ""]
    marg = []
    for i, k in enumerate(dom.names):
        m = p.sum(axis=tuple(j for j in range(p.ndim) if j != i))
        marg.append(f"| {k} | " + ", ".join(f"{dom.decode(k, int(j))}: {m[j]:.3f}" for j in range(len(m))) + " |")
    lines += ["Marginals of the exact observational law:", "", "| factor | P(factor = value) |", "|---|---|", *marg, ""]
    first, rest = dom.names[0], dom.names[1:]
    cols = list(np.ndindex(*p.shape[1:]))
    head = [first, *(", ".join(f"{k}={dom.decode(k, int(c_))}" for k, c_ in zip(rest, col)) for col in cols)]
    lines += [f'??? note "The joint table P({", ".join(dom.names)}), {p.size} cells"', "",
              "    | " + " | ".join(head) + " |", "    |" + "---|" * len(head)]
    for i in range(p.shape[0]):
        lines.append(f"    | {dom.decode(first, i)} | " + " | ".join(f"{p[(i, *col)]:.4f}" for col in cols) + " |")
    lines += ["", "## Documented queries", "",
              "Each is an edit query P(W[X=x'] = w | V = v); the truth is computed by enumerating the exogenous "
              "variables, the [optimal bounds](../concepts/bounds.md) from P(V) and the diagram alone.", "",
              "| query | truth | optimal bounds | identified |", "|---|---|---|---|"]
    for text in w.queries:
        q = parse_query(text, dom)
        b = optimal_bounds(q, g, dom, p)
        bounds = _fmt(b.lower) if b.identified else f"[{_fmt(b.lower)}, {_fmt(b.upper)}]"
        cell = text.replace("|", "\\|")
        lines.append(f"| `{cell}` | {_fmt(w.scm.probability(q))} | {bounds} | {'yes' if b.identified else 'no'} |")
    lines += ["", "## Images", ""]
    for caption, path in image_files(w).items():
        if path.is_file():
            lines += [f"![{caption}](../img/worlds/{path.name})", "", f"*{caption}.*", ""]
    lines += ["Render them again with `python docs/gen_pages.py images " + w.name + "`, or any other action with "
              f"`cfedit world counterfactual {w.name} --do FACTOR=VALUE -n 8 -o pairs.png`.", "",
              "## For editors and evaluation", "",
              "- actions the reports' grids and the demo show: "
              + "; ".join("do(" + ", ".join(f"{k}={v}" for k, v in a.items()) + ")" for a in w.figure_actions),
              f"- the reversibility metric flips {w.reversibility or '(none)'} and edits it back"]
    if w.editor_settings:
        lines.append("- the world's own ANCM settings (`cfedit train --world " + w.name + "` starts from them; a `--config` "
                     "file and flags override them): `" + _settings(w.editor_settings) + "`")
    else:
        lines.append("- the ANCM's defaults (no world-specific settings)")
    return "\n".join(lines) + "\n"


def _settings(d, prefix: str = "") -> str:
    out = []
    for k, v in d.items():
        if isinstance(v, dict):
            out.append(_settings(v, f"{prefix}{k}."))
        else:
            out.append(f"{prefix}{k} = {v!r}")
    return ", ".join(out)


# ------------------------------------------------------------------------------------------------ CLI
def cli_page() -> str:
    """Every command of ``cfedit``, from the typer app's click tree: usage, help, arguments and options."""
    import typer

    from cfedit.cli import app, register_commands

    register_commands()
    root = typer.main.get_command(app)
    lines = ["# Command line", "",
             "<!-- Generated by docs/gen_pages.py from the typer app: edit the commands' help, not this page. -->", "",
             "`cfedit --help` and `cfedit COMMAND --help` print the same. Every failure prints one `error:` line "
             "(status 2 for bad input, usage or a fault of the environment, 130 when interrupted, 141 when the output "
             "pipe closes, 1 for a bug); see "
             "[Limits and errors](limits.md).", ""]

    def walk(cmd, path: list[str], parent) -> None:  # typer's commands (it ships its own copy of click)
        ctx = typer.Context(cmd, info_name=path[-1], parent=parent)
        if path != ["cfedit"]:
            lines.extend([f"{'#' * min(len(path), 4)} `{' '.join(path)}`", ""])
            if cmd.help:
                lines.extend([_clean(cmd.help), ""])
            pieces = " ".join(re.sub(r"\{(\w+)\}", lambda m: m.group(1).upper(), p) for p in cmd.collect_usage_pieces(ctx))
            lines.extend(["```text", f"{' '.join(path)} {pieces}".rstrip(), "```", ""])
            params = [p for p in cmd.params if not getattr(p, "hidden", False) and p.name != "help"]
            if params:
                lines.extend(["| argument or option | description |", "|---|---|"])
                for prm in params:
                    lines.append(_param_row(prm, ctx))
                lines.append("")
        if hasattr(cmd, "list_commands"):
            for name in cmd.list_commands(ctx):
                walk(cmd.get_command(ctx, name), [*path, name], ctx)

    walk(root, ["cfedit"], None)
    return "\n".join(lines) + "\n"


def _clean(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|").replace("[", "\\[")


def _param_row(prm, ctx) -> str:
    names, text = prm.get_help_record(ctx) or (prm.name, "")
    if prm.param_type_name == "argument":
        text = (prm.help or "") + ("  [required]" if prm.required else "")
    return f"| `{' '.join(names.split())}` | {_clean(text)} |"  # a code span: nothing to escape but table bars


# ------------------------------------------------------------------------------------------------ API
API_SKIP = ("cfedit.__main__",)


def api_modules() -> list[str]:
    """Every module of the package, in dotted form and sorted (the API reference has a page for each)."""
    src = ROOT / "src"
    mods = []
    for path in sorted((src / "cfedit").rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        name = ".".join(parts)
        if name not in API_SKIP and not any(p.startswith("_") and p != "__init__" for p in parts[1:]):
            mods.append(name)
    return mods


def _first_line(doc: str | None) -> str:
    """A docstring's first sentence, as Markdown for a table cell."""
    text = " ".join((doc or "").strip().split("\n\n")[0].split())
    text = re.split(r"(?<![.\s])\.\s", text, maxsplit=1)[0].rstrip(".")
    text = re.sub(r":\w+:`~?(?:[\w.]*\.)?([^`]+)`", r"`\1`", text).replace("``", "`")
    return text.replace("|", "\\|").replace("<", "&lt;")


def api_index() -> str:
    """The API reference's front page: the names ``cfedit`` exports, then every module by layer."""
    import ast
    import importlib.util

    import cfedit

    lines = ["# Python API", "",
             "<!-- Generated by docs/gen_pages.py: edit the docstrings, not this page. -->", "",
             "The names a first script needs are exported by `cfedit` itself; the light install imports no torch, and "
             "`ANCM` and `neural_bounds` load on first use (they need the `edit` extra). Every module has a page "
             "generated from its docstrings; [Concepts](../concepts/index.md) explains the ideas behind them.", "",
             "## `cfedit`", "", "| name | what it is |", "|---|---|"]
    for name in sorted(cfedit.__all__, key=str.lower):
        obj = getattr(cfedit, name)
        path = f"{obj.__module__}.{obj.__qualname__}"
        lines.append(f"| [`{name}`][{path}] | {_first_line(obj.__doc__)} |")
    lines += ["", "## Modules", "",
              "By layer, top to bottom; each imports only the layers below it ([Design notes](../development/design.md)).", ""]
    groups: dict[str, list[str]] = {}
    for mod in api_modules():
        parts = mod.split(".")
        groups.setdefault(parts[1] if len(parts) > 1 else "cfedit", []).append(mod)
    order = ["cli", "server", "evaluation", "theory", "runs", "editors", "imaging", "bounds", "ncm", "worlds", "data", "scm",
             "artefacts", "core", "errors", "rng", "cfedit"]
    for group in sorted(groups, key=lambda g: order.index(g) if g in order else len(order)):
        lines += [f"### `{group}`" if group != "cfedit" else "### The package", "", "| module | |", "|---|---|"]
        for mod in groups[group]:
            spec = importlib.util.find_spec(mod)
            doc = ast.get_docstring(ast.parse(Path(spec.origin).read_text())) if spec and spec.origin else ""
            lines.append(f"| [`{mod}`](api/{mod}.md) | {_first_line(doc)} |")
        lines.append("")
    return "\n".join(lines) + "\n"


def api_page(module: str) -> str:
    return f"# `{module}`\n\n::: {module}\n    options:\n      show_root_heading: false\n      heading_level: 2\n"


def pages() -> dict[str, str]:
    """Path under docs/ -> Markdown, for every generated page."""
    from cfedit.worlds import world_names

    out = {f"worlds/{n}.md": world_page(n) for n in world_names()}
    out["reference/cli.md"] = cli_page()
    out["reference/api.md"] = api_index()
    out.update({f"reference/api/{m}.md": api_page(m) for m in api_modules()})
    return out


def main() -> None:
    import mkdocs_gen_files

    sys.path.insert(0, str(ROOT / "src"))
    for path, text in pages().items():
        with mkdocs_gen_files.open(path, "w") as f:
            f.write(text)


if __name__ == "<run_path>":  # run by the gen-files plugin
    main()
elif __name__ == "__main__" and sys.argv[1:2] == ["images"]:
    render_images(sys.argv[2:])
