import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.linear_model import RidgeClassifier
from sklearn.pipeline import make_pipeline
from sklearn.utils.estimator_checks import check_estimator

from kernelapprox.features import RandomFeatures


@pytest.mark.parametrize("feature_map", ["sincos", "cos_offset", "positive", "fourier", "dct"])
def test_check_estimator_passes(feature_map):
    est = RandomFeatures(feature_map=feature_map, n_features=8, random_state=0, sampler="mc")
    results = check_estimator(est, on_fail=None)
    failed = [r["check_name"] for r in results if r["status"] == "failed"]
    assert not failed
    assert sum(r["status"] == "passed" for r in results) > 30


def test_fit_draws_transform_is_deterministic_and_float32_is_preserved():
    X = np.random.default_rng(0).normal(size=(30, 5))
    est = RandomFeatures(n_features=16, sampler="sobol", random_state=1).fit(X)
    np.testing.assert_array_equal(est.transform(X), est.transform(X))
    assert est.frequencies_.shape == (16, 5) and est.weights_.shape == (16,)
    out32 = est.transform(X.astype(np.float32))
    assert out32.dtype == np.float32 and est.transform(X).dtype == np.float64
    np.testing.assert_allclose(out32, est.transform(X), atol=1e-5)
    again = RandomFeatures(n_features=16, sampler="sobol", random_state=1).fit(X)
    np.testing.assert_array_equal(again.frequencies_, est.frequencies_)


def test_feature_names_and_complex_maps_as_real_pairs():
    X = np.random.default_rng(0).normal(size=(4, 3))
    est = RandomFeatures(feature_map="fourier", n_features=5, random_state=0).fit(X)
    Z = est.transform(X)
    assert Z.shape == (4, 10) and np.isrealobj(Z)
    np.testing.assert_allclose(Z @ Z.T, est.map_.gram(X), atol=1e-12)
    names = est.get_feature_names_out()
    assert len(names) == 10 and names[0] == "randomfeatures0"


def test_pipeline_classifies_digits():
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    model = make_pipeline(
        RandomFeatures(length_scale=3.0, n_features=256, sampler="sobol", random_state=0),
        RidgeClassifier(alpha=1e-3),
    )
    model.fit(X[:1200], y[:1200])
    assert model.score(X[1200:], y[1200:]) > 0.9


def test_bad_parameters_fail_at_fit():
    X = np.ones((3, 2))
    with pytest.raises(ValueError, match="map must be one of"):
        RandomFeatures(feature_map="relu").fit(X)
    with pytest.raises(ValueError, match="kernel must be one of"):
        RandomFeatures(kernel="poly").fit(X)
    with pytest.raises(ValueError, match=r"NaN|infinity"):
        RandomFeatures().fit(np.array([[np.nan, 1.0]]))


@pytest.mark.parametrize(
    "params",
    [
        {"random_state": 0},  # check_estimator sets n_components=1: rounded up for sincos
        {"feature_map": "cos_offset", "random_state": 0},
        {"n_components": 16, "length_scale": "median", "random_state": 0},
    ],
)
def test_check_estimator_passes_with_n_components_and_the_median(params):
    results = check_estimator(RandomFeatures(**params), on_fail=None)
    failed = [r["check_name"] for r in results if r["status"] == "failed"]
    assert not failed


@pytest.mark.parametrize(
    ("feature_map", "columns_per_frequency"),
    [("sincos", 2), ("cos_offset", 1), ("positive", 1), ("hyperbolic", 2), ("fourier", 2)],
)
def test_n_components_counts_output_columns(feature_map, columns_per_frequency):
    X = np.random.default_rng(0).normal(size=(7, 3)) / 3
    est = RandomFeatures(feature_map=feature_map, kernel="softmax", n_components=48).fit(X)
    assert est.transform(X).shape == (7, 48) and len(est.get_feature_names_out()) == 48
    assert est.n_features_ == 48 // columns_per_frequency == est.frequencies_.shape[0]
    # n_features counts frequencies and takes precedence
    est = RandomFeatures(feature_map=feature_map, kernel="softmax", n_features=5, n_components=48)
    assert est.fit(X).transform(X).shape == (7, 5 * columns_per_frequency)


def test_default_width_and_bad_n_components():
    X = np.random.default_rng(0).normal(size=(6, 3))
    assert RandomFeatures().fit(X).transform(X).shape == (6, 256)
    with pytest.warns(UserWarning, match="n_components=7 is not a multiple of 2.*8 columns"):
        assert RandomFeatures(n_components=7).fit_transform(X).shape == (6, 8)
    with pytest.raises(ValueError, match="n_components"):
        RandomFeatures(n_components=0).fit(X)


def test_median_length_scale_in_the_kernels_own_distance():
    from scipy.spatial.distance import pdist

    X = np.random.default_rng(1).normal(size=(40, 5))
    est = RandomFeatures(length_scale="median", n_features=4, random_state=0).fit(X)
    assert est.length_scale_ == pytest.approx(np.median(pdist(X)), rel=1e-12)
    est = RandomFeatures(kernel="laplacian", length_scale="median", n_features=4).fit(X)
    assert est.length_scale_ == pytest.approx(np.median(pdist(X, "cityblock")), rel=1e-12)
    assert est.map_.kernel.length_scale == est.length_scale_
    with pytest.raises(ValueError, match="length_scale must be a number > 0 or 'median'"):
        RandomFeatures(length_scale="mean").fit(X)


def test_qmc_balance_warning_once_per_fit_and_not_by_default():
    import warnings

    from kernelapprox.sampling import QMCBalanceWarning

    X = np.random.default_rng(0).normal(size=(10, 3))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        RandomFeatures(sampler="sobol", random_state=0).fit(X)  # 128 frequencies
        RandomFeatures(sampler="spherical", random_state=0).fit(X)
        RandomFeatures(feature_map="cos_offset", sampler="sobol").fit(X)  # 256
    assert not [w for w in caught if issubclass(w.category, QMCBalanceWarning)]
    est = RandomFeatures(n_features=100, sampler="sobol", random_state=0)
    for _ in range(2):  # once per fit, every fit
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            est.fit(X)
        assert [issubclass(w.category, QMCBalanceWarning) for w in caught] == [True]


def test_n_frequencies_attribute_is_the_deprecated_name_of_n_features():
    X = np.random.default_rng(1).normal(size=(6, 3))
    est = RandomFeatures(n_components=24, random_state=0)
    with pytest.raises(AttributeError):
        est.n_frequencies_  # noqa: B018  (not fitted)
    est.fit(X)
    with pytest.warns(DeprecationWarning, match="use n_features_"):
        assert est.n_frequencies_ == est.n_features_ == 12
