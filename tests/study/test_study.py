import csv
import json
import warnings

import numpy as np
import pytest

from kernelapprox.cli import main
from kernelapprox.estimators.replications import mean_and_se
from kernelapprox.features import make
from kernelapprox.kernels import Gaussian, median_pairwise_distance
from kernelapprox.sampling import QMCBalanceWarning
from kernelapprox.study import COLUMNS, StudySpec, preset, run_study, summarize
from kernelapprox.study.data import load_data
from kernelapprox.study.store import load_results

SMALL = ["--n-points", "40", "--features", "8,16", "--replications", "2", "--no-progress"]


@pytest.fixture(autouse=True)
def _quiet_balance():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", QMCBalanceWarning)
        yield


def read_rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_cli_writes_tidy_results_summary_and_plot(tmp_path, capsys):
    out = tmp_path / "s"
    assert main(["study", "--out", str(out), *SMALL]) == 0
    printed = capsys.readouterr().out
    assert "rel_fro" in printed and "slope" in printed and "wrote results.csv" in printed
    rows = read_rows(out / "results.csv")
    assert tuple(rows[0]) == (*COLUMNS, "crc32")  # the tidy columns first
    spec = preset("default")
    # default: 3 maps x 4 samplers, minus dct x orthogonal; 2 feature counts, 2 reps, 3 metrics
    assert len(rows) == 11 * 2 * 2 * 3
    summary = json.loads((out / "summary.json").read_text())
    cell = summary["cells"][0]
    assert {"mean", "stderr", "ci_low", "ci_high", "replications"} <= set(cell)
    assert cell["ci_low"] <= cell["mean"] <= cell["ci_high"] and cell["replications"] == 2
    curve = summary["curves"][0]
    assert {"slope", "slope_ci_low", "slope_ci_high", "n_features", "mean"} <= set(curve)
    assert summary["skipped"] and spec.maps == ["sincos", "positive", "dct"]
    png = (out / "convergence.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_json_format_prints_the_summary(tmp_path, capsys):
    assert main(["study", "--out", str(tmp_path / "j"), "--format", "json", "--maps", "sincos",
                 "--samplers", "mc", *SMALL]) == 0  # fmt: skip
    summary = json.loads(capsys.readouterr().out)
    assert {c["map"] for c in summary["cells"]} == {"sincos"}
    assert summary["datasets"][0]["dim"] == 8


def test_results_match_a_direct_computation(tmp_path):
    spec = StudySpec(maps=["sincos"], samplers=["sobol"], features=[16], replications=2,
                     n_points=30, metrics=["rel_fro"])  # fmt: skip
    run = run_study(spec, tmp_path / "d", progress=False)
    X = load_data("normal", n_points=30, dim=8, seed=0)
    kernel = Gaussian(median_pairwise_distance(X))
    cell = spec.cells()[0][0]
    fm = make("sincos", kernel, 16, dim=8, sampler="sobol", seed=cell.seed(0, 1))
    K = kernel(X)
    expected = np.linalg.norm(fm.gram(X) - K) / np.linalg.norm(K)
    value = next(r["value"] for r in run.rows if r["replication"] == 1)
    assert value == pytest.approx(expected, rel=1e-12)


def test_resume_skips_finished_cells_and_matches_an_uninterrupted_run(tmp_path):
    args = ["--maps", "sincos,positive", "--samplers", "mc,sobol", *SMALL]
    full = tmp_path / "full"
    assert main(["study", "--out", str(full), *args]) == 0
    part = tmp_path / "part"
    part.mkdir()
    # an "interrupted" run: half the rows finished, and the last line was cut short
    lines = (full / "results.csv").read_bytes().splitlines(keepends=True)
    kept = b"".join(lines[: len(lines) // 2]) + lines[len(lines) // 2][:30]
    (part / "results.csv").write_bytes(kept)
    (part / "spec.json").write_bytes((full / "spec.json").read_bytes())
    assert main(["study", "--out", str(part), *args]) == 2  # refuses without --resume
    assert main(["study", "--out", str(part), "--resume", *args]) == 0
    assert (part / "results.csv").read_bytes().startswith(kept)  # appended, never rewritten
    assert load_results(part)[1] == load_results(full)[1]  # nothing lost or duplicated


def test_resume_refuses_a_different_study(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["study", "--out", str(out), *SMALL, "--maps", "sincos", "--samplers", "mc"]) == 0
    code = main(["study", "--out", str(out), "--resume", *SMALL, "--maps", "sincos",
                 "--samplers", "mc", "--seed", "3"])  # fmt: skip
    assert code == 2 and "seed" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--maps", "relu"], "maps must be one of"),
        (["--samplers", "random"], "samplers must be one of"),
        (["--kernel", "laplacian", "--maps", "positive"], "no cell of this study can run"),
        (["--data", "nope"], "data must be one of"),
        (["--replications", "0"], "replications"),
        (["--features", "0"], "features"),
        (["--data", "digits", "--dim", "8"], "dim=8 does not match"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, argv, message):
    code = main(["study", "--out", str(tmp_path / "x"), "--no-progress", *argv])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


def test_bad_number_and_bad_file(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["study", "--length-scale", "wide"])
    assert exc.value.code == 2 and "median" in capsys.readouterr().err
    assert main(["study", "--out", str(tmp_path / "y"), "--length-scale", "-1"]) == 2
    assert "length_scale" in capsys.readouterr().err
    bad = tmp_path / "bad.npy"
    np.save(bad, np.array([[1.0, np.nan], [0.0, 1.0]]))
    assert main(["study", "--out", str(tmp_path / "z"), "--data", str(bad), *SMALL]) == 2
    assert "NaN" in capsys.readouterr().err
    assert (
        main(["study", "--out", str(tmp_path / "w"), "--data", str(tmp_path / "missing.npy")]) == 2
    )


def test_npy_data_and_dimension_sweep(tmp_path):
    data = tmp_path / "data.npy"
    np.save(data, np.random.default_rng(0).normal(size=(50, 3)))
    assert main(["study", "--out", str(tmp_path / "n"), "--data", str(data), *SMALL,
                 "--maps", "sincos", "--samplers", "mc"]) == 0  # fmt: skip
    assert {r["dim"] for r in read_rows(tmp_path / "n" / "results.csv")} == {"3"}
    assert main(["study", "--out", str(tmp_path / "m"), "--dim", "2,4", *SMALL,
                 "--maps", "sincos", "--samplers", "mc"]) == 0  # fmt: skip
    assert {r["dim"] for r in read_rows(tmp_path / "m" / "results.csv")} == {"2", "4"}


def test_dijiang_preset_scores_every_map_against_its_target(tmp_path):
    spec = preset("dijiang")
    spec.n_points, spec.replications, spec.features = 24, 2, [64]
    run = run_study(spec, tmp_path / "dj", progress=False)
    summary = summarize(run)
    maps = {c["map"] for c in summary["cells"]}
    assert maps == {"positive", "fourier", "dct", "dct_released"}
    released = [c for c in summary["cells"] if c["map"] == "dct_released"]
    assert {c["kernel"] for c in released} == {"softmax"}  # it targets nothing else
    assert {c["metric"] for c in released} >= {"rownorm_fro", "rel_fro"}


def test_qmc_beats_mc_where_the_reference_margin_is_large():
    """d=8, m=256, Gaussian kernel: scrambled Sobol' below half of MC (reference table §4.3)."""
    spec = StudySpec(maps=["sincos"], samplers=["mc", "sobol"], features=[256], replications=5,
                     n_points=200, metrics=["rel_fro"])  # fmt: skip
    rows = run_study(spec, progress=False).rows
    values = {s: np.array([r["value"] for r in rows if r["sampler"] == s]) for s in ("mc", "sobol")}
    mean = {s: v.mean() for s, v in values.items()}
    rel_se = {s: mean_and_se(v)[1] / v.mean() for s, v in values.items()}
    # ratio of the means and its delta-method SE over the 5 independent replications
    ratio = mean["sobol"] / mean["mc"]
    ratio_se = ratio * np.hypot(rel_se["sobol"], rel_se["mc"])
    assert ratio + 5 * ratio_se < 0.5, (ratio, ratio_se)


def test_mc_error_slope_is_minus_one_half():
    spec = StudySpec(maps=["sincos"], samplers=["mc"], features=[16, 32, 64, 128, 256],
                     replications=8, n_points=100, metrics=["rel_fro"])  # fmt: skip
    curve = summarize(run_study(spec, progress=False))["curves"][0]
    assert abs(curve["slope"] + 0.5) < max(5 * curve["slope_stderr"], 0.05)


def test_tables_option_prints_one_table_per_metric(tmp_path, capsys):
    argv = ["study", "--out", str(tmp_path / "t"), *SMALL, "--maps", "positive", "--samplers", "mc"]
    assert main([*argv, "--tables", "max_abs,rel_fro"]) == 0
    printed = capsys.readouterr().out
    assert printed.index("max_abs (") < printed.index("rel_fro (")
    code = main(["study", "--out", str(tmp_path / "u"), *SMALL, "--tables", "rownorm_fro"])
    assert code == 2 and "not among the study's metrics" in capsys.readouterr().err
