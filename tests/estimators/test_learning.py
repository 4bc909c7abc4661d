"""Learning-task metrics against scikit-learn: KernelRidge and RidgeClassifier."""

import numpy as np
import pytest
from sklearn.kernel_ridge import KernelRidge
from sklearn.linear_model import RidgeClassifier

from kernelapprox.estimators.learning import class_error, krr_mse, krr_predict, learning_error
from kernelapprox.kernels import Gaussian


@pytest.fixture
def problem():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 4))
    y = np.sin(X[:, 0]) + 0.1 * rng.normal(size=60)
    order = rng.permutation(60)
    return X, y, np.sort(order[15:]), np.sort(order[:15])


def test_krr_predictions_are_sklearn_kernel_ridge_on_the_exact_kernel(problem):
    X, y, train, test = problem
    K = Gaussian(1.5)(X)
    ours = krr_predict(K[np.ix_(train, train)], K[np.ix_(test, train)], y[train], 0.05)
    ref = KernelRidge(alpha=0.05, kernel="precomputed").fit(K[np.ix_(train, train)], y[train])
    np.testing.assert_allclose(ours, ref.predict(K[np.ix_(test, train)]), rtol=1e-9, atol=1e-12)
    pred = ref.predict(K[np.ix_(test, train)])
    expected = np.sum((pred - y[test]) ** 2) / np.sum((y[test] - y[train].mean()) ** 2)
    assert krr_mse(K, y, train, test, ridge=0.05) == pytest.approx(expected, rel=1e-9)
    assert learning_error(K, y, train, test, "krr_mse", ridge=0.05) == krr_mse(
        K, y, train, test, ridge=0.05
    )


def test_class_error_with_a_linear_kernel_is_sklearn_ridge_classifier(problem):
    """RidgeClassifier (no intercept) is one-vs-rest ridge on +-1 targets; with the linear
    kernel X X^T its dual is our kernel ridge, so the accuracies agree."""
    X, _, train, test = problem
    labels = np.digitize(X[:, 1] + X[:, 2], [-0.7, 0.7])  # three classes
    ref = RidgeClassifier(alpha=0.3, fit_intercept=False).fit(X[train], labels[train])
    accuracy = ref.score(X[test], labels[test])
    assert class_error(X @ X.T, labels, train, test, ridge=0.3) == pytest.approx(1 - accuracy)
    two = np.where(labels > 0, 1, 0)  # two classes: sklearn's single decision function
    ref = RidgeClassifier(alpha=0.3, fit_intercept=False).fit(X[train], two[train])
    assert class_error(X @ X.T, two, train, test, ridge=0.3) == pytest.approx(
        1 - ref.score(X[test], two[test])
    )


def test_an_approximate_kernel_is_judged_by_the_same_rule(problem):
    from kernelapprox.features import make

    X, y, train, test = problem
    kernel = Gaussian(1.5)
    exact = krr_mse(kernel(X), y, train, test, ridge=0.05)
    errors = [
        krr_mse(make("sincos", kernel, m, dim=4, seed=0).gram(X), y, train, test, ridge=0.05)
        for m in (8, 2048)
    ]
    assert errors[1] == pytest.approx(exact, rel=0.2) and errors[0] > errors[1]


def test_bad_learning_inputs(problem):
    X, y, train, test = problem
    K = Gaussian(1.5)(X)
    with pytest.raises(ValueError, match="ridge"):
        krr_mse(K, y, train, test, ridge=0.0)
    with pytest.raises(ValueError, match="two classes"):
        class_error(K, np.zeros(60), train, test)
    with pytest.raises(ValueError, match="vary"):
        krr_mse(K, np.ones(60), train, test)
    with pytest.raises(ValueError, match="square"):
        krr_mse(K[:10], y, train, test)
    with pytest.raises(ValueError, match="metric"):
        learning_error(K, y, train, test, "accuracy")
