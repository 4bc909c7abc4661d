"""Run a study's cells on a Dask distributed cluster.

The client process keeps the only result store: workers compute cells (one task per cell,
all replications of the cell inside it) and send rows back, and the client appends each
cell's rows as it completes, exactly as a local run does. So results stream to the same
``results.csv``, an interrupted run keeps every finished cell, and ``--resume`` works from any
client, with or without a cluster. The rows of a cell do not depend on where or in which
order it ran (each replication's seed is a function of the cell and the study seed), so a
distributed run gives the same values as a local one.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from kernelapprox.study.spec import Cell, StudySpec


def _client(scheduler: Any) -> tuple[Any, bool]:
    """A ``dask.distributed.Client`` for ``scheduler`` and whether we own (must close) it.

    ``scheduler`` is a scheduler address (``"tcp://host:8786"``), ``"local"`` (a
    ``LocalCluster`` on this machine), or an existing ``Client``.
    """
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:  # pragma: no cover - depends on the environment
        raise ValueError(
            "scheduler needs dask.distributed: pip install 'kernelapprox[distributed]'"
        ) from None
    if isinstance(scheduler, Client):
        return scheduler, False
    if scheduler == "local":
        return Client(LocalCluster(threads_per_worker=1)), True
    if not isinstance(scheduler, str) or not scheduler:
        raise ValueError(
            f"scheduler must be an address like tcp://host:8786 or 'local', got {scheduler!r}"
        )
    try:
        return Client(scheduler, timeout="10s"), True
    except OSError as exc:
        raise ValueError(f"scheduler {scheduler!r} cannot be reached: {exc}") from None


def run_cells_on_dask(
    cells: Iterable[Cell], datasets: dict[tuple[str, int], Any], spec: StudySpec, scheduler: Any
) -> Iterator[tuple[Cell, list[dict[str, Any]]]]:
    """Yield ``(cell, rows)`` as the cluster finishes cells, in completion order."""
    from dask.distributed import as_completed

    from kernelapprox.study.runner import run_cell

    client, owned = _client(scheduler)
    try:
        shared = {key: client.scatter(ds, broadcast=True) for key, ds in datasets.items()}
        futures = {
            client.submit(run_cell, cell, shared[(cell.data, cell.dim)], spec, pure=False): cell
            for cell in cells
        }
        for future in as_completed(futures):
            yield futures[future], future.result()
    finally:
        if owned:
            cluster = getattr(client, "cluster", None)
            client.close()
            if cluster is not None:
                cluster.close()
