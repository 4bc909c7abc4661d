"""The package's layout rule: each folder is one job, and imports run one way.

The rooms of ``kernelapprox`` are ranked along the pipeline (docs/guide/architecture.md):
a module may import its own room, the base modules and rooms of a *lower* rank, never a room
of the same or a higher rank. Imports inside functions count as much as top-level ones (a
lazy import is still a dependency), and no two modules may import each other, directly or
through others. The package's ``__init__`` (lazy re-exports) is exempt.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import kernelapprox

PACKAGE = Path(kernelapprox.__file__).parent

#: Rank of each room (top-level module or subpackage of kernelapprox).
RANKS: dict[str, int] = {
    "_validation": 0, "errors": 0, "_io": 0, "_triton": 0, "_style": 0, "_timing": 0,
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


# ------------------------------------------------------------------ tests mirror the package
TESTS = Path(__file__).parent
ROOT = PACKAGE.parent
#: Folders of tests/ that are not a room of the package, with the package they test.
OTHER_TEST_FOLDERS = {"proofs": "proofs"}


def _names_its_room(source: str, room: str) -> bool:
    """Whether a test module's source names the room it sits in: ``kernelapprox.<room>``
    (also ``from kernelapprox import <room>``, or a command module ``kernelapprox.cli.<room>...``
    for a command's tests beside the work it runs), or the other package it tests."""
    if room in OTHER_TEST_FOLDERS:
        return re.search(rf"\b{OTHER_TEST_FOLDERS[room]}\b", source) is not None
    patterns = (
        rf"\bkernelapprox\.{room}\b",
        rf"\bkernelapprox\.cli\.{room}",
        rf"\bfrom kernelapprox import [^\n]*\b{room}\b",
    )
    return any(re.search(p, source) for p in patterns)


def _benchmark_scripts(source: str) -> list[str]:
    """The sources of the ``benchmarks/`` scripts a test module names (``"benchmarks" /
    "x.py"`` or ``benchmarks/x.py``)."""
    names = re.findall(r"benchmarks[\"' /]+(\w+\.py)", source)
    scripts = [ROOT / "benchmarks" / name for name in names]
    return [p.read_text(encoding="utf-8") for p in scripts if p.is_file()]


def _tests_its_room(source: str, room: str) -> bool:
    """A test module names its room, or tests a benchmark script that does."""
    scripts = _benchmark_scripts(source)
    return _names_its_room(source, room) or any(_names_its_room(s, room) for s in scripts)


def test_tests_mirror_the_package() -> None:
    """Each folder of tests/ is a room (or proofs/), and each test module in it tests that
    room: it names the room's modules (a command's tests may sit beside the work the command
    runs, e.g. tests/dynamics/ for ``kernelapprox dynamics``, and a benchmark script's tests
    beside the room the script measures; tests/cli/ holds what every command shares). A
    test of ``lm.corpus`` under tests/compression/ fails here."""
    folders = {p.name for p in TESTS.iterdir() if p.is_dir() and any(p.glob("test_*.py"))}
    assert folders <= set(RANKS) | set(OTHER_TEST_FOLDERS), sorted(folders - set(RANKS))
    wrong = [
        str(path.relative_to(TESTS))
        for folder in sorted(folders)
        for path in sorted((TESTS / folder).glob("test_*.py"))
        if not _tests_its_room(path.read_text(encoding="utf-8"), folder)
    ]
    assert not wrong, f"test modules that do not test their folder's room: {wrong}"


def test_the_mirror_rule_sees_a_misplaced_test() -> None:
    misplaced = "from kernelapprox.lm.corpus import labelled_docstrings\n"
    assert not _names_its_room(misplaced, "compression")
    assert _names_its_room(misplaced, "lm")
    assert _names_its_room("from kernelapprox import cli, dynamics\n", "dynamics")
    assert _names_its_room("from kernelapprox.cli.dynamics_est import plot_est\n", "dynamics")
    assert not _names_its_room("import kernelapprox.sampling_extra\n", "sampling")
    assert _names_its_room("import proofs.sorf_law as claim\n", "proofs")
    bench = 'ROOT / "benchmarks" / "quantization_targets.py"'
    assert _tests_its_room(bench, "compression") and not _tests_its_room(bench, "lm")


# ------------------------------------------------------------- one helper for each statistic
#: A standard error or a variance of a mean written inline: ``x.std(...) / sqrt(n)`` or
#: ``x.var(...) / n``; the one implementation is ``estimators.replications.mean_and_se``.
INLINE_SE = re.compile(r"\.(std\([^)]*\)\s*/\s*(np\.|math\.|torch\.)?sqrt|var\([^)]*\)\s*/\s*\w)")
STATISTICS_HOME = PACKAGE / "estimators" / "replications.py"


def _inline_standard_errors(source: str) -> list[str]:
    return [line.strip() for line in source.splitlines() if INLINE_SE.search(line)]


def test_standard_errors_come_from_the_one_helper() -> None:
    """The package, the claims and the benchmarks take mean +- SE from ``mean_and_se``
    (tests may still write one out as an independent oracle of the helper)."""
    found = {
        str(path.relative_to(ROOT)): lines
        for folder in (PACKAGE, ROOT / "proofs", ROOT / "benchmarks")
        for path in sorted(folder.rglob("*.py"))
        if path != STATISTICS_HOME
        and (lines := _inline_standard_errors(path.read_text(encoding="utf-8")))
    }
    assert not found, f"standard errors written inline: {found}"


def test_the_statistics_rule_sees_inline_standard_errors() -> None:
    assert _inline_standard_errors("se = draws.std(0) / math.sqrt(samples)")
    assert _inline_standard_errors("se = x.std(axis=0, ddof=1) / np.sqrt(R)")
    assert _inline_standard_errors("a = u.var(ddof=1) / u.size")
    assert not _inline_standard_errors("mean, se = mean_and_se(x, axis=0)")
    assert not _inline_standard_errors("z = (x - x.mean()) / x.std()")
