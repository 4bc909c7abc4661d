"""Bad input to ``kernelapprox study``: one line on stderr, the right exit status, no
traceback, and nothing created in ``--out`` (so the corrected command is never blocked).

Exit status 2 is the user's error (an option, the data, what ``--out`` names); 1 is the
environment's (a folder that cannot be written, a missing optional dependency).
"""

import errno
import json
import math
import os
import sys

import numpy as np
import pytest

import kernelapprox.study.store as store
from kernelapprox.cli import main

SMALL = ["--maps", "sincos", "--samplers", "mc", "--features", "8", "--replications", "2",
         "--n-points", "20", "--metric", "rel_fro", "--no-progress"]  # fmt: skip


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    """Run in a scratch folder: a planted bug that writes into "." must not hit the checkout."""
    monkeypatch.chdir(tmp_path)


def npy(tmp_path, name, array=None, raw=None):
    path = tmp_path / name
    if raw is not None:
        path.write_bytes(raw)
    else:
        np.save(path, array)
    return str(path)


def bad_inputs(tmp_path):
    """(argv, expected status, a phrase of the message) per case."""
    rng = np.random.default_rng(0)
    nan = rng.normal(size=(30, 3))
    nan[4, 1] = np.nan
    return {
        "too few rows for --n-points": (
            ["--data", npy(tmp_path, "few.npy", rng.normal(size=(1, 3)))],  # fewer use all rows
            2,
            "too few for a study",
        ),
        "NaN data": (["--data", npy(tmp_path, "nan.npy", nan)], 2, "NaN"),
        "complex data": (
            ["--data", npy(tmp_path, "c.npy", rng.normal(size=(30, 3)) * 1j)],
            2,
            "complex",
        ),
        "empty .npy file": (["--data", npy(tmp_path, "e.npy", raw=b"")], 2, "not a readable"),
        "truncated .npy file": (
            ["--data", npy(tmp_path, "t.npy", raw=b"\x93NUMPY\x01\x00v\x00{'descr'")],
            2,
            "not a readable",
        ),
        "no rows": (["--data", npy(tmp_path, "z.npy", np.zeros((0, 3)))], 2, "at least one row"),
        "one-dimensional data": (["--data", npy(tmp_path, "v.npy", np.ones(30))], 2, "shape"),
        "fitted weights with too few rows": (
            ["--data", npy(tmp_path, "fit.npy", rng.normal(size=(3, 3))), "--weights", "fitted"],
            2,
            "two disjoint halves",
        ),
        "missing data file": (["--data", str(tmp_path / "missing.npy")], 2, "does not exist"),
        "data name on two lines": (["--data", "a\nb.npy"], 2, "one line"),
        "overflowing softmax Gram": (
            [
                "--data",
                npy(tmp_path, "big.npy", rng.normal(size=(30, 3)) * 1e200),
                "--kernel",
                "softmax",
                "--maps",
                "positive",
            ],
            2,
            "overflows",
        ),
        "bad map": (["--maps", "relu"], 2, "maps must be one of"),
        "no runnable cell": (["--kernel", "laplacian", "--maps", "positive"], 2, "no cell"),
        "zero replications": (["--replications", "0"], 2, "replications"),
        "negative seed": (["--seed", "-1"], 2, "seed"),
        "level out of range": (["--level", "1.5"], 2, "level"),
        "table of a metric not run": (["--tables", "max_abs"], 2, "not among"),
        "bad scheduler address": (["--scheduler", ""], 2, "scheduler"),
    }


CASES = [
    "too few rows for --n-points", "NaN data", "complex data", "empty .npy file",
    "truncated .npy file", "no rows", "one-dimensional data", "fitted weights with too few rows",
    "missing data file", "data name on two lines", "overflowing softmax Gram", "bad map",
    "no runnable cell", "zero replications", "negative seed", "level out of range",
    "table of a metric not run", "bad scheduler address",
]  # fmt: skip


@pytest.mark.parametrize("case", CASES)
def test_bad_input_leaves_nothing_behind(tmp_path, capsys, case):
    cases = bad_inputs(tmp_path)
    assert sorted(cases) == sorted(CASES)
    argv, status, phrase = cases[case]
    out = tmp_path / "out"
    code = main(["study", *SMALL, "--out", str(out), *argv])
    err = capsys.readouterr().err
    assert code == status, err
    assert phrase in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not out.exists()


@pytest.mark.parametrize("case", ["too few rows for --n-points", "NaN data", "complex data"])
def test_the_corrected_command_then_runs(tmp_path, capsys, case):
    argv, _, _ = bad_inputs(tmp_path)[case]
    out = tmp_path / "out"
    assert main(["study", *SMALL, "--out", str(out), *argv]) == 2
    assert main(["study", *SMALL, "--out", str(out)]) == 0  # not blocked, no --resume needed


def test_out_naming_the_wrong_thing(tmp_path, capsys):
    a_file = tmp_path / "file.txt"
    a_file.write_bytes(b"mine")
    assert main(["study", *SMALL, "--out", str(a_file)]) == 2
    assert "is an existing file" in capsys.readouterr().err
    assert a_file.read_bytes() == b"mine"
    assert main(["study", *SMALL, "--out", str(a_file / "sub")]) == 2
    assert "which is a file" in capsys.readouterr().err
    assert main(["study", *SMALL, "--out", ""]) == 2
    assert "empty name" in capsys.readouterr().err
    for name in ("results.csv", "spec.json"):
        out = tmp_path / f"dir-{name}"
        (out / name).mkdir(parents=True)
        assert main(["study", *SMALL, "--out", str(out), "--resume"]) == 2
        err = capsys.readouterr().err
        assert f"holds {name} that is not a file" in err and "Traceback" not in err
        assert [p.name for p in out.iterdir()] == [name]


def test_unwritable_out_is_an_environment_failure(tmp_path, capsys, monkeypatch):
    out = tmp_path / "ro"
    out.mkdir()
    if os.geteuid() == 0:  # root writes anywhere: make the write fail as a read-only disk does

        def refuse(path, data):
            raise PermissionError(errno.EROFS, "Read-only file system", str(path))

        monkeypatch.setattr(store, "atomic_write", refuse)
    else:
        out.chmod(0o555)
    try:
        code = main(["study", *SMALL, "--out", str(out)])
    finally:
        out.chmod(0o755)
    err = capsys.readouterr().err
    assert code == 1 and "cannot write" in err and "untouched" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert list(out.iterdir()) == []


def test_scheduler_without_dask_is_an_environment_failure(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "dask.distributed", None)  # import fails
    out = tmp_path / "out"
    assert main(["study", *SMALL, "--out", str(out), "--scheduler", "tcp://127.0.0.1:1"]) == 1
    err = capsys.readouterr().err
    assert "dask.distributed" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and not out.exists()


def test_local_cluster_listens_on_localhost_without_a_dashboard(monkeypatch):
    distributed = pytest.importorskip("dask.distributed")
    from kernelapprox.study.distributed import connect

    seen = {}

    def fake_cluster(**kwargs):
        seen.update(kwargs)
        return "cluster"

    class FakeClient:
        def __init__(self, cluster):
            self.cluster = cluster

    monkeypatch.setattr(distributed, "LocalCluster", fake_cluster)
    monkeypatch.setattr(distributed, "Client", FakeClient)
    client, owned = connect("local")
    assert owned and client.cluster == "cluster"
    assert seen["host"] == "127.0.0.1" and seen["dashboard_address"] is None


def test_no_nan_reaches_json(tmp_path):
    from kernelapprox.study import StudySpec, run_study, summarize
    from kernelapprox.study.report import to_json

    spec = StudySpec(maps=["sincos"], samplers=["mc", "sobol"], features=[8, 16],
                     replications=2, n_points=20, metrics=["rel_fro"])  # fmt: skip
    run = run_study(spec, progress=False)
    for row in run.rows:  # an overflowing feature map: inf and NaN errors
        if row["sampler"] == "mc":
            row["value"] = math.inf if row["replication"] else math.nan
    run.predictions = dict.fromkeys(run.predictions, math.nan)
    text = to_json(summarize(run))

    def refuse(name):
        raise AssertionError(f"{name} in JSON")

    summary = json.loads(text, parse_constant=refuse)
    mc = [c for c in summary["cells"] if c["sampler"] == "mc"]
    assert all(c["mean"] is None and c["non_finite"] == 2 for c in mc)
    assert all(c["non_finite"] == 0 for c in summary["cells"] if c["sampler"] == "sobol")


def test_one_replication_has_no_verdict(tmp_path, capsys):
    argv = ["study", "--out", str(tmp_path / "one"), *SMALL, "--replications", "1",
            "--features", "8,16"]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "n/a (1 replication: no interval)" in printed and "agrees" not in printed
