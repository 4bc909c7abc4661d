"""Learning-task metrics in studies: labelled data, the split, the exact kernel's floor."""

import warnings

import numpy as np
import pytest

from kernelapprox.cli import main
from kernelapprox.estimators.learning import class_error, krr_mse
from kernelapprox.features import make
from kernelapprox.kernels import Gaussian, median_pairwise_distance
from kernelapprox.sampling import QMCBalanceWarning
from kernelapprox.study import StudySpec, run_study, summarize
from kernelapprox.study.data import learning_split, load_data, load_targets, subsample_rows


@pytest.fixture(autouse=True)
def _quiet_balance():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", QMCBalanceWarning)
        yield


def test_digits_labels_follow_their_rows():
    from sklearn.datasets import load_digits

    digits = load_digits()
    idx = subsample_rows("digits", 1797, 80, 3, "test", False)
    np.testing.assert_array_equal(load_data("digits", n_points=80, seed=3), digits.data[idx] / 16)
    np.testing.assert_array_equal(load_targets("digits", target=None, n_points=80, seed=3),
                                  digits.target[idx])  # fmt: skip
    train, test = learning_split(80, 3)
    assert len(test) == 20 and len(train) == 60 and not set(train) & set(test)


def test_a_study_cell_is_the_direct_computation():
    spec = StudySpec(data=["digits"], maps=["sincos"], samplers=["mc"], features=[64],
                     replications=2, n_points=120, metrics=["class_error", "krr_mse"])  # fmt: skip
    run = run_study(spec, progress=False)
    X = load_data("digits", n_points=120, seed=0)
    y = load_targets("digits", target=None, n_points=120, seed=0)
    train, test = learning_split(120, 0)
    kernel = Gaussian(median_pairwise_distance(X))
    cell = spec.cells()[0][0]
    K_hat = make("sincos", kernel, 64, dim=64, sampler="mc", seed=cell.seed(0, 1)).gram(X)
    row = {r["metric"]: r["value"] for r in run.rows if r["replication"] == 1}
    assert row["class_error"] == pytest.approx(class_error(K_hat, y, train, test, ridge=1e-2))
    assert row["krr_mse"] == pytest.approx(krr_mse(K_hat, y, train, test, ridge=1e-2))
    floor = summarize(run)["datasets"][0]["exact_kernel"]["gaussian"]
    assert floor["class_error"] == pytest.approx(class_error(kernel(X), y, train, test, ridge=1e-2))


def test_learning_metrics_need_labels(tmp_path):
    with pytest.raises(ValueError, match=r"labelled data.*--target"):
        StudySpec(metrics=["krr_mse"]).validate()
    data = tmp_path / "x.npy"
    np.save(data, np.random.default_rng(0).normal(size=(40, 3)))
    with pytest.raises(ValueError, match="labelled"):
        StudySpec(data=[str(data)], metrics=["class_error"]).validate()
    short = tmp_path / "y.npy"
    np.save(short, np.arange(39))
    spec = StudySpec(data=[str(data)], target=str(short), maps=["sincos"], samplers=["mc"],
                     n_points=40, features=[8], replications=1, metrics=["krr_mse"])  # fmt: skip
    with pytest.raises(ValueError, match=r"one value per data row, shape \(40,\)"):
        run_study(spec, progress=False)
    with pytest.raises(ValueError, match="exactly one"):
        StudySpec(data=["digits", "normal"], target=str(short)).validate()


def test_cli_target_file_and_a_changed_target_refuses_resume(tmp_path, capsys):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(60, 3))
    data, target = tmp_path / "x.npy", tmp_path / "y.csv"
    np.save(data, X)
    target.write_text("\n".join(repr(float(v)) for v in np.sin(X[:, 0])) + "\n")
    out = tmp_path / "s"
    argv = ["study", "--out", str(out), "--data", str(data), "--target", str(target),
            "--maps", "sincos", "--samplers", "mc,sobol", "--features", "8,32",
            "--replications", "2", "--metric", "krr_mse,rel_fro", "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("krr_mse") and "exact kernel's krr_mse" in printed
    target.write_text("\n".join(repr(float(v)) for v in np.cos(X[:, 0])) + "\n")
    assert main([*argv, "--resume"]) == 2
    assert "learning (--target, --ridge" in capsys.readouterr().err


def test_error_rates_of_zero_get_no_log_ratio_and_no_heavy_tail_warning():
    from kernelapprox.study.report import format_comparison

    spec = StudySpec(data=["digits"], maps=["positive"], samplers=["mc", "sobol"],
                     features=[8, 16], replications=2, n_points=60,
                     metrics=["class_error", "rel_fro"])  # fmt: skip
    summary = summarize(run_study(spec, progress=False))
    for c in summary["cells"]:
        c.update(ratio=None, ratio_ci_low=None, ratio_ci_high=None)  # as for rates of 0
    for c in summary["curves"]:
        c.pop("features_ratio_relation", None)
    assert format_comparison(summary, "class_error") == ""  # no row with a value: no table
    flagged = {c["metric"] for c in summary["curves"] if "too_few_replications" in c}
    assert flagged == {"rel_fro"}  # the measured heavy tail is the Gram error's
