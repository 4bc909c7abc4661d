"""One spec gives the same bits whatever the numerical thread counts (BLAS and torch)."""

import warnings

import pytest
import torch
from threadpoolctl import threadpool_info, threadpool_limits

from kernelapprox.sampling import QMCBalanceWarning
from kernelapprox.study import StudySpec, run_study
from kernelapprox.study.runner import single_threaded

SPEC = dict(maps=["sincos", "positive"], samplers=["mc", "sobol"], features=[8, 16, 32, 64],
            replications=2, n_points=200, metrics=["rel_fro", "rel_spectral"])  # fmt: skip


def values_with_threads(n):
    saved = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        with threadpool_limits(limits=n), warnings.catch_warnings():
            warnings.simplefilter("ignore", QMCBalanceWarning)
            return [r["value"] for r in run_study(StudySpec(**SPEC), progress=False).rows]
    finally:
        torch.set_num_threads(saved)


def test_values_are_bit_identical_with_one_or_four_threads():
    # without pinning, 200 points and m up to 64 change about a tenth of the values in the
    # last bit between 1 and 2+ threads (matrix products sum in another order)
    assert values_with_threads(1) == values_with_threads(4)


def test_a_cell_pins_its_own_threads():
    """``run_cell`` is what a Dask worker runs, outside ``run_study``'s own pinning."""
    from kernelapprox.study.runner import _load_datasets, run_cell

    spec = StudySpec(**SPEC)
    cell = spec.cells()[0][-1]
    dataset = _load_datasets([cell], spec)[(cell.data, cell.dim)]
    values = []
    for n in (1, 4):
        torch.set_num_threads(n)
        with threadpool_limits(limits=n), warnings.catch_warnings():
            warnings.simplefilter("ignore", QMCBalanceWarning)
            values.append([r["value"] for r in run_cell(cell, dataset, spec)])
    assert values[0] == values[1]


def test_single_threaded_pins_and_restores():
    torch_before = torch.get_num_threads()
    blas_before = [p["num_threads"] for p in threadpool_info()]
    with single_threaded():
        with single_threaded():  # re-entrant
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 1
        assert all(p["num_threads"] == 1 for p in threadpool_info())
    assert torch.get_num_threads() == torch_before
    assert [p["num_threads"] for p in threadpool_info()] == blas_before


@pytest.fixture(autouse=True)
def _restore_threads():
    saved = torch.get_num_threads()
    yield
    torch.set_num_threads(saved)
