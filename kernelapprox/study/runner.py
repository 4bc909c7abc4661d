"""Run a study: every cell, every replication, appended to disk as each cell finishes.

``results.csv`` holds one tidy row per (data, kernel, map, sampler, weights, dim,
n_features, replication, metric), each with its own checksum (see
:mod:`kernelapprox.study.store`). A cell's rows are written in one append followed by
``fsync``, so an interrupted study loses at most the cell in progress. ``resume=True``
continues the same study (every option that changes a row must be equal) and runs only
the replications whose rows are missing; ``extend=True`` grows it along the sweep axes or in
replications and appends only the new rows. Neither ever rewrites a row.

Every cell runs with one numerical thread (BLAS and torch), so its values are the same bits
serially, on a local Dask cluster or on a remote one, whatever the machine's thread count.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import CancelledError
from pathlib import Path
from typing import Any

import numpy as np
import torch
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from kernelapprox.errors import EnvironmentFailure
from kernelapprox.estimators.predictions import predicted_relative_rmse
from kernelapprox.features import make
from kernelapprox.kernels import Kernel, make_kernel, median_pairwise_distance
from kernelapprox.study.data import learning_split, load_data, load_targets
from kernelapprox.study.records import Dataset, StudyRun
from kernelapprox.study.spec import LAPLACIAN_MEDIAN, Cell, StudySpec
from kernelapprox.study.store import COLUMNS, ResultStore, check_out, open_store

__all__ = ["COLUMNS", "Dataset", "StudyRun", "run_cell", "run_study", "single_threaded"]

_PIN_GUARD = threading.Lock()
_pin_depth = 0
_pin_saved: tuple[int, Any] | None = None


@contextlib.contextmanager
def single_threaded() -> Iterator[None]:
    """Run the block with one BLAS/OpenMP thread and one torch intra-op thread.

    A matrix product split over threads may sum in another order, so its last bits depend on
    the thread count; with one thread a cell gives the same bits on every machine and in
    every Dask worker. Re-entrant and thread-safe (the limits are process-wide: the first
    entry sets them, the last exit restores them).
    """
    global _pin_depth, _pin_saved
    with _PIN_GUARD:
        if _pin_depth == 0:
            torch_threads = torch.get_num_threads()
            _pin_saved = (torch_threads, threadpool_limits(limits=1))
            torch.set_num_threads(1)
        _pin_depth += 1
    try:
        yield
    finally:
        with _PIN_GUARD:
            _pin_depth -= 1
            if _pin_depth == 0 and _pin_saved is not None:
                torch.set_num_threads(_pin_saved[0])
                _pin_saved[1].restore_original_limits()
                _pin_saved = None


def _resolve_kernel(name: str, X: np.ndarray, spec: StudySpec) -> Kernel:
    length_scale = spec.length_scale
    if length_scale == "median":  # in the kernel's own distance
        metric = LAPLACIAN_MEDIAN if name == "laplacian" else "euclidean"
        length_scale = median_pairwise_distance(X, metric=metric)
    scale = spec.kernel_scale
    if scale == "inv_sqrt_dim":
        scale = 1.0 / np.sqrt(X.shape[1])
    return make_kernel(name, length_scale=float(length_scale), scale=float(scale))


def run_cell(
    cell: Cell, dataset: Dataset, spec: StudySpec, replications: Sequence[int] | None = None
) -> list[dict[str, Any]]:
    """Replications of one cell (all by default): one row per replication and metric.

    Each replication's seed depends only on the study seed, the cell and the replication
    number, so any subset gives the same rows as the full run.
    """
    kernel = dataset.kernels[cell.kernel]
    K = dataset.exact[cell.kernel]
    rows = []
    with single_threaded():
        for r in range(spec.replications) if replications is None else replications:
            fitted = cell.weights == "fitted"
            fmap = make(
                cell.map, kernel, cell.n_features, dim=cell.dim, sampler=cell.sampler,
                weights="uniform" if fitted else cell.weights, seed=cell.seed(spec.seed, r),
            )  # fmt: skip
            if fitted:  # fit on a training sample, score on the study's (held-out) data
                fmap.fit_weights(dataset.X_train, seed=cell.seed(spec.seed, r))
            K_hat = fmap.gram(dataset.X)
            for metric in spec.metrics:
                value = dataset.metric(K_hat, K, metric, spec.ridge)
                rows.append({**vars(cell), "replication": r, "metric": metric, "value": value})
    return rows


def _load_datasets(cells: list[Cell], spec: StudySpec) -> dict[tuple[str, int], Dataset]:
    """Every (data, dim) pair's rows and exact kernel matrices; refuse non-finite ones."""
    datasets: dict[tuple[str, int], Dataset] = {}
    for cell in cells:
        key = (cell.data, cell.dim)
        if key not in datasets:
            fitted = "fitted" in spec.weights
            X = load_data(
                cell.data, n_points=spec.n_points, dim=cell.dim, seed=spec.seed, fitted=fitted
            )
            X_train = None
            if fitted:
                X_train = load_data(
                    cell.data, n_points=spec.n_points, dim=cell.dim, seed=spec.seed,
                    split="train", fitted=True,
                )  # fmt: skip
            datasets[key] = Dataset(cell.data, X, X_train)
            if spec.learning_metrics():
                y = load_targets(cell.data, target=spec.target, n_points=spec.n_points,
                                 seed=spec.seed, fitted=fitted)  # fmt: skip
                datasets[key].y = y
                datasets[key].split = learning_split(X.shape[0], spec.seed)
        ds = datasets[key]
        if cell.kernel not in ds.kernels:
            ds.kernels[cell.kernel] = kernel = _resolve_kernel(cell.kernel, ds.X, spec)
            with np.errstate(over="ignore", invalid="ignore"):
                ds.exact[cell.kernel] = K = kernel(ds.X)
            if not np.all(np.isfinite(K)):
                raise ValueError(
                    f"the exact {cell.kernel} kernel matrix of data {cell.data!r} (d={cell.dim}) "
                    f"overflows ({kernel!r} gives non-finite values): rescale the data (--data), "
                    "or choose a smaller --scale or a larger --length-scale"
                )
            if ds.split is not None:
                ds.exact_learning[cell.kernel] = {
                    m: ds.metric(K, K, m, spec.ridge) for m in spec.learning_metrics()
                }
    return datasets


def run_study(
    spec: StudySpec,
    out: str | Path | None = None,
    *,
    resume: bool = False,
    extend: bool = False,
    progress: bool = True,
    scheduler: Any = None,
    outputs: bool = False,
) -> StudyRun:
    """Run every runnable cell of ``spec``; with ``out``, stream results to ``out/results.csv``.

    Parameters
    ----------
    spec : StudySpec
        The study.
    out : str or Path, optional
        Folder of the result store (:mod:`kernelapprox.study.store`). Everything is
        validated (spec, data, kernels, scheduler) before anything is created in it.
    resume : bool
        Continue the study already in ``out``; refused, naming the options, unless every
        option that changes a row is equal.
    extend : bool
        Grow the study in ``out``: the sweep axes may gain values and ``replications`` may
        grow; only the missing rows are computed and appended, and ``spec.json`` is updated.
    progress : bool
        Show a progress bar.
    scheduler : str or dask.distributed.Client, optional
        Run the cells on a Dask cluster; see :mod:`kernelapprox.study.distributed`.
    outputs : bool
        Also write ``summary.json`` and ``convergence.png`` to ``out`` while its lock is held.

    Raises
    ------
    ValueError
        Bad spec or data, or ``out`` holds something that is not this study.
    kernelapprox.errors.EnvironmentFailure
        A write failed, the folder is locked by another run, or the scheduler was lost;
        the message says what was kept.
    """
    spec.validate()
    folder = check_out(out) if out is not None else None
    cells, skipped = spec.cells()
    with single_threaded():
        datasets = _load_datasets(cells, spec)
        identity = spec.identity() if folder is not None else {}
        client = None
        if scheduler is not None:
            from kernelapprox.study.distributed import close_client, connect

            client, owned = connect(scheduler)
        try:
            if folder is None:
                run = _run(spec, None, cells, skipped, datasets, client, progress)
            else:
                with open_store(folder, spec, identity, resume=resume, extend=extend) as store:
                    run = _run(spec, store, cells, skipped, datasets, client, progress)
                    if outputs:
                        from kernelapprox.study.report import write_outputs

                        run.summary = write_outputs(run, folder)
        finally:
            if client is not None:
                close_client(client, owned)
    return run


def _run(
    spec: StudySpec,
    store: ResultStore | None,
    cells: list[Cell],
    skipped: dict[str, str],
    datasets: dict[tuple[str, int], Dataset],
    client: Any,
    progress: bool,
) -> StudyRun:
    everything = list(range(spec.replications))
    work = [(c, store.missing(c) if store is not None else everything) for c in cells]
    work = [(c, reps) for c, reps in work if reps]
    if client is None:
        finished: Any = (
            (c, run_cell(c, datasets[(c.data, c.dim)], spec, reps)) for c, reps in work
        )
    else:
        from kernelapprox.study.distributed import run_cells_on_dask

        finished = run_cells_on_dask(client, work, datasets, spec, run_cell)
    rows: list[dict[str, Any]] = []
    bar = tqdm(finished, total=len(work), desc="study", unit="cell",
               disable=None if progress else True, leave=False)  # fmt: skip
    done = 0
    try:
        for cell, cell_rows in bar:
            bar.set_postfix_str(f"{cell.map}/{cell.sampler} m={cell.n_features}", refresh=False)
            if store is not None:
                store.append(cell_rows)
            else:
                rows.extend(cell_rows)
            done += 1
    except (OSError, CancelledError) as exc:
        if client is None:
            raise
        cells_done = f"{done} cell{'s' if done != 1 else ''}"
        kept = f"the {cells_done} finished in this run are kept" if store else "nothing is kept"
        raise EnvironmentFailure(
            f"lost the Dask cluster ({type(exc).__name__}: {exc}); {kept}; rerun with --resume "
            "(with another --scheduler, or none to run locally)"
        ) from None
    finally:
        bar.close()
    if store is not None:
        rows = store.sorted_rows(cells)
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
        spec, rows, list(datasets.values()), skipped, len(work), len(cells) - len(work),
        predictions,
    )  # fmt: skip
