"""The package's layout rule: each folder is one job, and imports run one way.

The rooms of ``kernelapprox`` are ranked along the pipeline (docs/guide/architecture.md):
a module may import its own room, the base modules and rooms of a *lower* rank, never a room
of the same or a higher rank. Imports inside functions count as much as top-level ones (a
lazy import is still a dependency), and no two modules may import each other, directly or
through others. The package's ``__init__`` (lazy re-exports) is exempt.
"""

from __future__ import annotations

import ast
from pathlib import Path

import kernelapprox

PACKAGE = Path(kernelapprox.__file__).parent

#: Rank of each room (top-level module or subpackage of kernelapprox).
RANKS: dict[str, int] = {
    "_validation": 0, "errors": 0, "_io": 0, "_triton": 0, "_style": 0,
    "kernels": 1, "discrepancy": 1, "lm": 1,
    "sampling": 2,
    "features": 3,
    "estimators": 4,
    "attention": 5, "dynamics": 5, "compression": 5, "testing": 5,
    "integrations": 6, "bench": 6,
    "study": 7,
    "cli": 8,
    "__main__": 9,
}  # fmt: skip
BASE = 0


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The kernelapprox modules that ``name`` imports anywhere in its source."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join([*base, node.module] if node.module else base)
            else:
                source = node.module or ""
            # "from pkg import sub" depends on pkg.sub when that is a module, else on pkg
            subs = [f"{source}.{alias.name}" for alias in node.names]
            targets = [s for s in subs if s in modules] or [source]
        else:
            continue
        for target in targets:
            while target and target not in modules:  # "import a.b.c" names a module a.b
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def _room(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None  # None: the package __init__


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def test_every_room_has_a_rank() -> None:
    rooms = {_room(m) for m in _modules()} - {None}
    assert rooms <= set(RANKS), f"rooms without a rank: {sorted(rooms - set(RANKS))}"


def test_imports_run_one_way() -> None:
    wrong = []
    for module, targets in _graph().items():
        room = _room(module)
        if room is None:
            continue
        for target in targets:
            other = _room(target)
            if other is None or other == room:
                continue
            if RANKS[other] == BASE and RANKS[room] >= BASE:
                continue
            if RANKS[other] >= RANKS[room]:
                wrong.append(f"{module} -> {target} ({room} {RANKS[room]}, {other} {RANKS[other]})")
    assert not wrong, "imports against the layout:\n" + "\n".join(sorted(wrong))


def test_no_import_cycles() -> None:
    graph = _graph()
    # a package's __init__ re-exports its children; a child importing a sibling through the
    # package name is a real edge, but the parent -> child re-export edge is not a cycle
    edges = {m: {t for t in targets if not t.startswith(m + ".")} for m, targets in graph.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
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
                cycles.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def test_the_rule_sees_a_planted_violation(tmp_path: Path) -> None:
    """The checker itself: an upward import inside a function is found."""
    modules = {"kernelapprox.kernels": tmp_path / "k.py", "kernelapprox.study.spec": Path()}
    source = tmp_path / "k.py"
    source.write_text("def f():\n    from kernelapprox.study import spec\n")
    assert _imports("kernelapprox.kernels", source, modules) == {"kernelapprox.study.spec"}


def test_layout_counts() -> None:
    """A sanity check that the walk sees the package (guards against an empty glob)."""
    graph = _graph()
    assert len(graph) > 50
    assert any(t.startswith("kernelapprox.features") for t in graph["kernelapprox.attention.maps"])
