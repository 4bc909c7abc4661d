"""Run a study: every cell, every replication, appended to disk as each cell finishes.

``results.csv`` holds one tidy row per (data, kernel, map, sampler, weights, dim,
n_features, replication, metric). A cell's rows are written in one append followed by
``fsync``, so an interrupted study loses at most the cell in progress; ``resume=True``
keeps the complete cells on disk, drops any partial one, and runs only what is missing,
so nothing is lost and nothing is duplicated.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from kernelapprox.estimators.gram import gram_error
from kernelapprox.estimators.predictions import predicted_relative_rmse
from kernelapprox.features import make
from kernelapprox.kernels import Kernel, make_kernel, median_pairwise_distance
from kernelapprox.study.data import load_data
from kernelapprox.study.spec import Cell, StudySpec

COLUMNS = (
    "data", "kernel", "map", "sampler", "weights", "dim",
    "n_features", "replication", "metric", "value",
)  # fmt: skip


@dataclass
class Dataset:
    """The data of one (data, dim) pair and the kernels resolved on it."""

    name: str
    X: np.ndarray
    X_train: np.ndarray | None = None
    kernels: dict[str, Kernel] = field(default_factory=dict)
    exact: dict[str, np.ndarray] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        return {
            "data": self.name,
            "n_points": int(self.X.shape[0]),
            "dim": int(self.X.shape[1]),
            "kernels": {name: repr(k) for name, k in self.kernels.items()},
        }


def _resolve_kernel(name: str, X: np.ndarray, spec: StudySpec) -> Kernel:
    length_scale = spec.length_scale
    if length_scale == "median":
        length_scale = median_pairwise_distance(X)
    scale = spec.kernel_scale
    if scale == "inv_sqrt_dim":
        scale = 1.0 / np.sqrt(X.shape[1])
    return make_kernel(name, length_scale=float(length_scale), scale=float(scale))


class ResultStore:
    """``results.csv`` and ``spec.json`` in an output folder, append-only between resumes."""

    def __init__(self, out: Path, spec: StudySpec, *, resume: bool) -> None:
        self.out = Path(out)
        self.csv = self.out / "results.csv"
        self.spec_file = self.out / "spec.json"
        self.out.mkdir(parents=True, exist_ok=True)
        self.rows: list[dict[str, Any]] = []
        if self.csv.exists() and not resume:
            raise ValueError(
                f"out={str(self.out)!r} already holds results.csv; pass --resume to continue that "
                "study or choose another --out"
            )
        if resume and self.spec_file.exists():
            stored = json.loads(self.spec_file.read_text())
            mine = spec.fingerprint()
            differing = [k for k in mine if stored.get(k) != mine[k]]
            if differing:
                raise ValueError(
                    f"cannot resume: the study in {str(self.out)!r} differs in "
                    f"{', '.join(differing)}; use the same options or another --out"
                )
        self.spec_file.write_text(json.dumps({**json.loads(spec.to_json()), **spec.fingerprint()}))
        if resume and self.csv.exists():
            self._load_complete(spec)
        self._rewrite()

    def _load_complete(self, spec: StudySpec) -> None:
        expected = spec.replications * len(spec.metrics)
        by_cell: dict[str, list[dict[str, Any]]] = {}
        with self.csv.open(newline="") as fh:
            for row in csv.DictReader(fh):
                try:
                    parsed = _parse_row(row)
                except (KeyError, TypeError, ValueError):
                    continue  # a line cut short by an interruption
                by_cell.setdefault(_row_cell(parsed).key, []).append(parsed)
        for rows in by_cell.values():
            pairs = {(r["replication"], r["metric"]) for r in rows}
            wanted = {(i, m) for i in range(spec.replications) for m in spec.metrics}
            if len(rows) == expected and pairs == wanted:
                self.rows.extend(rows)

    def _rewrite(self) -> None:
        tmp = self.csv.with_suffix(".csv.tmp")
        with tmp.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=COLUMNS)
            writer.writeheader()
            writer.writerows(self.rows)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.csv)

    def done(self) -> set[str]:
        return {_row_cell(r).key for r in self.rows}

    def append(self, rows: list[dict[str, Any]]) -> None:
        with self.csv.open("a", newline="") as fh:
            csv.DictWriter(fh, fieldnames=COLUMNS).writerows(rows)
            fh.flush()
            os.fsync(fh.fileno())
        self.rows.extend(rows)


def _parse_row(row: dict[str, str]) -> dict[str, Any]:
    parsed: dict[str, Any] = {k: row[k] for k in COLUMNS}
    for k in ("dim", "n_features", "replication"):
        parsed[k] = int(row[k])
    parsed["value"] = float(row["value"])
    return parsed


def _row_cell(row: dict[str, Any]) -> Cell:
    return Cell(
        row["data"], row["kernel"], row["map"], row["sampler"], row["weights"],
        int(row["dim"]), int(row["n_features"]),
    )  # fmt: skip


def run_cell(cell: Cell, dataset: Dataset, spec: StudySpec) -> list[dict[str, Any]]:
    """All replications of one cell: one row per replication and metric."""
    kernel = dataset.kernels[cell.kernel]
    K = dataset.exact[cell.kernel]
    rows = []
    for r in range(spec.replications):
        fitted = cell.weights == "fitted"
        fmap = make(
            cell.map, kernel, cell.n_features, dim=cell.dim, sampler=cell.sampler,
            weights="uniform" if fitted else cell.weights, seed=cell.seed(spec.seed, r),
        )  # fmt: skip
        if fitted:  # fit on a training sample, score on the study's (held-out) data
            fmap.fit_weights(dataset.X_train, seed=cell.seed(spec.seed, r))
        K_hat = fmap.gram(dataset.X)
        for metric in spec.metrics:
            value = gram_error(K_hat, K, metric)
            rows.append({**vars(cell), "replication": r, "metric": metric, "value": value})
    return rows


@dataclass
class StudyRun:
    """What a finished (or resumed) run holds: all rows, the datasets and skipped cells."""

    spec: StudySpec
    rows: list[dict[str, Any]]
    datasets: list[Dataset]
    skipped: dict[str, str]
    cells_run: int
    cells_resumed: int
    #: analytic RMS prediction of ``rel_fro`` per cell key, where a closed form exists
    predictions: dict[str, float] = field(default_factory=dict)


def run_study(
    spec: StudySpec,
    out: str | Path | None = None,
    *,
    resume: bool = False,
    progress: bool = True,
    scheduler: Any = None,
) -> StudyRun:
    """Run every runnable cell of ``spec``; with ``out``, stream results to ``out/results.csv``.

    ``scheduler`` (a Dask scheduler address, ``"local"`` or a ``dask.distributed.Client``)
    runs the cells on a cluster; see :mod:`kernelapprox.study.distributed`.
    """
    spec.validate()
    cells, skipped = spec.cells()
    store = ResultStore(Path(out), spec, resume=resume) if out is not None else None
    done = store.done() if store else set()
    datasets: dict[tuple[str, int], Dataset] = {}
    for cell in cells:
        key = (cell.data, cell.dim)
        if key not in datasets:
            X = load_data(cell.data, n_points=spec.n_points, dim=cell.dim, seed=spec.seed)
            X_train = None
            if "fitted" in spec.weights:
                X_train = load_data(
                    cell.data, n_points=spec.n_points, dim=cell.dim, seed=spec.seed, split="train"
                )
            datasets[key] = Dataset(cell.data, X, X_train)
        ds = datasets[key]
        if cell.kernel not in ds.kernels:
            ds.kernels[cell.kernel] = _resolve_kernel(cell.kernel, ds.X, spec)
            ds.exact[cell.kernel] = ds.kernels[cell.kernel](ds.X)
    rows: list[dict[str, Any]] = [] if store is None else list(store.rows)
    todo = [c for c in cells if c.key not in done]
    if scheduler is None:
        finished = ((c, run_cell(c, datasets[(c.data, c.dim)], spec)) for c in todo)
    else:
        from kernelapprox.study.distributed import run_cells_on_dask

        finished = run_cells_on_dask(todo, datasets, spec, scheduler)
    bar = tqdm(finished, total=len(todo), desc="study", unit="cell",
               disable=None if progress else True, leave=False)  # fmt: skip
    for cell, cell_rows in bar:
        bar.set_postfix_str(f"{cell.map}/{cell.sampler} m={cell.n_features}", refresh=False)
        if store is not None:
            store.append(cell_rows)
        else:
            rows.extend(cell_rows)
    if store is not None:
        rows = store.rows
    predictions = {}
    if "rel_fro" in spec.metrics:
        for cell in cells:
            if cell.weights != "uniform":
                continue
            ds = datasets[(cell.data, cell.dim)]
            pred = predicted_relative_rmse(
                cell.map, ds.kernels[cell.kernel], cell.sampler, ds.X, cell.n_features
            )
            if pred is not None:
                predictions[cell.key] = pred
    return StudyRun(
        spec, rows, list(datasets.values()), skipped, len(todo), len(cells) - len(todo),
        predictions,
    )  # fmt: skip
