"""The package's structure: dependencies point one way (no import cycle, counting the imports
inside functions too), no module imports another module's private name, and no module is over
500 lines."""

import ast
import functools
from pathlib import Path


SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "modint"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted((SRC / PACKAGE).rglob("*.py"))}


def _type_checking_only(tree: ast.AST) -> set[ast.AST]:
    """The nodes inside ``if TYPE_CHECKING:`` blocks (imports for annotations only)."""
    return {node for block in ast.walk(tree)
            if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
            for stmt in block.body for node in ast.walk(stmt)}


def imports(name: str, path: Path, known: set[str]) -> list[tuple[str, str | None, int]]:
    """(imported module, imported name or None, line) for every import of a package module in
    ``path``, at module level or inside functions (not under ``if TYPE_CHECKING``)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    skipped = _type_checking_only(tree)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if node in skipped:
            continue
        if isinstance(node, ast.Import):
            out += [(alias.name, None, node.lineno) for alias in node.names if alias.name in known]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            if base not in known:
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                out.append((sub, None, node.lineno) if sub in known else (base, alias.name, node.lineno))
    return out


@functools.cache
def import_graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {name: {target for target, _, _ in imports(name, path, known) if target != name}
            for name, path in mods.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_graph_sees_module_level_and_local_imports():
    graph = import_graph()
    assert "modint.data.sample" in graph["modint.data.registry"]
    assert "modint.models.loading" in graph["modint.cli.diagnosis"]  # imported inside a command
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle():
    found = cycles(import_graph())
    assert not found, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_command_modules_import_the_shared_helpers_not_the_app():
    """The commands' modules take their helpers from modint.cli.common; only the app imports them."""
    graph = import_graph()
    commands = [m for m in graph if m.startswith("modint.cli.") and m != "modint.cli.__main__"]
    assert {"modint.cli.diagnosis", "modint.cli.interop", "modint.cli.common"} <= set(commands)
    assert not [m for m in commands if "modint.cli" in graph[m]]
    assert "modint.cli.common" in graph["modint.cli.interop"]


def test_the_diagnosis_engine_does_not_import_the_reports():
    assert not {m for m in import_graph()["modint.diagnose.engine"] if m.startswith("modint.report")}


def private_imports() -> list[tuple[str, str, str, str]]:
    """(importing module, imported module, private name, where) across modules."""
    mods = modules()
    known = set(mods)
    return [(source, target, name, f"{path.relative_to(SRC)}:{line}")
            for source, path in mods.items() for target, name, line in imports(source, path, known)
            if name and name.startswith("_") and not name.startswith("__") and target != source]


def test_no_module_imports_another_modules_private_name():
    found = [f"{where}: from {target} import {name}" for _, target, name, where in private_imports()]
    assert not found, "private names imported across modules:\n" + "\n".join(found)


def test_relative_local_and_private_imports_are_seen(tmp_path):
    path = tmp_path / "y.py"
    path.write_text("from typing import TYPE_CHECKING\nfrom . import z\nfrom .z import _hidden, shown\n\n\n"
                    "def f():\n    from modint.a import _b\n\n\nif TYPE_CHECKING:\n    import modint.c\n")
    known = {"modint.x", "modint.x.z", "modint.a", "modint.c"}
    assert sorted(imports("modint.x.y", path, known), key=str) == [
        ("modint.a", "_b", 7), ("modint.x.z", "_hidden", 3), ("modint.x.z", "shown", 3), ("modint.x.z", None, 2)]


MAX_LINES = 500


def long_modules() -> dict[str, int]:
    return {name: n for name, path in modules().items() if (n := len(path.read_text().splitlines())) > MAX_LINES}


def test_no_module_is_over_500_lines():
    found = long_modules()
    assert not found, f"modules over {MAX_LINES} lines (split them by responsibility): {found}"
