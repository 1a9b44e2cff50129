"""The architecture the folders show, checked on the source: which package may import which, and no
import cycle between files (a lazy import inside a function counts: it is still a cycle a reader has to
untangle, and it hides an import-order dependence until the day the lazy import runs first).

The graph is built from every `import` statement of the project's own packages (`ast`, nothing is
imported); an edge goes to the module a statement names (`from a.b import c` names `a/b/c.py` when
that file exists, else `a/b`), not to the parent packages Python also runs on the way.
"""
import ast
from pathlib import Path

import pytest

from tests.helpers import ROOT

PACKAGES = ("lightning_app", "models", "datamodules", "callbacks", "value_ranges")

# importer prefix -> prefixes it must never import (the README's "Data flows one way")
FORBIDDEN = {
    "value_ranges": ("lightning_app", "callbacks", "datamodules", "models"),
    "models": ("lightning_app", "callbacks", "datamodules"),
    "datamodules": ("lightning_app", "callbacks", "models"),
    "callbacks": ("lightning_app",),
    "lightning_app.run": ("lightning_app.sweep", "lightning_app.report", "lightning_app.cli"),
    "lightning_app.report": ("lightning_app.sweep", "lightning_app.cli"),
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules() -> dict[str, Path]:
    return {module_name(p): p for package in PACKAGES for p in (ROOT / package).rglob("*.py")}


def imported_names(path: Path, name: str, modules) -> set[str]:
    """The project modules the file's import statements name (relative imports resolved)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            names.update(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names)
    return {imported for imported in names if imported in modules and imported != name}


def import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    return {name: imported_names(path, name, modules) for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, 1972)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in graph[node]:
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_a_cycle_and_only_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set(), "c": {"a", "b"}}) == []


def test_relative_imports_resolve_to_the_module_they_name(tmp_path, monkeypatch):
    source = ROOT / "models" / "norms" / "registry.py"
    graph = import_graph()
    assert "models.norms.basic" in graph[module_name(source)]  # an absolute import, as a sanity anchor
    monkeypatch.setattr(Path, "read_text", lambda self: "from . import basic, make_norm\nfrom ..backbones import vgg\n")
    assert imported_names(source, "models.norms.registry", project_modules()) == {
        "models.norms.basic", "models.norms", "models.backbones.vgg"}  # make_norm is a name of models.norms


def test_no_import_cycle_between_files():
    assert cycles(import_graph()) == []


@pytest.mark.parametrize("importer", sorted(FORBIDDEN))
def test_a_package_imports_only_the_layers_below_it(importer):
    offending = sorted(f"{name} imports {imported}" for name, imports in import_graph().items()
                       if name == importer or name.startswith(importer + ".")
                       for imported in imports if any(imported == banned or imported.startswith(banned + ".")
                                                     for banned in FORBIDDEN[importer]))
    assert offending == []
