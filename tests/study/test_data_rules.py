"""Study data: seeded random subsamples, all rows, small files, .csv input, the L1 median."""

import json
import warnings

import numpy as np
import pytest
from scipy.spatial.distance import pdist

from kernelapprox.study import StudySpec, run_study
from kernelapprox.study.data import SmallDataWarning, load_data, resolve_dim


@pytest.fixture
def sorted_file(tmp_path):
    """100 rows sorted by their first column, as wine is sorted by class."""
    X = np.random.default_rng(0).normal(size=(100, 3))
    X = X[np.argsort(X[:, 0])]
    path = tmp_path / "sorted.npy"
    np.save(path, X)
    return str(path), X


def test_a_file_is_subsampled_at_random_never_from_its_first_rows(sorted_file):
    name, X = sorted_file
    rows = load_data(name, n_points=20, seed=0)
    assert rows.shape == (20, 3)
    assert not np.array_equal(rows, X[:20])
    # 20 of 100 sorted rows: the first 20 would all lie below the 20th value
    assert np.sum(rows[:, 0] > X[19, 0]) >= 10
    again = load_data(name, n_points=20, seed=0)
    other = load_data(name, n_points=20, seed=1)
    np.testing.assert_array_equal(rows, again)
    assert not np.array_equal(rows, other)
    train = load_data(name, n_points=20, seed=0, split="train", fitted=True)
    test = load_data(name, n_points=20, seed=0, fitted=True)
    np.testing.assert_array_equal(test, rows)  # the test rows do not depend on fitting
    assert not {tuple(r) for r in train} & {tuple(r) for r in test}


def test_digits_are_subsampled_too():
    from sklearn.datasets import load_digits

    first = load_digits().data[:50] / 16.0
    assert not np.array_equal(load_data("digits", n_points=50), first)


def test_all_rows_and_a_small_file(sorted_file):
    name, X = sorted_file
    every = load_data(name, n_points="all")
    np.testing.assert_array_equal(every, X)  # increasing indices: the file's own order
    with pytest.warns(SmallDataWarning, match="100 rows, fewer than n_points=400"):
        small = load_data(name, n_points=400)
    np.testing.assert_array_equal(small, X)
    with pytest.warns(SmallDataWarning, match="two halves"):
        half = load_data(name, n_points=400, fitted=True)
    assert half.shape == (50, 3)
    with pytest.raises(ValueError, match="n_points"):
        load_data("normal", n_points="all")
    with pytest.raises(ValueError, match="n_points"):
        StudySpec(n_points="all").validate()  # normal data is drawn: no "all"
    with pytest.raises(ValueError, match="n_points"):
        load_data(name, n_points="most")


def test_csv_input_equals_the_same_numbers_as_npy(tmp_path, sorted_file):
    name, X = sorted_file
    csv = tmp_path / "same.csv"
    csv.write_text("a,b,c\n" + "\n".join(",".join(repr(float(v)) for v in row) for row in X) + "\n")
    np.testing.assert_array_equal(load_data(str(csv), n_points=30), load_data(name, n_points=30))
    assert resolve_dim(str(csv), None) == 3
    bad = tmp_path / "bad.csv"
    bad.write_text("1,2\n3,x\n")
    with pytest.raises(ValueError, match="line 2 holds non-numbers"):
        load_data(str(bad), n_points="all")
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("1,2\n3\n")
    with pytest.raises(ValueError, match="different lengths"):
        load_data(str(ragged), n_points="all")


def test_a_small_file_runs_under_the_default_n_points(sorted_file):
    name, _ = sorted_file
    spec = StudySpec(data=[name], maps=["sincos"], samplers=["mc"], features=[8],
                     replications=2, metrics=["rel_fro"])  # fmt: skip
    with pytest.warns(SmallDataWarning):
        run = run_study(spec, progress=False)
    assert run.datasets[0].describe()["n_points"] == 100


def test_the_laplacian_median_is_its_own_l1_distance():
    spec = StudySpec(kernels=["laplacian", "gaussian"], maps=["sincos"], samplers=["mc"],
                     features=[8], replications=1, n_points=60, metrics=["rel_fro"])  # fmt: skip
    run = run_study(spec, progress=False)
    X = run.datasets[0].X
    kernels = run.datasets[0].kernels
    assert kernels["laplacian"].length_scale == pytest.approx(np.median(pdist(X, "cityblock")))
    assert kernels["gaussian"].length_scale == pytest.approx(np.median(pdist(X)))


def test_the_rules_are_part_of_the_identity_so_older_stores_are_not_resumed(tmp_path):
    synthetic = StudySpec().identity()
    assert "rules" not in synthetic  # studies the rules do not touch keep their identity
    assert StudySpec(data=["digits"]).identity()["rules"] == {"subsample": "seeded-permutation"}
    lap = StudySpec(kernels=["laplacian"]).identity()["rules"]
    assert lap == {"laplacian_median": "cityblock"}
    spec = StudySpec(data=["digits"], maps=["sincos"], samplers=["mc"], features=[8],
                     replications=1, n_points=30, metrics=["rel_fro"])  # fmt: skip
    out = tmp_path / "s"
    run_study(spec, out, progress=False)
    doc = json.loads((out / "spec.json").read_text())
    del doc["spec"]["rules"]  # as an older kernelapprox wrote it: first rows of digits
    (out / "spec.json").write_text(json.dumps(doc))
    with pytest.raises(ValueError, match=r"rules .*subsampled"):
        run_study(spec, out, resume=True, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the current rules resume without complaint
        run_study(spec, tmp_path / "t", progress=False)
        run_study(spec, tmp_path / "t", resume=True, progress=False)
