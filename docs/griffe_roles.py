"""A griffe extension for the API pages: the docstrings' Sphinx roles become cross-references.

The code's docstrings name other objects as ``:func:`optimal_bounds``` or ``:class:`~cfedit.scm.SCM```. Each
such role is resolved where it is written (the object, its class, its module, then the package), and becomes an
autorefs link to the object's page. A role that does not resolve (a renamed or removed object) logs a warning, so
`mkdocs build --strict` fails on a stale reference; a role naming a library outside cfedit (numpy, torch: see
``EXTERNAL``) or a private helper stays a code span.
"""

from __future__ import annotations

import re

import griffe

ROLE = re.compile(r":(?:py:)?(?:func|class|mod|data|meth|attr|exc|obj|const):`(~?)([^`<>]+?)`")
log = griffe.logger  # mkdocstrings routes it to mkdocs' log: a warning fails a strict build
EXTERNAL = {"np", "numpy", "torch", "scipy", "networkx", "typer", "fastapi", "diffusers", "PIL"}  # named, not linked


def _resolve(start: griffe.Object, name: str, root: griffe.Module) -> griffe.Object | None:
    """The object ``name`` refers to, seen from ``start`` (None when it is not a cfedit object)."""
    if name.startswith("."):  # relative to the module (a package's submodule)
        start, name = start.module, name.lstrip(".")
    first, *rest = name.split(".")
    scopes: list[griffe.Object] = []
    scope: griffe.Object | None = start
    while scope is not None:
        scopes.append(scope)
        scope = scope.parent
    found = None
    if first == root.name:
        found, rest = root, rest
    else:
        for scope in scopes:
            if first in scope.members:
                found = scope.members[first]
                break
        if found is None and first == start.name:
            found = start
    for part in rest:
        if found is None:
            return None
        try:
            found = found.members.get(part)
        except (griffe.AliasResolutionError, griffe.CyclicAliasError):
            return None
    if isinstance(found, griffe.Alias):
        try:
            found = found.final_target
        except (griffe.AliasResolutionError, griffe.CyclicAliasError):
            return None
    return found


def _rewrite(obj: griffe.Object, root: griffe.Module) -> None:
    doc = obj.docstring
    if doc is None or ":`" not in doc.value:
        return

    def link(m: re.Match) -> str:
        tilde, name = m.group(1), m.group(2).strip()
        shown = name.rsplit(".", 1)[-1] if tilde else name
        target = _resolve(obj, name, root)
        if target is None:
            if name.split(".")[0] not in EXTERNAL:
                log.warning(f"{obj.path}: docstring names {name!r}, which does not resolve")
            return f"`{shown}`"
        if any(p.startswith("_") and not p.startswith("__") for p in target.path.split(".")):
            return f"`{shown}`"  # a private helper: named, not linked (it has no page)
        return f"[`{shown}`][{target.path}]"

    doc.value = ROLE.sub(link, doc.value)


class SphinxRoles(griffe.Extension):
    """Rewrite ``:role:`name``` in every docstring of the package once it is loaded."""

    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader, **kwargs) -> None:
        def walk(obj: griffe.Object) -> None:
            _rewrite(obj, pkg)
            for member in obj.members.values():
                if not isinstance(member, griffe.Alias):
                    walk(member)

        walk(pkg)
