"""Run a study's cells on a Dask distributed cluster.

The client process keeps the only result store: workers compute cells (one task per cell,
all replications of the cell inside it) and send rows back, and the client appends each
cell's rows as it completes, exactly as a local run does. So results stream to the same
``results.csv``, an interrupted run keeps every finished cell, and ``--resume`` works from any
client, with or without a cluster. The rows of a cell do not depend on where or in which
order it ran (each replication's seed is a function of the cell and the study seed), so a
distributed run gives the same values as a local one: each cell runs with one numerical
thread (:func:`kernelapprox.study.runner.single_threaded`), so not even the last bit depends
on the workers' thread counts.

Results are sent back from the workers as pickles, and unpickling can run code: connect only
to a cluster you trust. ``"local"`` starts a cluster that listens on 127.0.0.1 only, with no
dashboard.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from kernelapprox.errors import EnvironmentFailure
from kernelapprox.study.spec import Cell, StudySpec


def connect(scheduler: Any) -> tuple[Any, bool]:
    """A ``dask.distributed.Client`` for ``scheduler`` and whether we own (must close) it.

    ``scheduler`` is a scheduler address (``"tcp://host:8786"``), ``"local"`` (a
    ``LocalCluster`` on this machine, listening on 127.0.0.1 only and without the
    dashboard), or an existing ``Client``. Results come back from the cluster as pickles,
    which can run code on unpickling: use only a cluster you trust.
    """
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise EnvironmentFailure(
            "--scheduler needs dask.distributed, which is not installed; nothing was written; "
            "pip install 'kernelapprox[distributed]' and rerun, or run without --scheduler"
        ) from None
    if isinstance(scheduler, Client):
        return scheduler, False
    if scheduler == "local":
        cluster = LocalCluster(threads_per_worker=1, host="127.0.0.1", dashboard_address=None)
        return Client(cluster), True
    if not isinstance(scheduler, str) or not scheduler:
        raise ValueError(
            f"scheduler must be an address like tcp://host:8786 or 'local', got {scheduler!r}"
        )
    try:
        return Client(scheduler, timeout="10s"), True
    except OSError as exc:
        raise ValueError(f"scheduler {scheduler!r} cannot be reached: {exc}") from None


def close_client(client: Any, owned: bool) -> None:
    """Close a client from :func:`connect` (and its local cluster) if we own it."""
    if not owned:
        return
    cluster = getattr(client, "cluster", None)
    client.close()
    if cluster is not None:
        cluster.close()


def run_cells_on_dask(
    client: Any,
    work: Iterable[tuple[Cell, list[int]]],
    datasets: dict[tuple[str, int], Any],
    spec: StudySpec,
    run_cell: Callable[..., list[dict[str, Any]]],
) -> Iterator[tuple[Cell, list[dict[str, Any]]]]:
    """Yield ``(cell, rows)`` as the cluster finishes cells, in completion order.

    ``work`` pairs each cell with the replications to compute; ``run_cell`` is the runner's
    :func:`~kernelapprox.study.runner.run_cell` (passed in, so this module does not import
    the runner that imports it).
    """
    from dask.distributed import as_completed

    shared = {key: client.scatter(ds, broadcast=True) for key, ds in datasets.items()}
    futures = {
        client.submit(run_cell, cell, shared[(cell.data, cell.dim)], spec, reps, pure=False): cell
        for cell, reps in work
    }
    try:
        for future in as_completed(futures):
            yield futures[future], future.result()
    finally:  # stopped early (a failed append): leave no work running on the cluster
        with contextlib.suppress(Exception):
            client.cancel(list(futures))
