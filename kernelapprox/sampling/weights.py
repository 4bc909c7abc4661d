r"""Cubature weights for random-feature frequencies (weighted QMC).

Convention: a weighted rule estimates :math:`\int f(\omega)\,p(\omega)\,d\omega` by
:math:`\sum_l \xi_l f(\omega_l)`; plain Monte Carlo / QMC uses :math:`\xi_l = 1/m`. A feature
map built on weighted frequencies scales frequency :math:`l`'s features by
:math:`\sqrt{\xi_l}`, which is why every weight here is non-negative (a negative weight would
need an indefinite "feature map").

- :func:`uniform_weights`: :math:`1/m`.
- :func:`box_weights`: the non-negative weights that minimise the box discrepancy of fixed
  nodes (Avron, Sindhwani, Yang & Mahoney, JMLR 17, 2016, Sec. 4; the "weighted" rule that
  DiJiang's Theorem 3.3 appeals to).
- :func:`fitted_weights`: non-negative least squares on training pairs ("D optimised by the
  input", DiJiang, Chen et al. 2024, Eq. 10).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import linalg, optimize

from kernelapprox import discrepancy
from kernelapprox._validation import (
    check_bool,
    check_nonnegative_float,
    check_positive_int,
    renamed_keywords,
)

__all__ = [
    "DEFAULT_BOX_WIDTH",
    "box_weights",
    "data_box_half_width",
    "fitted_weights",
    "uniform_weights",
]

#: Default box half-width in units of the spectral standard deviation: ``b = 3 / scale``.
#: For a Gaussian kernel of length scale ``sigma = 1/scale`` this box holds every input
#: difference with ``|x_k - y_k| <= 3 sigma`` per coordinate, where one coordinate's factor
#: of the kernel has fallen to ``exp(-9/2) ~ 0.011``.
DEFAULT_BOX_WIDTH = 3.0

#: Relative diagonal jitter added to G before its Cholesky factorisation (times trace/m);
#: multiplied by 10 until the factorisation succeeds.
_JITTER = 1e-10


@renamed_keywords({"m": "n_features"})
def uniform_weights(n_features: int) -> np.ndarray:
    """Equal weights ``1/m`` of plain Monte Carlo and QMC, shape ``(m,)``, for
    ``m = n_features`` frequencies."""
    m = check_positive_int(n_features, "n_features")
    return np.full(m, 1.0 / m)


def data_box_half_width(X: Any) -> np.ndarray:
    r"""Half-widths :math:`b_k = \max_i x_{ik} - \min_i x_{ik}` of the box of input differences.

    Every difference :math:`x - y` of rows of ``X`` lies in :math:`\square b =
    \prod_k [-b_k, b_k]`, which is the box Avron et al. (2016, Sec. 3) integrate over.
    Coordinates with zero spread get the smallest positive spread of the others (or 1 when
    all are constant), since a box must have positive width.

    Parameters
    ----------
    X : array_like, shape (n, d)
        Input data (in the units the frequencies act on).

    Returns
    -------
    ndarray, shape (d,)
    """
    from kernelapprox._validation import as_data_array

    arr = as_data_array(X, "X")
    spread = arr.max(axis=0) - arr.min(axis=0)
    positive = spread[spread > 0]
    fill = positive.min() if positive.size else 1.0
    return np.where(spread > 0, spread, fill)


def _line_search(
    start: np.ndarray, candidate: np.ndarray, gram: np.ndarray, beta: np.ndarray
) -> np.ndarray:
    r"""Exact minimiser of :math:`\xi^\top G \xi - 2\beta^\top\xi` on the segment between."""
    step = candidate - start
    curvature = float(step @ gram @ step)
    slope = float(step @ (gram @ start - beta))
    if curvature <= 0.0 or not np.isfinite(curvature):
        t = 1.0 if slope < 0 else 0.0
    else:
        t = min(1.0, max(0.0, -slope / curvature))
    return np.maximum(start + t * step, 0.0)


def _nonnegative_qp(
    gram: np.ndarray,
    beta: np.ndarray,
    start: np.ndarray,
    maxiter: int,
    *,
    penalty: float = 0.0,
) -> np.ndarray:
    r"""Minimise :math:`\xi^\top G \xi - 2 \beta^\top \xi + \mu(1^\top\xi - 1)^2` over xi >= 0.

    Factor :math:`G + \epsilon I = L L^\top` (Cholesky with a tiny relative jitter
    :math:`\epsilon`, see ``_JITTER``); then the objective is
    :math:`\|L^\top \xi - L^{-1}\beta\|^2` up to a constant, a non-negative least squares
    problem (Lawson--Hanson, :func:`scipy.optimize.nnls`); the penalty :math:`\mu` is one
    extra row :math:`\sqrt\mu\,(1^\top \xi - 1)`. Without a penalty the solution is finally
    combined with ``start`` by an exact line search on the *unjittered* objective over the
    segment between them, so the result is never worse than ``start`` (up to rounding).
    """
    m = gram.shape[0]
    scale = float(np.trace(gram)) / m
    jitter = _JITTER * scale
    for _ in range(12):
        try:
            chol = linalg.cholesky(gram + jitter * np.eye(m), lower=True)
            break
        except linalg.LinAlgError:
            jitter *= 10.0
    else:  # pragma: no cover - G + eps I is positive definite for eps > 0
        raise np.linalg.LinAlgError("box Gram matrix could not be factorised")
    design = chol.T
    target = linalg.solve_triangular(chol, beta, lower=True)
    if penalty > 0.0:
        design = np.vstack([design, np.full((1, m), np.sqrt(penalty))])
        target = np.append(target, np.sqrt(penalty))
    try:
        candidate, _ = optimize.nnls(design, target, maxiter=maxiter)
    except RuntimeError as exc:
        raise RuntimeError(
            f"box_weights: NNLS did not converge in maxiter={maxiter} iterations; pass a "
            f"larger maxiter"
        ) from exc
    if penalty > 0.0:
        return candidate
    return _line_search(start, candidate, gram, beta)


def box_weights(
    frequencies: Any,
    *,
    scale: Any,
    b: Any = None,
    sum_to_one: bool = False,
    maxiter: int | None = None,
) -> np.ndarray:
    r"""Non-negative weights minimising the box discrepancy of fixed frequencies.

    Solves

    .. math::

        \min_{\xi \ge 0} D^{\square b}(S, \xi)^2 = c - 2 \xi^\top \beta + \xi^\top G \xi,

    with :math:`G` = :func:`kernelapprox.discrepancy.box_gram`, :math:`\beta` =
    :func:`kernelapprox.discrepancy.box_mean_embedding` (Avron, Sindhwani, Yang & Mahoney,
    JMLR 17, 2016, Sec. 4: for fixed nodes the discrepancy is a convex quadratic in the
    weights). The unconstrained optimum :math:`G^{-1}\beta` can have negative entries, which
    no real feature map can realise, so the weights are constrained to be non-negative and
    the quadratic programme is solved as NNLS on a Cholesky factor of :math:`G + \epsilon I`
    (:math:`\epsilon = 10^{-10}\,\mathrm{tr}(G)/m`, raised tenfold until the factorisation
    succeeds). A final exact line search from the uniform weights :math:`1/m` on the
    unjittered objective guarantees :math:`D(\xi) \le D(1/m)` up to rounding.

    Parameters
    ----------
    frequencies : array_like, shape (m, d)
        Nodes :math:`\omega_l`, drawn for :math:`p = N(0, \mathrm{diag}(s^2))`.
    scale : float or array_like, shape (d,)
        Per-coordinate standard deviation :math:`s` of :math:`p`.
    b : float or array_like, shape (d,), optional
        Box half-widths: the range of input differences :math:`x - y` the features will be
        used on (see :func:`data_box_half_width`). Default ``DEFAULT_BOX_WIDTH / scale``,
        i.e. three length scales of the Gaussian kernel per coordinate.
    sum_to_one : bool, default False
        Also constrain :math:`\sum_l \xi_l = 1`, so that the weighted estimate of
        :math:`k(x, x) = 1` stays exact. Without it the optimal weights can sum to much less
        than one in higher dimensions (the constant integrand is not in :math:`PW_b`, so the
        box discrepancy does not see it). Enforced by a quadratic penalty
        :math:`\mu (1^\top \xi - 1)^2` (:math:`\mu = 10^6 \max_l G_{ll}`) followed by
        exact normalisation; the line search from :math:`1/m` then stays on the simplex, so
        :math:`D(\xi) \le D(1/m)` still holds.
    maxiter : int, optional
        Iteration cap of :func:`scipy.optimize.nnls` (default ``10 m``); a ``RuntimeError``
        says when it is reached.

    Returns
    -------
    ndarray, shape (m,)
        Non-negative, finite weights (they need not sum to one).
    """
    sum_to_one = check_bool(sum_to_one, "sum_to_one")
    w = discrepancy._as_points(frequencies, "frequencies", unit_cube=False)
    m, d = w.shape
    s = discrepancy._per_coordinate(scale, "scale", d)
    half = DEFAULT_BOX_WIDTH / s if b is None else discrepancy._per_coordinate(b, "b", d)
    maxiter = 10 * m if maxiter is None else check_positive_int(maxiter, "maxiter")
    if not isinstance(sum_to_one, (bool, np.bool_)):
        raise TypeError(f"sum_to_one must be True or False, got {sum_to_one!r}")
    gram = discrepancy.box_gram(w, b=half)
    beta = discrepancy.box_mean_embedding(w, scale=s, b=half)
    start = uniform_weights(m)
    if not sum_to_one:
        return _nonnegative_qp(gram, beta, start, maxiter)
    penalty = 1e6 * float(np.max(np.diag(gram)))
    candidate = _nonnegative_qp(gram, beta, start, maxiter, penalty=penalty)
    total = candidate.sum()
    candidate = candidate / total if total > 0 else start
    return _line_search(start, candidate, gram, beta)


def fitted_weights(terms: Any, targets: Any, *, ridge: float = 0.0) -> np.ndarray:
    r"""Non-negative weights fitted so that ``terms @ weights`` matches exact kernel values.

    Solves the (optionally ridge-regularised) non-negative least squares problem

    .. math::

        \min_{\xi \ge 0} \|T \xi - k\|_2^2 + \lambda \|\xi\|_2^2
        = \min_{\xi \ge 0} \left\| \begin{bmatrix} T \\ \sqrt\lambda I \end{bmatrix} \xi
          - \begin{bmatrix} k \\ 0 \end{bmatrix} \right\|_2^2

    (Lawson--Hanson, :func:`scipy.optimize.nnls`). Row :math:`p` of :math:`T` holds the
    per-frequency contributions :math:`f_l(x_p, y_p)` of a feature map on training pair
    :math:`p`, computed with unit weights, so the fitted map estimates
    :math:`\hat k(x, y) = \sum_l \xi_l f_l(x, y)` (uniform weights are :math:`1/m`). This is
    DiJiang's "D optimised by the input" (Chen et al. 2024, Eq. 10) in its least-squares form;
    evaluate it on held-out pairs, since on the training pairs it is optimistic.

    Parameters
    ----------
    terms : array_like, shape (P, m)
        Per-frequency contributions on ``P`` training pairs.
    targets : array_like, shape (P,)
        Exact kernel values on the same pairs.
    ridge : float, default 0.0
        Non-negative ridge penalty :math:`\lambda`.

    Returns
    -------
    ndarray, shape (m,)
        Non-negative weights.
    """
    T = (
        np.asarray(terms, dtype=np.float64)
        if not hasattr(terms, "detach")
        else terms.detach().cpu().numpy().astype(np.float64)
    )
    if T.ndim != 2 or T.shape[0] == 0 or T.shape[1] == 0:
        raise ValueError(f"terms must have shape (P, m) with P, m >= 1, got shape {T.shape}")
    k = (
        np.asarray(targets, dtype=np.float64)
        if not hasattr(targets, "detach")
        else targets.detach().cpu().numpy().astype(np.float64)
    )
    if k.shape != (T.shape[0],):
        raise ValueError(
            f"targets must have shape ({T.shape[0]},) (one exact value per row of terms), "
            f"got shape {k.shape}"
        )
    if not np.all(np.isfinite(T)):
        raise ValueError("terms contains NaN or infinite values")
    if not np.all(np.isfinite(k)):
        raise ValueError("targets contains NaN or infinite values")
    ridge = check_nonnegative_float(ridge, "ridge")
    m = T.shape[1]
    if ridge > 0.0:
        T = np.vstack([T, np.sqrt(ridge) * np.eye(m)])
        k = np.concatenate([k, np.zeros(m)])
    weights, _ = optimize.nnls(T, k, maxiter=max(50 * m, 1000))
    return weights
