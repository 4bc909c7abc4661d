"""Assertion that a Gram matrix is symmetric (Hermitian) positive semi-definite."""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import Any

import numpy as np

from kernelapprox.testing._arrays import machine_epsilon, to_numpy

__all__ = ["assert_psd_gram"]

#: Default tolerance factor: ``rtol = PSD_RTOL_FACTOR * n * eps`` of the Gram's dtype.
PSD_RTOL_FACTOR = 10.0


def assert_psd_gram(
    gram_or_fn: Any | Callable[[Any], Any],
    X: Any = None,
    *,
    rtol: float | None = None,
) -> np.ndarray:
    r"""Assert that a Gram matrix is Hermitian positive semi-definite, up to rounding.

    Every kernel Gram matrix :math:`G_{ij} = k(x_i, x_j)` of a positive-definite kernel, and
    every random-feature estimate :math:`\Phi\Phi^\ast`, satisfies
    :math:`G = G^\ast` and :math:`\lambda_{\min}(G) \ge 0`. In floating point both hold up to
    rounding of order :math:`n\,\varepsilon\,\|G\|`, so the checks are

    .. math:: \max_{ij}|G_{ij} - \overline{G_{ji}}| \le r \max_{ij}|G_{ij}|, \qquad
              \lambda_{\min}\bigl(\tfrac12(G + G^\ast)\bigr) \ge -r \max_k |\lambda_k|,

    with :math:`r` = ``rtol`` (default :math:`10\,n\,\varepsilon` of the Gram's dtype; the
    eigenvalues come from :func:`numpy.linalg.eigvalsh` in float64).

    Parameters
    ----------
    gram_or_fn : array_like, tensor or callable
        The ``(n, n)`` Gram matrix, or a function ``X -> Gram`` (e.g. a kernel, or
        ``feature_map.gram``) evaluated on ``X``.
    X : array_like or tensor, optional
        Inputs for a callable ``gram_or_fn``.
    rtol : float, optional
        Relative tolerance :math:`r` (see above).

    Returns
    -------
    ndarray
        The eigenvalues of the Hermitian part, ascending.

    Raises
    ------
    AssertionError
        When the matrix is not square, not finite, not Hermitian, or has an eigenvalue below
        the tolerance (the message gives the smallest eigenvalue against the largest).

    Examples
    --------
    >>> import numpy as np
    >>> from kernelapprox import kernels
    >>> from kernelapprox.testing import assert_psd_gram
    >>> X = np.random.default_rng(0).normal(size=(20, 3))
    >>> eigenvalues = assert_psd_gram(kernels.Gaussian(1.0), X)
    >>> bool(eigenvalues[-1] > 1.0)
    True
    >>> assert_psd_gram(np.array([[1.0, 2.0], [2.0, 1.0]]))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    AssertionError: assert_psd_gram: smallest eigenvalue -1 < ...
    """
    if callable(gram_or_fn):
        if X is None:
            raise ValueError("X is required when gram_or_fn is a function X -> Gram")
        gram = gram_or_fn(X)
    else:
        gram = gram_or_fn
    eps = machine_epsilon(gram)
    G = to_numpy(gram, "gram")
    if G.ndim != 2 or G.shape[0] != G.shape[1] or G.shape[0] == 0:
        raise AssertionError(f"assert_psd_gram: a Gram matrix is square (n, n); got {G.shape}")
    if not np.all(np.isfinite(G)):
        raise AssertionError("assert_psd_gram: the Gram matrix contains NaN or infinite values")
    n = G.shape[0]
    if rtol is None:
        r = PSD_RTOL_FACTOR * n * eps
    else:
        if isinstance(rtol, bool) or not isinstance(rtol, numbers.Real):
            raise TypeError(f"rtol must be a number >= 0, got {rtol!r}")
        r = float(rtol)
        if not np.isfinite(r) or r < 0:
            raise ValueError(f"rtol must be finite and >= 0, got {rtol}")
    scale = float(np.max(np.abs(G)))
    asymmetry = float(np.max(np.abs(G - np.conj(G).T)))
    if asymmetry > r * scale:
        i, j = np.unravel_index(np.argmax(np.abs(G - np.conj(G).T)), G.shape)
        raise AssertionError(
            f"assert_psd_gram: not Hermitian: |G[{i}, {j}] - conj(G[{j}, {i}])| = "
            f"{asymmetry:.3g} > {r:.3g} * max|G| = {r * scale:.3g}"
        )
    eigenvalues = np.linalg.eigvalsh(0.5 * (G + np.conj(G).T))
    limit = r * float(np.max(np.abs(eigenvalues)))
    if eigenvalues[0] < -limit:
        raise AssertionError(
            f"assert_psd_gram: smallest eigenvalue {eigenvalues[0]:.6g} < -{limit:.6g} "
            f"(rtol {r:.3g} times the largest |eigenvalue| {np.max(np.abs(eigenvalues)):.6g}); "
            f"{int(np.sum(eigenvalues < -limit))} of {n} eigenvalues are negative"
        )
    return eigenvalues
