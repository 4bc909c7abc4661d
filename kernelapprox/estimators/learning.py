r"""Learning-task metrics: is an approximate kernel good enough for kernel ridge regression?

Kernel ridge regression (KRR) on training rows :math:`T` with kernel matrix :math:`K`:
:math:`\alpha = (K_{TT} + \lambda I)^{-1} y_T`, predictions :math:`\hat y_S = K_{ST}\alpha`
on test rows :math:`S` (the estimator of scikit-learn's ``KernelRidge(alpha=lambda)``,
which minimizes :math:`\|y - K\alpha\|^2 + \lambda\,\alpha^\top K \alpha`). Run with an
approximate Gram matrix :math:`\hat K = \Phi\Phi^\top`, it is the random-feature ridge
regression of Rahimi & Recht (NIPS 2007); the study compares its test error with the exact
kernel's.

=================  ====================================================================
``krr_mse``        relative test mean squared error of KRR,
                   :math:`\|\hat y_S - y_S\|^2 / \|y_S - \bar y_T\|^2` (0 is perfect, 1 is
                   no better than predicting the training mean)
``class_error``    test misclassification rate (1 - accuracy) of KRR on one-vs-rest
                   targets (+1 for the class, -1 otherwise), predicting the class of the
                   largest output (the kernel version of scikit-learn's ``RidgeClassifier``)
=================  ====================================================================
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.linalg

from kernelapprox._validation import check_choice

__all__ = ["LEARNING_METRICS", "class_error", "krr_mse", "krr_predict", "learning_error"]


def _split_blocks(K: np.ndarray, train: np.ndarray, test: np.ndarray) -> tuple:
    K = np.asarray(K, dtype=np.float64)
    if K.ndim != 2 or K.shape[0] != K.shape[1]:
        raise ValueError(f"K must be a square kernel matrix, got shape {K.shape}")
    return K[np.ix_(train, train)], K[np.ix_(test, train)]


def krr_predict(K_train: Any, K_test_train: Any, y_train: Any, ridge: float) -> np.ndarray:
    r"""Predictions :math:`K_{ST}(K_{TT} + \lambda I)^{-1} y_T` (``y_train`` may be 2-D).

    Solved with a Cholesky factorization when :math:`K_{TT} + \lambda I` is positive
    definite (any Gram matrix with :math:`\lambda > 0`), otherwise with a least-squares
    solve (an approximate kernel matrix need not be positive semi-definite).
    """
    if not (np.isfinite(ridge) and ridge > 0):
        raise ValueError(f"ridge must be > 0, got {ridge}")
    A = np.asarray(K_train, dtype=np.float64) + ridge * np.eye(len(K_train))
    y = np.asarray(y_train, dtype=np.float64)
    try:
        alpha = scipy.linalg.cho_solve(scipy.linalg.cho_factor(A, lower=True), y)
    except np.linalg.LinAlgError:
        alpha = np.linalg.lstsq(A, y, rcond=None)[0]
    return np.asarray(K_test_train, dtype=np.float64) @ alpha


def krr_mse(K: Any, y: Any, train: np.ndarray, test: np.ndarray, *, ridge: float = 1e-3) -> float:
    """Relative test mean squared error of KRR with kernel matrix ``K`` (all rows)."""
    y = np.asarray(y, dtype=np.float64).ravel()
    K_tt, K_st = _split_blocks(K, train, test)
    pred = krr_predict(K_tt, K_st, y[train], ridge)
    base = np.sum((y[test] - y[train].mean()) ** 2)
    if base == 0:
        raise ValueError("krr_mse needs test targets that vary (or differ from the train mean)")
    return float(np.sum((pred - y[test]) ** 2) / base)


def class_error(
    K: Any, y: Any, train: np.ndarray, test: np.ndarray, *, ridge: float = 1e-3
) -> float:
    """Test misclassification rate of one-vs-rest KRR with kernel matrix ``K``."""
    labels = np.asarray(y).ravel()
    classes = np.unique(labels[train])
    if classes.size < 2:
        raise ValueError("class_error needs at least two classes among the training labels")
    # torch.where-style selection, never multiplication by a mask: +1 for the class, else -1
    Y = np.where(labels[train, None] == classes[None, :], 1.0, -1.0)
    K_tt, K_st = _split_blocks(K, train, test)
    pred = classes[np.argmax(krr_predict(K_tt, K_st, Y, ridge), axis=1)]
    return float(np.mean(pred != labels[test]))


LEARNING_METRICS: dict[str, Callable[..., float]] = {
    "krr_mse": krr_mse,
    "class_error": class_error,
}


def learning_error(
    K: Any, y: Any, train: np.ndarray, test: np.ndarray, metric: str, *, ridge: float = 1e-3
) -> float:
    """The named metric of :data:`LEARNING_METRICS`."""
    check_choice(metric, "metric", LEARNING_METRICS)
    return LEARNING_METRICS[metric](K, y, train, test, ridge=ridge)
