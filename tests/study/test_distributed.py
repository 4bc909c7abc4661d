"""Studies on a Dask cluster: same store, same values, resumable across clients."""

import csv

import pytest

from kernelapprox.cli import main
from kernelapprox.study import StudySpec, run_study

distributed = pytest.importorskip("dask.distributed")

SPEC = dict(maps=["sincos", "positive"], samplers=["mc", "sobol"], features=[8, 16],
            replications=2, n_points=30)  # fmt: skip


def rows(path):
    with open(path, newline="") as fh:
        return sorted(tuple(r.values()) for r in csv.DictReader(fh))


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as lc:  # fmt: skip
        yield lc


def test_cluster_run_equals_the_local_run(tmp_path, cluster):
    local = run_study(StudySpec(**SPEC), tmp_path / "local", progress=False)
    with distributed.Client(cluster) as client:
        remote = run_study(StudySpec(**SPEC), tmp_path / "dask", progress=False, scheduler=client)
    assert remote.cells_run == local.cells_run == 8
    assert rows(tmp_path / "dask" / "results.csv") == rows(tmp_path / "local" / "results.csv")


def test_cli_scheduler_address_and_resume_across_clients(tmp_path, cluster):
    base = ["study", "--no-progress", "--n-points", "30", "--features", "8,16",
            "--replications", "2", "--maps", "sincos", "--out", str(tmp_path / "s")]  # fmt: skip
    # a first client runs part of the sweep on the cluster ...
    assert main([*base, "--samplers", "mc", "--scheduler", cluster.scheduler_address]) == 0
    # ... a second one extends it locally, and a third on the cluster again finds nothing to do
    assert main([*base, "--samplers", "mc,sobol", "--extend"]) == 0
    assert main([*base, "--samplers", "mc,sobol", "--resume", "--scheduler",
                 cluster.scheduler_address]) == 0  # fmt: skip
    assert main(["study", "--no-progress", "--n-points", "30", "--features", "8,16",
                 "--replications", "2", "--maps", "sincos", "--samplers", "mc,sobol",
                 "--out", str(tmp_path / "ref")]) == 0  # fmt: skip
    assert rows(tmp_path / "s" / "results.csv") == rows(tmp_path / "ref" / "results.csv")


def test_unreachable_scheduler_is_a_clear_error(tmp_path, capsys):
    code = main(["study", "--out", str(tmp_path / "x"), "--no-progress", "--n-points", "20",
                 "--features", "8", "--replications", "1", "--maps", "sincos", "--samplers", "mc",
                 "--scheduler", "tcp://127.0.0.1:1"])  # fmt: skip
    assert code == 2 and "cannot be reached" in capsys.readouterr().err
