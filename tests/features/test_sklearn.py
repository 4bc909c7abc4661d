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
