"""The teaching notebooks: committed without outputs, well formed, and executed end to end.

Every notebook in ``notebooks/`` is run top to bottom in a fresh ``python3`` Jupyter kernel
(nbclient); any exception in any cell, solutions included, fails the test. The kernel runs
with the repository root on ``PYTHONPATH`` (so the notebooks import this checkout) and with
one BLAS/OpenMP thread unless the caller set otherwise: on a small shared machine threaded
BLAS oversubscribes the cores and makes small matrix products orders of magnitude slower.
"""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
IDS = [p.stem for p in NOTEBOOKS]
#: Per-cell limit; a whole notebook is meant to run in well under 60 s on 2 cores.
CELL_TIMEOUT_S = 300


def test_notebooks_exist() -> None:
    assert len(NOTEBOOKS) >= 4, f"expected the teaching notebooks in {NOTEBOOK_DIR}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_is_valid_and_stripped(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        assert cell.outputs == [], f"{path.name} cell {index} has outputs: strip them"
        assert cell.execution_count is None, f"{path.name} cell {index} has an execution count"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_structure(path: Path) -> None:
    """An introduction first, and exercises whose solutions are collapsed and runnable."""
    nb = nbformat.read(path, as_version=4)
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
    markdown = [c.source for c in nb.cells if c.cell_type == "markdown"]
    exercises = [s for s in markdown if s.startswith("**Exercise")]
    solutions = [s for s in markdown if s.startswith("<details>") and "<summary>Solution" in s]
    solution_cells = [
        c for c in nb.cells if c.cell_type == "code" and "solution" in c.metadata.get("tags", [])
    ]
    assert len(exercises) >= 2, f"{path.name}: at least two exercises"
    assert len(solutions) == len(exercises) == len(solution_cells)
    for cell in solution_cells:  # the collapsed markdown shows the same code that is executed
        assert any(cell.source in s for s in solutions)
        assert cell.metadata.get("jupyter", {}).get("source_hidden") is True


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_executes(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    python_path = os.environ.get("PYTHONPATH")
    monkeypatch.setenv(
        "PYTHONPATH", str(ROOT) if not python_path else os.pathsep.join([str(ROOT), python_path])
    )
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.setenv(var, os.environ.get(var, "1"))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=CELL_TIMEOUT_S,
        kernel_name="python3",
        allow_errors=False,
        resources={"metadata": {"path": str(NOTEBOOK_DIR)}},
    )
    client.execute()  # raises CellExecutionError on the first failing cell
    errors = [
        out
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.outputs
        if out.output_type == "error"
    ]
    assert not errors
    figures = sum(
        "image/png" in out.get("data", {})
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.outputs
    )
    assert figures >= 3, f"{path.name} should draw its plots (found {figures})"
