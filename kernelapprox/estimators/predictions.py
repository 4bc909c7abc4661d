"""Analytic predictions of a study cell's Gram error, where a closed form exists.

For an estimator ``K_hat`` with entrywise variances ``V_ij`` (and no bias),
``E |K_hat - K|_F^2 = sum_ij V_ij``, so the predicted root-mean-square relative Frobenius
error is ``sqrt(sum_ij V_ij) / |K|_F``; the measured mean error is at most this (Jensen) and
close to it when the error concentrates. Closed forms (see :mod:`kernelapprox.estimators.analytic`):

* ``sincos`` / ``fourier`` with MC frequencies, shift-invariant kernels: Sutherland &
  Schneider, with ``k(2 Delta)`` evaluated as ``k(2x, 2y)``;
* ``cos_offset`` with MC frequencies, shift-invariant kernels: Sutherland & Schneider;
* ``sincos`` / ``fourier`` with orthogonal frequencies, Gaussian kernel: the exact ORF variance;
* ``positive`` / ``hyperbolic`` / trigonometric maps with MC frequencies for the softmax
  kernel: the Performer MSE formulas; for the Gaussian kernel the positive maps are the
  softmax ones times ``exp(-(|u|^2 + |v|^2)/2)``, so their variance gets that factor squared.

Every other combination (QMC, DiJiang's maps, weighted features) returns ``None``: no closed
form is claimed. Each map says which closed form is its own (``FeatureMap.variance_family``),
so a new map of a known family needs no edit here.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.distance import cdist

from kernelapprox.estimators import analytic
from kernelapprox.features import MAPS
from kernelapprox.kernels import Kernel


def entrywise_variance(
    map_name: str, kernel: Kernel, sampler: str, X: np.ndarray, n_features: int
) -> np.ndarray | None:
    """``Var K_hat_ij`` over the frequency draw, shape ``(n, n)``, or ``None`` (no closed form).

    ``n_features`` is the number of frequencies ``m`` (the study's ``n_features`` column);
    the sin/cos closed form is written in the output width ``D = 2m``.
    """
    U = X * kernel.input_scale
    family = MAPS[map_name].variance_family
    trig = family == "sincos"
    if kernel.shift_invariant:
        if sampler == "mc" and (trig or family == "cos_offset"):
            k, k2 = kernel(X), kernel(2.0 * X)
            if trig:
                return analytic.sincos_variance(k, k2, output_dim=2 * n_features)
            return analytic.cos_offset_variance(k, k2, n_features=n_features)
        if sampler == "orthogonal" and trig and kernel.unit == "gaussian":
            z = cdist(U, U)
            return analytic.orf_variance(z, dim=X.shape[1], n_features=n_features)
    if sampler != "mc" or kernel.unit not in ("softmax", "gaussian"):
        return None
    formulas = {
        "positive": analytic.performer_positive_mse,
        "hyperbolic": analytic.performer_hyperbolic_mse,
    }
    if kernel.unit == "softmax":
        formulas["sincos"] = analytic.performer_trigonometric_mse
    if family not in formulas:
        return None
    var = formulas[family](U[:, None, :], U[None, :, :], n_features=n_features)
    if kernel.unit == "gaussian":
        sq = (U * U).sum(1)
        var = var * np.exp(-(sq[:, None] + sq[None, :]))
    return var


def predicted_relative_rmse(
    map_name: str, kernel: Kernel, sampler: str, X: np.ndarray, n_features: int
) -> float | None:
    """``sqrt(sum_ij Var K_hat_ij) / |K|_F``, or ``None`` when no closed form applies."""
    var = entrywise_variance(map_name, kernel, sampler, X, n_features)
    if var is None:
        return None
    return float(np.sqrt(var.sum()) / np.linalg.norm(kernel(X)))
