"""Execute the teaching notebooks into ``docs/notebooks/`` so the site shows their outputs.

``notebooks/*.ipynb`` are committed without outputs. This script runs each of them in a fresh
``python3`` kernel (nbclient), from the ``notebooks/`` folder, and writes the executed copy to
``docs/notebooks/`` (ignored by git), where mkdocs-jupyter renders it. With ``--no-execute``
it copies them unexecuted (a fast build without plots). A failing cell is an error.

Usage: ``python docs/execute_notebooks.py [--no-execute]``
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "notebooks"
TARGET = ROOT / "docs" / "notebooks"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-execute", action="store_true", help="copy without executing")
    args = parser.parse_args(argv)
    # the kernels import this checkout and use one BLAS thread (see tests/test_notebooks.py)
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p
    )
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    TARGET.mkdir(parents=True, exist_ok=True)
    for stale in TARGET.glob("*.ipynb"):
        stale.unlink()
    notebooks = sorted(SOURCE.glob("*.ipynb"))
    if not notebooks:
        print(f"no notebooks in {SOURCE}", file=sys.stderr)
        return 1
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        start = time.perf_counter()
        if not args.no_execute:
            NotebookClient(
                nb,
                timeout=300,
                kernel_name="python3",
                allow_errors=False,
                resources={"metadata": {"path": str(SOURCE)}},
            ).execute()
        nbformat.write(nb, TARGET / path.name)
        took = time.perf_counter() - start
        print(f"{'executed' if not args.no_execute else 'copied'} {path.name} ({took:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
