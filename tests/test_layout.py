"""The package's layout (issue 23): no import cycles, few top-level modules, one place that builds a
client, `_sync/` generated only, no module that only re-exports.

Read from the source with `ast` (nothing is imported), so a violation names the file and line.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "tensorlake_sandbox"
NAME = "tensorlake_sandbox"
MAX_TOP_LEVEL = 12
# The transport layer: the only modules that may construct (or define) an httpx client. The client
# class, like the transport, is written once in _async/_transport.py (its sync twin generated).
TRANSPORTS = PACKAGE / "_transports"
TRANSPORT_MODULES = {PACKAGE / "_async" / "_transport.py", PACKAGE / "_sync" / "_transport.py"}


def module_name(path: Path, package: Path = PACKAGE) -> str:
    parts = list(path.relative_to(package).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([NAME, *parts])


def modules(package: Path = PACKAGE) -> dict[str, Path]:
    return {module_name(p, package): p for p in sorted(package.rglob("*.py"))}


def _resolve(current: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = current.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def _typing_only(tree: ast.AST) -> set[int]:
    """ids of the nodes inside ``if TYPE_CHECKING:`` blocks (never run: not a runtime import)."""
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    return skipped


def imports(package: Path = PACKAGE) -> dict[str, set[str]]:
    """Module -> the package's modules it imports when run (at any depth in the file, a function's
    import included; ``if TYPE_CHECKING:`` imports left out)."""
    known = modules(package)
    graph: dict[str, set[str]] = {}
    for name, path in known.items():
        targets: set[str] = set()
        tree = ast.parse(path.read_text(), str(path))
        typing_only = _typing_only(tree)
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            found: list[str] = []
            if isinstance(node, ast.Import):
                found = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(name, path.name == "__init__.py", node)
                # `from . import _x` names a module; `from ._x import y` names _x (and y if a module).
                found = [*([base] if node.module else []), *(f"{base}.{alias.name}" for alias in node.names)]
            targets.update(t for t in found if t in known and t != name)
        graph[name] = targets
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan), each as a sorted list."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_a_planted_cycle(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "_a.py").write_text("from ._b import x\n")
    (pkg / "_b.py").write_text("def f():\n    from .sub import _c\n")
    (pkg / "sub" / "_c.py").write_text("from .. import _a\n")
    (pkg / "_d.py").write_text("from ._a import y\n")
    (pkg / "_e.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ._d import z\n")
    (pkg / "_a.py").write_text("from ._b import x\nfrom . import _e\n")
    assert cycles(imports(pkg)) == [[f"{NAME}._a", f"{NAME}._b", f"{NAME}.sub._c"]]


def test_no_import_cycles() -> None:
    assert cycles(imports()) == []


def test_few_top_level_modules() -> None:
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(top) <= MAX_TOP_LEVEL, top


def _constructs_a_client(tree: ast.AST) -> list[int]:
    """Lines that call (or subclass) httpx.Client / httpx.AsyncClient."""
    lines = []
    for node in ast.walk(tree):
        target = node.func if isinstance(node, ast.Call) else None
        bases = node.bases if isinstance(node, ast.ClassDef) else []
        for expr in [target, *bases]:
            if (
                isinstance(expr, ast.Attribute)
                and expr.attr in ("Client", "AsyncClient")
                and isinstance(expr.value, ast.Name)
                and expr.value.id == "httpx"
            ):
                lines.append(expr.lineno)
    return lines


def test_only_the_transport_layer_builds_an_httpx_client() -> None:
    outside = {
        f"{path.relative_to(PACKAGE)}:{line}"
        for path in PACKAGE.rglob("*.py")
        if TRANSPORTS not in path.parents
        and path not in TRANSPORT_MODULES
        and "local" not in path.relative_to(PACKAGE).parts
        for line in _constructs_a_client(ast.parse(path.read_text()))
    }
    assert outside == set()
    # ... and the check sees one where there is one.
    assert _constructs_a_client(ast.parse((PACKAGE / "_async" / "_transport.py").read_text()))


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_only_re_exports(path: Path) -> None:
    """A module other than a package's ``__init__`` / ``__main__`` defines something of its own."""
    if path.name in ("__init__.py", "__main__.py"):
        return
    tree = ast.parse(path.read_text())
    own = [
        node
        for node in tree.body
        if not isinstance(node, (ast.Import, ast.ImportFrom, ast.Expr))
        and not (
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets)
        )
    ]
    assert own, f"{path.relative_to(PACKAGE)} only re-exports: import from the module that defines the names"


def test_sync_holds_only_generated_modules() -> None:
    for path in (PACKAGE / "_sync").glob("*.py"):
        if path.name == "__init__.py":
            continue
        assert (PACKAGE / "_async" / path.name).exists(), path.name
        assert path.read_text().startswith("# Generated by scripts/unasync.py"), path.name
