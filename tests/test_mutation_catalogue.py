"""The mutation catalogue of ``benchmarks/mutation.py`` stays valid as the code moves.

Every mutant's snippet must occur exactly once in its file (otherwise the mutant would test
nothing), its test files must exist, and the catalogue covers every area the issue lists.
"""

from __future__ import annotations

from pathlib import Path

from tests.scripts import load_script

ROOT = Path(__file__).resolve().parents[1]


def _load():
    return load_script(ROOT / "benchmarks" / "mutation.py")


def test_every_snippet_is_found_exactly_once() -> None:
    mutation = _load()
    assert mutation.check(mutation.MUTANTS) == []
    assert len(mutation.MUTANTS) >= 40


def test_catalogue_covers_every_area() -> None:
    mutation = _load()
    paths = {m.path for m in mutation.MUTANTS}
    for area in ("sampling/", "features/", "estimators/", "discrepancy", "sampling/weights",
                 "attention/", "dynamics/", "compression/", "dynamics/est",
                 "compression/pruning/", "compression/quantization/"):  # fmt: skip
        assert any(area in p for p in paths), area


def test_check_reports_a_moved_snippet(tmp_path: Path) -> None:
    mutation = _load()
    m = mutation.MUTANTS[0]
    (tmp_path / Path(m.path).parent).mkdir(parents=True)
    (tmp_path / m.path).write_text("nothing here\n", encoding="utf-8")
    problems = mutation.check([m], root=tmp_path)
    assert any("occurs 0 times" in p for p in problems)


def test_every_mutant_reaches_a_claim() -> None:
    """``verify`` can only kill a mutant some claim runs on: every mutated module is named in
    a claim's ``verifies=`` (or the mutant names its claims), and every named claim exists."""
    import proofs

    mutation = _load()
    catalogue = proofs.catalogue()
    names = {c.name for c in catalogue}
    unreached = [m.name for m in mutation.MUTANTS if not mutation.claims_for(m, catalogue)]
    assert not unreached, f"mutants no claim runs on: {unreached}"
    unknown = {c for m in mutation.MUTANTS for c in m.claims} - names
    assert not unknown, f"mutants name claims that do not exist: {sorted(unknown)}"
