"""A name that starts with an underscore stays in its module: no file of src/, tests/ or benchmarks/ imports
another cfedit module's private name (``from cfedit.x import _name``) or reads it off the module
(``x._name``); module dunders such as ``__version__`` are not private. Every module of
:mod:`cfedit.bounds` declares ``__all__``, and what one of them imports from another is in that one's
``__all__``."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _is_module(dotted: str) -> bool:
    """Whether ``dotted`` names a module or package of src/ (cfedit's own)."""
    path = SRC.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _absolute(node: ast.ImportFrom, file: Path) -> str:
    """The module a ``from ... import`` reads, relative imports resolved against ``file``'s package."""
    if not node.level:
        return node.module or ""
    package = file.relative_to(SRC).with_suffix("").parts[: -node.level] if file.is_relative_to(SRC) else ()
    return ".".join((*package, *([node.module] if node.module else [])))


def violations(file: Path, text: str | None = None) -> list[str]:
    """``file:line: what`` for each private name of another cfedit module that ``file`` imports or reads."""
    tree = ast.parse(file.read_text() if text is None else text)
    modules: dict[str, str] = {}  # local name -> the cfedit module it is bound to
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if _is_module(a.name):
                    if a.asname:
                        modules[a.asname] = a.name
                    else:  # `import a.b.c` binds `a`
                        modules[a.name.split(".")[0]] = a.name.split(".")[0]
                if any(_private(part) for part in a.name.split(".")) and _is_module(a.name):
                    out.append(f"{file.name}:{node.lineno}: import {a.name}")
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(node, file)
            if not _is_module(source):
                continue
            for a in node.names:
                if _private(a.name):
                    out.append(f"{file.name}:{node.lineno}: from {source} import {a.name}")
                elif _is_module(f"{source}.{a.name}"):
                    modules[a.asname or a.name] = f"{source}.{a.name}"
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            chain, base = [], node.value
            while isinstance(base, ast.Attribute):
                chain.insert(0, base.attr)
                base = base.value
            if isinstance(base, ast.Name) and base.id in modules and _is_module(".".join([modules[base.id], *chain])):
                out.append(f"{file.name}:{node.lineno}: {'.'.join([base.id, *chain, node.attr])}")
    return out


def test_no_private_name_crosses_a_module():
    found = []
    for top in ("src", "tests", "benchmarks"):
        for file in sorted((ROOT / top).rglob("*.py")):
            found += [f"{file.relative_to(ROOT).parent}/{v}" for v in violations(file)]
    assert not found, "\n".join(found)


def test_the_check_sees_each_form_of_access():
    """The check itself: each way of reaching another module's private name is caught; public names,
    dunders, a module's own private names and other packages' private names are not."""
    file = SRC / "cfedit" / "bounds" / "probe.py"  # a module inside the package, for the relative imports
    bad = {
        "from cfedit.bounds.canonical import _keys": 1,
        "from .canonical import _keys": 1,
        "from cfedit.bounds import canonical\ncanonical._keys": 1,
        "import cfedit.bounds.canonical as c\nc._keys": 1,
        "import cfedit.bounds.canonical\ncfedit.bounds.canonical._keys": 1,
        "from cfedit import bounds\nbounds.canonical._keys": 1,
    }
    good = (
        "from cfedit.bounds.canonical import Component",
        "from cfedit import __version__",
        "def _own():\n    pass\n_own()",
        "from scipy.optimize import _linprog",
        "from cfedit.bounds.canonical import Component\nComponent(1)._rows",  # an attribute of an object, not of a module
    )
    for text, n in bad.items():
        assert len(violations(file, text)) == n, text
    for text in good:
        assert violations(file, text) == [], text


def test_every_bounds_module_declares_what_it_shares():
    """Each module of cfedit.bounds has ``__all__``, and every name a bounds module imports from another
    bounds module is listed there."""
    folder = SRC / "cfedit" / "bounds"
    declared = {}
    for file in sorted(folder.glob("*.py")):
        tree = ast.parse(file.read_text())
        names = [ast.literal_eval(n.value) for n in tree.body
                 if isinstance(n, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in n.targets)]
        assert names, f"{file.name} declares no __all__"
        declared[f"cfedit.bounds.{file.stem}" if file.stem != "__init__" else "cfedit.bounds"] = set(names[0])
    for file in sorted(folder.glob("*.py")):
        for node in ast.walk(ast.parse(file.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module in declared and node.module != "cfedit.bounds":
                for a in node.names:
                    assert a.name in declared[node.module], f"{file.name} imports {a.name} from {node.module}, not in its __all__"
