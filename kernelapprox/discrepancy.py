r"""Discrepancies of point sets: how far a (weighted) cubature rule is from exact integration.

Every discrepancy here is the worst-case error of a cubature rule
:math:`Q(f) = \sum_i \xi_i f(x_i)` over the unit ball of a reproducing-kernel Hilbert space
with kernel :math:`K` (Hickernell 1998, "A generalized discrepancy and quadrature error
bound", Math. Comp. 67, Eq. 3.8):

.. math::

    D^2 = \iint K(x, y)\,d\mu(x)\,d\mu(y) - 2 \sum_i \xi_i \int K(x_i, y)\,d\mu(y)
          + \sum_{i,j} \xi_i \xi_j K(x_i, x_j),

so that :math:`|Q(f) - \int f\,d\mu| \le D \, \|f\|_K` (Cauchy--Schwarz on the representer of
the error functional). Equal weights :math:`\xi_i = 1/n` give the classical formulas.

On the unit cube (:math:`\mu` uniform):

- :func:`l2_star`: :math:`K = \prod_k \min(1 - x_k, 1 - y_k)`; Warnock's formula.
- :func:`centered`: Hickernell's centered L2 discrepancy.
- :func:`wrap_around`: Hickernell's wrap-around (periodic) L2 discrepancy.
- :func:`star_discrepancy_1d`: the exact (sup-norm) star discrepancy in one dimension.

On frequency space (:math:`\mu = p = N(0, \mathrm{diag}(s^2))`):

- :func:`box`: the box discrepancy of Avron, Sindhwani, Yang & Mahoney (JMLR 17, 2016,
  arXiv:1412.8293), whose kernel is the reproducing kernel of the Paley--Wiener space of
  functions band-limited to the box :math:`\square b = \prod_j [-b_j, b_j]`;
  :func:`box_gram`, :func:`box_mean_embedding` and :func:`box_constant` are its three pieces.

The double sum costs :math:`O(n^2 d)` time but only :math:`O(\text{chunk} \cdot n)` memory:
rows are processed in blocks and each row's sum is formed in full before the rows are
combined, so the result does not depend on the block size (bit for bit).

scipy's :func:`scipy.stats.qmc.discrepancy` returns the *square* for ``"CD"`` and ``"WD"``
but the root for ``"L2-star"``; every function here returns the discrepancy itself, or its
square with ``squared=True``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from scipy import special

from kernelapprox._validation import as_data_array, as_finite_array, check_bool, check_positive_int

__all__ = [
    "box",
    "box_constant",
    "box_gram",
    "box_mean_embedding",
    "centered",
    "l2_star",
    "star_discrepancy_1d",
    "wrap_around",
]

#: Elements (rows x columns) of one block of the double sum: 2**22 float64 = 32 MiB.
_BLOCK_ELEMENTS = 2**22

PairFactor = Callable[[np.ndarray, np.ndarray, int], np.ndarray]


# --------------------------------------------------------------------------------------
# input checks
# --------------------------------------------------------------------------------------
def _as_points(points: Any, name: str = "points", *, unit_cube: bool = True) -> np.ndarray:
    arr = as_data_array(points, name)
    if unit_cube and (arr.min() < 0.0 or arr.max() > 1.0):
        raise ValueError(
            f"{name} must lie in the unit cube [0, 1]^d; got values in "
            f"[{arr.min():.6g}, {arr.max():.6g}]"
        )
    return arr


def _as_weights(weights: Any, n: int, name: str = "weights") -> np.ndarray:
    """Non-negative finite weights of length ``n``; ``None`` means ``1/n`` each."""
    if weights is None:
        return np.full(n, 1.0 / n)
    w = as_finite_array(weights, name, shape_hint=f" of shape ({n},)")
    if w.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},) (one weight per point), got {w.shape}")
    if np.any(w < 0.0):
        raise ValueError(f"{name} must be non-negative, got minimum {w.min():.6g}")
    return w


def _per_coordinate(value: Any, name: str, d: int) -> np.ndarray:
    """A positive scalar or a length-``d`` vector of positive numbers, as a ``(d,)`` array."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be a positive number or an array of shape ({d},)")
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"{name} must be a positive number or an array of shape ({d},): {exc}"
        ) from None
    if arr.ndim == 0:
        arr = np.full(d, float(arr))
    if arr.shape != (d,):
        raise ValueError(f"{name} must be a scalar or have shape ({d},), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0.0):
        raise ValueError(f"{name} must be finite and > 0 in every coordinate, got {arr}")
    return arr


def _check_chunk(chunk_size: int | None, n: int) -> int:
    if chunk_size is None:
        return max(1, min(n, _BLOCK_ELEMENTS // max(1, n)))
    return min(n, check_positive_int(chunk_size, "chunk_size"))


# --------------------------------------------------------------------------------------
# the generic kernel discrepancy
# --------------------------------------------------------------------------------------
def _weighted_double_sum(
    points: np.ndarray, weights: np.ndarray, pair_factor: PairFactor, chunk_size: int | None
) -> float:
    r""":math:`\sum_{i,j} \xi_i \xi_j \prod_k g_k(x_{ik}, x_{jk})`, in row blocks.

    ``pair_factor(a, b, k)`` returns :math:`g_k` on the broadcast of ``a`` (rows of a block,
    shape (c, 1)) against ``b`` (all points, shape (1, n)). Each row sum is complete before
    the rows are combined, so the result is identical for every ``chunk_size``.
    """
    n, d = points.shape
    rows = _check_chunk(chunk_size, n)
    row_sums = np.empty(n)
    for start in range(0, n, rows):
        stop = min(n, start + rows)
        block = np.ones((stop - start, n))
        for k in range(d):
            block *= pair_factor(points[start:stop, k, None], points[None, :, k], k)
        # a per-row reduction (not BLAS gemv, whose rounding depends on the block shape)
        row_sums[start:stop] = np.sum(block * weights, axis=1)
    return float(weights @ row_sums)


def _finish(squared_value: float, squared: bool) -> float:
    # D^2 >= 0 exactly (K is positive semi-definite); a negative value is rounding in the
    # cancellation between the three terms, so it is reported as 0.
    value = max(squared_value, 0.0)
    return value if squared else float(np.sqrt(value))


def l2_star(
    points: Any, *, weights: Any = None, squared: bool = False, chunk_size: int | None = None
) -> float:
    r"""L2-star discrepancy of a (weighted) point set in :math:`[0, 1]^d` (Warnock 1972).

    .. math::

        D^2 = 3^{-d} - 2 \sum_i \xi_i \prod_k \frac{1 - x_{ik}^2}{2}
              + \sum_{i,j} \xi_i \xi_j \prod_k \bigl(1 - \max(x_{ik}, x_{jk})\bigr),

    the kernel discrepancy for :math:`K(x, y) = \prod_k \min(1 - x_k, 1 - y_k)`; with
    :math:`\xi_i = 1/n` it is Warnock's formula (scipy ``qmc.discrepancy(method="L2-star")``,
    which returns :math:`D`).

    Parameters
    ----------
    points : array_like, shape (n, d)
        Points in the closed unit cube.
    weights : array_like, shape (n,), optional
        Non-negative cubature weights :math:`\xi`; default :math:`1/n` each.
    squared : bool, default False
        Return :math:`D^2` instead of :math:`D`.
    chunk_size : int, optional
        Rows per block of the :math:`O(n^2 d)` double sum (default: 32 MiB blocks). The result
        does not depend on it.

    Examples
    --------
    >>> round(l2_star([[1.0, 1.0]]), 12)  # a single point at the far corner: sqrt(3**-2)
    0.333333333333
    """
    squared = check_bool(squared, "squared")
    x = _as_points(points)
    n, d = x.shape
    w = _as_weights(weights, n)
    constant = 3.0 ** (-d)
    embedding = np.prod((1.0 - x**2) / 2.0, axis=1)
    double = _weighted_double_sum(x, w, lambda a, b, k: 1.0 - np.maximum(a, b), chunk_size)
    return _finish(constant - 2.0 * float(w @ embedding) + double, squared)


def centered(
    points: Any, *, weights: Any = None, squared: bool = False, chunk_size: int | None = None
) -> float:
    r"""Centered L2 discrepancy of a (weighted) point set in :math:`[0, 1]^d` (Hickernell 1998).

    With :math:`c_{ik} = |x_{ik} - 1/2|`,

    .. math::

        D^2 = \left(\tfrac{13}{12}\right)^d
              - 2 \sum_i \xi_i \prod_k \left(1 + \tfrac12 c_{ik} - \tfrac12 c_{ik}^2\right)
              + \sum_{i,j} \xi_i \xi_j \prod_k
                \left(1 + \tfrac12 c_{ik} + \tfrac12 c_{jk} - \tfrac12 |x_{ik} - x_{jk}|\right),

    the kernel discrepancy for :math:`K(x, y) = \prod_k (1 + \frac12|x_k - \frac12| +
    \frac12|y_k - \frac12| - \frac12|x_k - y_k|)`; scipy ``qmc.discrepancy(method="CD")``
    returns :math:`D^2` for equal weights. Parameters as in :func:`l2_star`.

    Examples
    --------
    >>> design = (2 * np.array([[1, 3], [2, 6], [3, 2], [4, 5], [5, 1], [6, 4]]) - 1) / 12
    >>> round(centered(design, squared=True), 6)  # Fang et al. (2006): 0.0081
    0.008142
    """
    squared = check_bool(squared, "squared")
    x = _as_points(points)
    n, d = x.shape
    w = _as_weights(weights, n)
    c = np.abs(x - 0.5)
    constant = (13.0 / 12.0) ** d
    embedding = np.prod(1.0 + 0.5 * c - 0.5 * c**2, axis=1)

    def factor(a: np.ndarray, b: np.ndarray, k: int) -> np.ndarray:
        return 1.0 + 0.5 * np.abs(a - 0.5) + 0.5 * np.abs(b - 0.5) - 0.5 * np.abs(a - b)

    double = _weighted_double_sum(x, w, factor, chunk_size)
    return _finish(constant - 2.0 * float(w @ embedding) + double, squared)


def wrap_around(
    points: Any, *, weights: Any = None, squared: bool = False, chunk_size: int | None = None
) -> float:
    r"""Wrap-around L2 discrepancy of a (weighted) point set in :math:`[0, 1]^d` (Hickernell 1998).

    The kernel :math:`K(x, y) = \prod_k \bigl(\tfrac32 - |x_k - y_k|(1 - |x_k - y_k|)\bigr)`
    is shift-invariant on the torus, so :math:`\int K(x, y)\,dy = (4/3)^d` for every
    :math:`x` and

    .. math::

        D^2 = \left(\tfrac43\right)^d \Bigl(1 - 2 \sum_i \xi_i\Bigr)
              + \sum_{i,j} \xi_i \xi_j \prod_k
                \bigl(\tfrac32 - |x_{ik} - x_{jk}|(1 - |x_{ik} - x_{jk}|)\bigr);

    for weights summing to one the first term is :math:`-(4/3)^d` (scipy
    ``qmc.discrepancy(method="WD")`` returns this :math:`D^2`). Parameters as in
    :func:`l2_star`.
    """
    squared = check_bool(squared, "squared")
    x = _as_points(points)
    n, d = x.shape
    w = _as_weights(weights, n)

    def factor(a: np.ndarray, b: np.ndarray, k: int) -> np.ndarray:
        gap = np.abs(a - b)
        return 1.5 - gap * (1.0 - gap)

    double = _weighted_double_sum(x, w, factor, chunk_size)
    return _finish((4.0 / 3.0) ** d * (1.0 - 2.0 * float(w.sum())) + double, squared)


def star_discrepancy_1d(points: Any) -> float:
    r"""Exact star discrepancy of ``n`` points in :math:`[0, 1]` (Niederreiter 1992, Thm 2.6).

    .. math::

        D^*_n = \sup_{t \in [0, 1]} \left| \frac{\#\{i : x_i < t\}}{n} - t \right|
              = \frac{1}{2n} + \max_{1 \le i \le n} \left| x_{(i)} - \frac{2i - 1}{2n} \right|,

    with :math:`x_{(i)}` the sorted points. Koksma's inequality
    :math:`|\frac1n \sum_i f(x_i) - \int_0^1 f| \le V(f)\, D^*_n` then holds for every
    :math:`f` of bounded variation :math:`V(f)`.

    Parameters
    ----------
    points : array_like, shape (n,) or (n, 1)
        Points in :math:`[0, 1]`.

    Examples
    --------
    >>> star_discrepancy_1d([0.5])
    0.5
    >>> star_discrepancy_1d([0.125, 0.375, 0.625, 0.875])  # centred grid: 1/(2n)
    0.125
    """
    arr = (
        np.asarray(points, dtype=np.float64)
        if not hasattr(points, "detach")
        else points.detach().cpu().numpy().astype(np.float64)
    )
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise ValueError(f"points must have shape (n,) or (n, 1), got shape {arr.shape}")
    x = _as_points(arr[:, None])[:, 0]
    n = x.size
    centres = (2.0 * np.arange(1, n + 1) - 1.0) / (2.0 * n)
    return float(1.0 / (2.0 * n) + np.max(np.abs(np.sort(x) - centres)))


# --------------------------------------------------------------------------------------
# box discrepancy (Avron, Sindhwani, Yang & Mahoney 2016)
# --------------------------------------------------------------------------------------
def _sinc_b(diff: np.ndarray, b: float) -> np.ndarray:
    r""":math:`\sin(b u) / (\pi u)`, equal to :math:`b/\pi` at :math:`u = 0`."""
    return (b / np.pi) * np.sinc(diff * (b / np.pi))


def box_gram(frequencies: Any, *, b: Any) -> np.ndarray:
    r"""Gram matrix :math:`G_{lj} = \mathrm{sinc}_b(\omega_l, \omega_j)` of the box kernel.

    .. math::

        \mathrm{sinc}_b(u, v) = \prod_{k=1}^d \frac{\sin(b_k (u_k - v_k))}{\pi (u_k - v_k)}
                              = (2\pi)^{-d} \int_{\square b} e^{i t^\top (u - v)}\,dt,

    the reproducing kernel of the Paley--Wiener space :math:`PW_b` of :math:`L^2` functions
    whose Fourier transform is supported in :math:`\square b = \prod_k [-b_k, b_k]` (Avron et
    al. 2016, Sec. 3.1; Peloso 2011). Symmetric positive semi-definite.

    Parameters
    ----------
    frequencies : array_like, shape (m, d)
        Nodes :math:`\omega_l`.
    b : float or array_like, shape (d,)
        Half-widths of the box (in the units of the input differences :math:`x - y`).

    Returns
    -------
    ndarray, shape (m, m)
    """
    w = _as_points(frequencies, "frequencies", unit_cube=False)
    half = _per_coordinate(b, "b", w.shape[1])
    gram = np.ones((w.shape[0], w.shape[0]))
    for k in range(w.shape[1]):
        gram *= _sinc_b(w[:, k, None] - w[None, :, k], half[k])
    return gram


def _box_mean_embedding_1d(w: np.ndarray, s: float, b: float) -> np.ndarray:
    r"""Closed form of :math:`\int \mathrm{sinc}_b(w, v)\, N(v; 0, s^2)\,dv` in one dimension.

    It equals :math:`\frac1\pi \int_0^b \cos(t w) e^{-s^2 t^2/2}\,dt`; completing the square
    and writing :math:`\mathrm{erf}(z) = 1 - e^{-z^2}\,\mathrm{w}(iz)` (Faddeeva function
    :func:`scipy.special.wofz`, bounded in the upper half plane) gives the overflow-free form

    .. math::

        \frac{1}{\sqrt{2\pi}\,s}\,\mathrm{Re}\Bigl[e^{-w^2/(2s^2)}
          - e^{-s^2 b^2/2 - i b w}\,
            \mathrm{w}\Bigl(-\frac{w}{\sqrt2\,s} + i\,\frac{s b}{\sqrt2}\Bigr)\Bigr].
    """
    z = -w / (np.sqrt(2.0) * s) + 1j * (s * b / np.sqrt(2.0))
    tail = np.exp(-0.5 * (s * b) ** 2 - 1j * b * w) * special.wofz(z)
    return (np.exp(-0.5 * (w / s) ** 2) - tail.real) / (np.sqrt(2.0 * np.pi) * s)


def box_mean_embedding(frequencies: Any, *, scale: Any, b: Any) -> np.ndarray:
    r"""Kernel mean embedding :math:`\beta_l = \int \mathrm{sinc}_b(\omega_l, v)\, p(v)\,dv`.

    For :math:`p = N(0, \mathrm{diag}(s^2))` it factorises over coordinates, and in each

    .. math::

        \int \frac{\sin(b(w - v))}{\pi (w - v)} \frac{e^{-v^2/(2s^2)}}{\sqrt{2\pi}s}\,dv
        = \frac{1}{\pi}\int_0^b \cos(t w)\, e^{-s^2 t^2/2}\,dt
        = \frac{e^{-w^2/(2s^2)}}{\sqrt{2\pi}\,s}\,
          \mathrm{Re}\,\mathrm{erf}\!\Bigl(\frac{s b}{\sqrt2} + i\frac{w}{\sqrt2\, s}\Bigr)

    (Avron et al. 2016, Sec. 3.2, for a Gaussian density); evaluated through the Faddeeva
    function so that large :math:`|w|` or :math:`s b` neither overflows nor cancels.

    Parameters
    ----------
    frequencies : array_like, shape (m, d)
        Nodes :math:`\omega_l`.
    scale : float or array_like, shape (d,)
        Per-coordinate standard deviation :math:`s` of :math:`p` (for a Gaussian kernel of
        length scale :math:`\sigma`, :math:`s = 1/\sigma`).
    b : float or array_like, shape (d,)
        Box half-widths.

    Returns
    -------
    ndarray, shape (m,)
    """
    w = _as_points(frequencies, "frequencies", unit_cube=False)
    d = w.shape[1]
    s = _per_coordinate(scale, "scale", d)
    half = _per_coordinate(b, "b", d)
    out = np.ones(w.shape[0])
    for k in range(d):
        out *= _box_mean_embedding_1d(w[:, k], s[k], half[k])
    return out


def box_constant(*, scale: Any, b: Any, dim: int) -> float:
    r"""The constant term :math:`\iint \mathrm{sinc}_b(u, v)\, p(u) p(v)\,du\,dv`.

    .. math::

        (2\pi)^{-d} \int_{\square b} |\varphi_p(t)|^2\,dt
        = \prod_{k=1}^d \frac{\mathrm{erf}(b_k s_k)}{2\sqrt\pi\, s_k},

    with :math:`\varphi_p(t) = e^{-\sum_k s_k^2 t_k^2 / 2}` the characteristic function of
    :math:`p = N(0, \mathrm{diag}(s^2))`.

    Parameters
    ----------
    scale, b : float or array_like, shape (dim,)
        As in :func:`box_mean_embedding`.
    dim : int
        Dimension :math:`d`.
    """
    d = check_positive_int(dim, "dim")
    s = _per_coordinate(scale, "scale", d)
    half = _per_coordinate(b, "b", d)
    return float(np.prod(special.erf(half * s) / (2.0 * np.sqrt(np.pi) * s)))


def box(
    frequencies: Any,
    *,
    scale: Any,
    b: Any,
    weights: Any = None,
    squared: bool = False,
    chunk_size: int | None = None,
) -> float:
    r"""Box discrepancy of weighted frequencies for a Gaussian spectral measure.

    For the rule :math:`\int f(\omega) p(\omega)\,d\omega \approx \sum_l \xi_l f(\omega_l)`
    with :math:`p = N(0, \mathrm{diag}(s^2))` (Avron, Sindhwani, Yang & Mahoney, JMLR 17,
    2016, Sec. 3.2, Eq. for :math:`D^{\square b}`),

    .. math::

        D^{\square b}(S, \xi)^2 = c - 2 \xi^\top \beta + \xi^\top G \xi,

    :math:`c` = :func:`box_constant`, :math:`\beta` = :func:`box_mean_embedding`, :math:`G` =
    :func:`box_gram`. It bounds the integration error of every :math:`f` in the
    Paley--Wiener space :math:`PW_b` by :math:`D \|f\|_{PW_b}`; the random-feature integrand
    :math:`\omega \mapsto e^{i\omega^\top(x - y)}` is (a limit of) such functions when
    :math:`x - y \in \square b`. Uniform weights :math:`\xi_l = 1/m` give the unweighted box
    discrepancy.

    Parameters
    ----------
    frequencies : array_like, shape (m, d)
        Nodes :math:`\omega_l` (any real values).
    scale : float or array_like, shape (d,)
        Per-coordinate standard deviation :math:`s` of :math:`p`.
    b : float or array_like, shape (d,)
        Box half-widths.
    weights : array_like, shape (m,), optional
        Non-negative weights :math:`\xi`; default :math:`1/m`.
    squared : bool, default False
        Return :math:`D^2`.
    chunk_size : int, optional
        Rows per block of the double sum (the result does not depend on it).
    """
    squared = check_bool(squared, "squared")
    w = _as_points(frequencies, "frequencies", unit_cube=False)
    m, d = w.shape
    xi = _as_weights(weights, m)
    half = _per_coordinate(b, "b", d)
    constant = box_constant(scale=scale, b=half, dim=d)
    beta = box_mean_embedding(w, scale=scale, b=half)
    double = _weighted_double_sum(w, xi, lambda a, c, k: _sinc_b(a - c, half[k]), chunk_size)
    return _finish(constant - 2.0 * float(xi @ beta) + double, squared)
