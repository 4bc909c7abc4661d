"""Gram-matrix error metrics: how far an estimated Gram matrix is from the exact one.

=================  ===================================================================
``rel_fro``        ``|K_hat - K|_F / |K|_F``
``rel_spectral``   ``|K_hat - K|_2 / |K|_2`` (largest singular value)
``max_abs``        ``max_ij |K_hat_ij - K_ij|``
``rownorm_fro``    relative Frobenius error of the row-normalized matrices
                   ``D^{-1} K`` (``D = diag(K 1)``): the attention-matrix error, invariant
                   to per-row scale, the comparison that suits attention feature maps
=================  ===================================================================
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from kernelapprox._validation import check_choice


def _check(K_hat: np.ndarray, K: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    K_hat = np.asarray(K_hat, dtype=np.float64)
    K = np.asarray(K, dtype=np.float64)
    if K_hat.shape != K.shape or K.ndim != 2:
        raise ValueError(f"K_hat and K must be matrices of one shape, got {K_hat.shape}, {K.shape}")
    return K_hat, K


def relative_frobenius(K_hat: np.ndarray, K: np.ndarray) -> float:
    K_hat, K = _check(K_hat, K)
    return float(np.linalg.norm(K_hat - K) / np.linalg.norm(K))


def relative_spectral(K_hat: np.ndarray, K: np.ndarray) -> float:
    K_hat, K = _check(K_hat, K)
    return float(np.linalg.norm(K_hat - K, 2) / np.linalg.norm(K, 2))


def max_abs(K_hat: np.ndarray, K: np.ndarray) -> float:
    K_hat, K = _check(K_hat, K)
    return float(np.max(np.abs(K_hat - K)))


def row_normalized_frobenius(K_hat: np.ndarray, K: np.ndarray) -> float:
    """Relative Frobenius error of ``D_hat^{-1} K_hat`` against ``D^{-1} K``.

    Returns ``inf`` when a row of ``K_hat`` sums to zero or less (no attention distribution).
    """
    K_hat, K = _check(K_hat, K)
    s_hat, s = K_hat.sum(1, keepdims=True), K.sum(1, keepdims=True)
    if np.any(s <= 0):
        raise ValueError("row normalization needs an exact kernel with positive row sums")
    if np.any(s_hat <= 0):
        return float("inf")
    A_hat, A = K_hat / s_hat, K / s
    return float(np.linalg.norm(A_hat - A) / np.linalg.norm(A))


METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "rel_fro": relative_frobenius,
    "rel_spectral": relative_spectral,
    "max_abs": max_abs,
    "rownorm_fro": row_normalized_frobenius,
}


def gram_error(K_hat: np.ndarray, K: np.ndarray, metric: str = "rel_fro") -> float:
    """The named metric of :data:`METRICS`."""
    check_choice(metric, "metric", METRICS)
    return METRICS[metric](K_hat, K)
