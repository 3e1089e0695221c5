"""The documentation stays true to the code: the README's and the Getting-started page's Python runs and prints what
the text says, every Python block on the site parses, the README's links resolve, and the generated pages
(docs/gen_pages.py: a page per world, the CLI reference) cover every world and command. The site itself is built with
`mkdocs build --strict` in CI (.ci/run)."""

import ast
import re
import runpy
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.rglob("*.md"))


def _blocks(path: Path, lang: str = "python") -> list[str]:
    return re.findall(rf"```{lang}[^\n]*\n(.*?)```", path.read_text(), re.S)


def _gen():
    return runpy.run_path(str(DOCS / "gen_pages.py"), run_name="gen_pages")


@pytest.mark.parametrize("path", [ROOT / "README.md", *PAGES], ids=lambda p: str(p.relative_to(ROOT)))
def test_every_python_block_parses(path):
    for block in _blocks(path):
        ast.parse(block)


def test_getting_started_first_question_prints_what_the_page_says(capsys):
    page = (DOCS / "getting-started.md").read_text()
    block = _blocks(DOCS / "getting-started.md")[0]
    exec(compile(block, "getting-started.md", "exec"), {})
    printed = capsys.readouterr().out.strip()
    assert f"It prints `{printed}`" in page


def _shipped_backdoor() -> bool:
    from cfedit.runs import list_pretrained

    return "backdoor" in {a.name for a in list_pretrained()}


@pytest.fixture(params=["tiny run", "shipped editor"])
def editor_ref(request, tiny_backdoor_run):
    """What the pages' `Run.load("pretrained:backdoor")` loads: the tiny trained run in its place, and the shipped
    editor itself where the installation ships one."""
    if request.param == "tiny run":
        return repr(str(tiny_backdoor_run))
    if not _shipped_backdoor():
        pytest.skip("this installation ships no Backdoor editor")
    return '"pretrained:backdoor"'


def test_getting_started_edit_runs(editor_ref, capsys):
    """The page's Python edit, with the shipped editor or the tiny trained run in its place."""
    block = next(b for b in _blocks(DOCS / "getting-started.md") if "Run.load" in b)
    assert '"pretrained:backdoor"' in block
    ns: dict = {}
    exec(compile(block.replace('"pretrained:backdoor"', editor_ref), "getting-started.md", "exec"), ns)
    out = capsys.readouterr().out.strip()
    assert out == "(4, 8, 3, 28, 28) (4, 8)" and out in block  # the comment promises the printed shapes
    green = ns["world"].domains.code("C", "green")
    assert (ns["result"].factors["C"] == green).all()  # every edit was generated with the intervened value
    assert ns["truth"].shape == (4, 3, 28, 28) and (ns["v_true"]["C"] == green).all()
    assert ns["run"].world is not None and ns["run"].world.name == "backdoor"  # the run is matched to its world


def test_readme_edit_example_runs(editor_ref):
    block = [b for b in _blocks(ROOT / "README.md") if "Run.load" in b][0]
    assert '"pretrained:backdoor"' in block
    ns = {"images": np.random.default_rng(0).random((3, 3, 28, 28)).astype(np.float32)}
    exec(compile(block.replace('"pretrained:backdoor"', editor_ref), "README.md", "exec"), ns)
    assert ns["result"].images.shape == (3, 8, 3, 28, 28) and ns["result"].factors["D"].shape == (3, 8)


def test_readme_is_short_and_its_links_resolve():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 250
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
        if not target.startswith(("http://", "https://")):
            assert (ROOT / target).exists(), f"README links to missing {target}"


def test_every_world_has_a_page_with_its_queries_and_grids():
    from cfedit.worlds import get_world, world_names

    gen = _gen()
    pages = gen["pages"]()
    nav = (ROOT / "mkdocs.yml").read_text()
    for name in world_names():
        page = pages[f"worlds/{name}.md"]
        world = get_world(name)
        for q in world.queries:
            assert q.replace("|", "\\|") in page
        assert f"worlds/{name}.md" in nav, f"add worlds/{name}.md to the nav in mkdocs.yml"
        for path in gen["image_files"](world).values():
            assert path.is_file(), f"render the grids: python docs/gen_pages.py images {name}"
            assert f"../img/worlds/{path.name}" in page


def test_world_page_shows_the_exact_truth_and_bounds():
    page = _gen()["world_page"]("backdoor")
    assert "| `P(B[C=green]=1 \\| D=7, C=red, B=0)` | 0.6 | [0.5, 0.75] | no |" in page


def test_cli_reference_covers_every_command_and_option():
    import typer

    from cfedit.cli import app, register_commands

    page = _gen()["cli_page"]()
    register_commands()
    root = typer.main.get_command(app)
    ctx = typer.Context(root, info_name="cfedit")
    for name in root.list_commands(ctx):
        cmd = root.get_command(ctx, name)
        subs = cmd.list_commands(typer.Context(cmd, info_name=name, parent=ctx)) if hasattr(cmd, "list_commands") else [None]
        for sub in subs:
            title = f"cfedit {name}" + (f" {sub}" if sub else "")
            assert f"`{title}`" in page, title
    for option in ("--certify", "--extremes", "--bounds-from", "--mechanism", "--threads"):
        assert f"`{option}" in page or f", {option}" in page, option
