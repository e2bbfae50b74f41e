"""The house rules of docs/development.md, checked on the source: no import circle between
vlm-bench's modules (every import counts, also those inside functions and under
TYPE_CHECKING), and no module or class past the size one person holds in mind."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "vlm_bench"
MAX_MODULE_LINES = 450
MAX_CLASS_LINES = 250


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, modules: set[str], here: str | None = None) -> set[str]:
    """The vlm_bench modules ``path`` (module ``here``) imports: ``from a.b import c``
    counts as a.b.c when that is a module, else as a.b."""
    here = here or module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        found |= {n for n in names if n in modules and n != here}
    return found


def graph() -> dict[str, set[str]]:
    paths = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: imports_of(path, set(paths)) for name, path in paths.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Each strongly connected group of two or more modules (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                group.append(top)
                if top == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return groups


def test_the_checker_finds_a_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_checker_reads_every_kind_of_import(tmp_path):
    source = tmp_path / "m.py"
    source.write_text(
        "from typing import TYPE_CHECKING\nimport vlm_bench.types\nif TYPE_CHECKING:\n    from vlm_bench.config import X\n"
        "def f():\n    from vlm_bench.results import writer\n"
    )
    modules = {"vlm_bench.types", "vlm_bench.config", "vlm_bench.results", "vlm_bench.results.writer"}
    assert imports_of(source, modules, "vlm_bench.m") == {"vlm_bench.types", "vlm_bench.config", "vlm_bench.results.writer"}


def test_no_module_imports_one_that_imports_it_back():
    found = cycles(graph())
    assert not found, "import circles: " + "; ".join(" <-> ".join(group) for group in found)


def test_no_module_or_class_is_too_big():
    too_big = []
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        lines = text.count("\n")
        if lines > MAX_MODULE_LINES:
            too_big.append(f"{module_name(path)}: {lines} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ClassDef) and node.end_lineno - node.lineno + 1 > MAX_CLASS_LINES:
                too_big.append(f"class {module_name(path)}.{node.name}: {node.end_lineno - node.lineno + 1} lines")
    assert not too_big, "past the house's size (module 450 lines, class 250): " + "; ".join(too_big)


def test_the_layout_in_the_docs_names_every_room():
    """docs/development.md's layout names each top-level module and package of vlm_bench."""
    docs = (PACKAGE.parent / "docs" / "development.md").read_text(encoding="utf-8")
    layout = docs[docs.index("vlm_bench/        the library"):docs.index("tests/            unit tests")]
    rooms = sorted(p.name for p in PACKAGE.iterdir() if (p.suffix == ".py" and p.name != "__init__.py")
                   or (p.is_dir() and (p / "__init__.py").exists()))
    missing = [r for r in rooms if (r if r.endswith(".py") else r + "/") not in layout]
    assert not missing, f"docs/development.md's layout lacks: {', '.join(missing)}"
