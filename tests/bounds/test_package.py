"""The package's layering: only ``neural`` imports torch, and it uses the declared internal API alone."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import cfedit.bounds

PACKAGE = Path(cfedit.bounds.__file__).parent


def _imports(path: Path) -> list[tuple[str, tuple[str, ...]]]:
    """(module, names) of every import statement of a source file."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(a.name, ()) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            out.append((node.module or "", tuple(a.name for a in node.names)))
    return out


def test_only_neural_imports_torch():
    for path in PACKAGE.glob("*.py"):
        torch = [m for m, _ in _imports(path) if m.split(".")[0] == "torch"]
        assert bool(torch) == (path.stem == "neural"), path.name


def test_neural_uses_only_the_declared_internal_api():
    for module, names in _imports(PACKAGE / "neural.py"):
        if module.startswith("cfedit.bounds"):
            declared = importlib.import_module(module).__all__
            assert set(names) <= set(declared), (module, sorted(set(names) - set(declared)))


def test_bounds_depend_only_on_the_bottom_layer_and_scm():
    allowed = ("cfedit.bounds", "cfedit.core", "cfedit.errors", "cfedit.rng", "cfedit.scm")
    for path in PACKAGE.glob("*.py"):
        for module, _ in _imports(path):
            if module.split(".")[0] == "cfedit":
                assert module.startswith(allowed), (path.name, module)
