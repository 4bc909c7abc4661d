r"""Probability bounds for random-feature errors, their inversions, and worst-case bounds.

Probabilistic bounds (each returns :math:`\min(1, \text{bound})`, and each has an inverse
giving the number of features that makes the bound at most :math:`\delta` for error
:math:`\varepsilon`):

- :func:`hoeffding_probability`: pointwise, Hoeffding's inequality.
- :func:`rahimi_recht_probability`: uniform over a compact set (Rahimi & Recht 2007, Claim 1).
- :func:`sutherland_schneider_probability`: the sharper uniform bounds of Sutherland &
  Schneider (UAI 2015) for the sin/cos and cos+offset maps.

Deterministic worst-case bounds :math:`|Q(f) - \int f| \le \|f\| \cdot D` (Koksma--Hlawka in
one dimension, Hilbert-space versions for the L2 discrepancies and the box discrepancy of
:mod:`kernelapprox.discrepancy`).

Notation for the uniform bounds: inputs in a compact :math:`\mathcal X \subset \mathbb R^d` of
diameter :math:`\ell`, :math:`\sigma_p^2 = E_p\|\omega\|^2` the second moment of the spectral
measure (:func:`gaussian_sigma_p`), :math:`D` the output dimension of the feature map.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from kernelapprox import discrepancy
from kernelapprox._validation import (
    check_choice,
    check_nonnegative_float,
    check_positive_float,
    check_positive_int,
    renamed_keywords,
)

__all__ = [
    "box_error_bound",
    "gaussian_sigma_p",
    "hoeffding_probability",
    "hoeffding_terms_needed",
    "koksma_hlawka_bound",
    "rahimi_recht_features_needed",
    "rahimi_recht_probability",
    "sutherland_schneider_features_needed",
    "sutherland_schneider_probability",
    "worst_case_bound",
]


def _check_probability(delta: Any, name: str = "delta") -> float:
    if isinstance(delta, bool) or not isinstance(delta, numbers.Real):
        raise TypeError(f"{name} must be a number in (0, 1), got {delta!r}")
    delta = float(delta)
    if not 0.0 < delta < 1.0:
        raise ValueError(f"{name} must be in (0, 1), got {delta}")
    return delta


def _features_for(prefactor: float, rate: float, delta: float) -> int:
    r"""Smallest integer :math:`D \ge 1` with :math:`A e^{-c D} \le \delta`."""
    if prefactor <= delta:
        return 1
    return max(1, math.ceil(math.log(prefactor / delta) / rate))


def gaussian_sigma_p(dim: int, length_scale: float = 1.0) -> float:
    r""":math:`\sigma_p = \sqrt{E\|\omega\|^2} = \sqrt d / \sigma` for the Gaussian kernel.

    The Gaussian kernel :math:`\exp(-\|\Delta\|^2 / (2\sigma^2))` has spectral measure
    :math:`N(0, \sigma^{-2} I_d)`, so :math:`\sigma_p^2 = E\|\omega\|^2 =
    |\mathrm{tr}\,\nabla^2 k(0)| = d/\sigma^2`.
    """
    d = check_positive_int(dim, "dim")
    sigma = check_positive_float(length_scale, "length_scale")
    return math.sqrt(d) / sigma


# --------------------------------------------------------------------------------------
# pointwise: Hoeffding
# --------------------------------------------------------------------------------------
def hoeffding_probability(eps: float, n_terms: int, *, term_range: float = 2.0) -> float:
    r"""Hoeffding bound on :math:`P(|\hat k - k| \ge \varepsilon)` at one pair of inputs.

    For the average of :math:`n` i.i.d. terms taking values in an interval of length
    :math:`r`,

    .. math::

        P(|\hat k - k| \ge \varepsilon) \le 2 \exp\!\left(-\frac{2 n \varepsilon^2}{r^2}\right)

    (Hoeffding 1963, Thm 2). Sin/cos map with :math:`D` outputs: :math:`n = D/2` terms
    :math:`\cos(\omega^\top\Delta) \in [-1, 1]` (:math:`r = 2`), so the bound is
    :math:`2 e^{-D\varepsilon^2/4}` (Rahimi & Recht 2007; Sutherland & Schneider 2015).
    Cos+offset map: :math:`n = D` terms :math:`2\cos(\cdot)\cos(\cdot) \in [-2, 2]`
    (:math:`r = 4`), :math:`2 e^{-D\varepsilon^2/8}`.

    Parameters
    ----------
    eps : float
        Error level :math:`\varepsilon > 0`.
    n_terms : int
        Number of i.i.d. terms averaged.
    term_range : float, default 2.0
        Length :math:`r` of the interval holding each term.
    """
    eps = check_positive_float(eps, "eps")
    n = check_positive_int(n_terms, "n_terms")
    r = check_positive_float(term_range, "term_range")
    return min(1.0, 2.0 * math.exp(-2.0 * n * eps**2 / r**2))


def hoeffding_terms_needed(eps: float, delta: float, *, term_range: float = 2.0) -> int:
    r"""Smallest :math:`n` with :func:`hoeffding_probability` :math:`\le \delta`.

    :math:`n = \lceil r^2 \log(2/\delta) / (2\varepsilon^2) \rceil` (for the sin/cos map the
    output dimension is :math:`D = 2n`).
    """
    eps = check_positive_float(eps, "eps")
    delta = _check_probability(delta)
    r = check_positive_float(term_range, "term_range")
    return _features_for(2.0, 2.0 * eps**2 / r**2, delta)


# --------------------------------------------------------------------------------------
# uniform bounds
# --------------------------------------------------------------------------------------
def _uniform_parts(eps: float, dim: int, sigma_p: float, diameter: float):
    eps = check_positive_float(eps, "eps")
    d = check_positive_int(dim, "dim")
    sp = check_positive_float(sigma_p, "sigma_p")
    ell = check_positive_float(diameter, "diameter")
    return eps, d, (sp * ell / eps) ** 2


@renamed_keywords({"n_frequencies": "n_features"})
def rahimi_recht_probability(
    eps: float, n_features: int, *, dim: int, sigma_p: float, diameter: float
) -> float:
    r"""Rahimi & Recht's uniform bound on P(sup over X of |k_hat - k| >= eps).

    .. math::

        2^8 \left(\frac{\sigma_p \ell}{\varepsilon}\right)^2
        \exp\!\left(-\frac{D \varepsilon^2}{4 (d + 2)}\right)

    (Rahimi & Recht, NIPS 2007, Claim 1; an :math:`\varepsilon`-net over :math:`\mathcal X`
    plus a Lipschitz bound on the error). Confidence in the constants: high (the reference
    notes mark them as recalled; this is the form quoted throughout the literature).

    **What D counts.** Here :math:`D` is the number of frequencies :math:`\omega_j`, i.e. the
    sin/cos map has :math:`2D` outputs. Read that way the exponent equals that of
    :func:`sutherland_schneider_probability` at :math:`2D` outputs
    (:math:`2D\varepsilon^2 / (8(d+2))`), and Sutherland & Schneider's bound is the sharper
    one (prefactor 66 vs :math:`2^8`), as they claim. Read with :math:`D` = output dimension,
    the exponent would be twice theirs, which their analysis does not support; so that
    reading would overstate the confidence.

    Parameters
    ----------
    eps : float
        Error level.
    n_features : int
        :math:`D`, the number of frequencies (sin/cos pairs; the package's ``m``). Its old
        name ``n_frequencies=`` still works until kernelapprox 0.2, with a
        ``DeprecationWarning``.
    dim : int
        Input dimension :math:`d`.
    sigma_p : float
        :math:`\sqrt{E_p\|\omega\|^2}` (:func:`gaussian_sigma_p`).
    diameter : float
        Diameter :math:`\ell` of the input set.
    """
    eps, d, ratio = _uniform_parts(eps, dim, sigma_p, diameter)
    D = check_positive_int(n_features, "n_features")
    return min(1.0, 2.0**8 * ratio * math.exp(-D * eps**2 / (4.0 * (d + 2))))


def rahimi_recht_features_needed(
    eps: float, delta: float, *, dim: int, sigma_p: float, diameter: float
) -> int:
    r"""Smallest number of frequencies D with :func:`rahimi_recht_probability` <= delta.

    :math:`D = \lceil \frac{4(d+2)}{\varepsilon^2}
    \log\frac{2^8 (\sigma_p\ell/\varepsilon)^2}{\delta} \rceil`, i.e.
    :math:`\Omega(\frac{d}{\varepsilon^2}\log\frac{\sigma_p \ell}{\varepsilon})`.
    """
    eps, d, ratio = _uniform_parts(eps, dim, sigma_p, diameter)
    delta = _check_probability(delta)
    return _features_for(2.0**8 * ratio, eps**2 / (4.0 * (d + 2)), delta)


#: (prefactor, denominator factor) of the Sutherland & Schneider bounds:
#: P <= A (sigma_p l / eps)^2 exp(-D eps^2 / (c (d + 2))).
_SS_CONSTANTS = {"sincos": (66.0, 8.0), "cos_offset": (98.0, 32.0)}


@renamed_keywords(
    {"n_features": "output_dim"},
    notes={
        "n_features": "Here it meant the output width D; everywhere else n_features is the "
        "number of frequencies m."
    },
)
def sutherland_schneider_probability(
    eps: float,
    output_dim: int,
    *,
    dim: int,
    sigma_p: float,
    diameter: float,
    map: str = "sincos",
) -> float:
    r"""Sutherland & Schneider's uniform bounds for the sin/cos and cos+offset maps.

    .. math::

        P\Bigl(\sup_{x, y \in \mathcal X} |\tilde z(x)^\top \tilde z(y) - k(x, y)| \ge
        \varepsilon\Bigr) \le 66 \left(\frac{\sigma_p\ell}{\varepsilon}\right)^2
        \exp\!\left(-\frac{D\varepsilon^2}{8(d + 2)}\right),

    .. math::

        P\Bigl(\sup_{x, y \in \mathcal X} |\breve z(x)^\top \breve z(y) - k(x, y)| \ge
        \varepsilon\Bigr) \le 98 \left(\frac{\sigma_p\ell}{\varepsilon}\right)^2
        \exp\!\left(-\frac{D\varepsilon^2}{32(d + 2)}\right),

    for :math:`D`-dimensional embeddings, a compact :math:`\mathcal X` of diameter
    :math:`\ell` and a kernel with :math:`\nabla^2 k(0)` defined (Sutherland & Schneider,
    "On the Error of Random Fourier Features", UAI 2015, Sec. 3, Propositions 1--2, as
    simplified there for :math:`\sigma_p\ell \ge \varepsilon`). Confidence in the constants
    66/8 and 98/32: medium. They come from the project's reference notes, which mark them
    as recalled; a search for the paper's text did not reach the statement, so they
    are not independently confirmed here.

    Parameters
    ----------
    output_dim : int
        Output dimension :math:`D` of the embedding (:math:`D/2` frequencies for sin/cos,
        :math:`D` for cos+offset). Its old name ``n_features=`` (the output width here,
        unlike everywhere else) still works until kernelapprox 0.2, with a
        ``DeprecationWarning``.
    eps, dim, sigma_p, diameter
        As in :func:`rahimi_recht_probability`.
    map : {"sincos", "cos_offset"}
        Which embedding.
    """
    map = check_choice(map, "map", _SS_CONSTANTS)
    eps, d, ratio = _uniform_parts(eps, dim, sigma_p, diameter)
    D = check_positive_int(output_dim, "output_dim")
    prefactor, c = _SS_CONSTANTS[map]
    return min(1.0, prefactor * ratio * math.exp(-D * eps**2 / (c * (d + 2))))


def sutherland_schneider_features_needed(
    eps: float,
    delta: float,
    *,
    dim: int,
    sigma_p: float,
    diameter: float,
    map: str = "sincos",
) -> int:
    r"""Smallest output dimension :math:`D` with :func:`sutherland_schneider_probability`
    :math:`\le \delta` (the sin/cos map needs :math:`D/2` frequencies)."""
    map = check_choice(map, "map", _SS_CONSTANTS)
    eps, d, ratio = _uniform_parts(eps, dim, sigma_p, diameter)
    delta = _check_probability(delta)
    prefactor, c = _SS_CONSTANTS[map]
    return _features_for(prefactor * ratio, eps**2 / (c * (d + 2)), delta)


# --------------------------------------------------------------------------------------
# deterministic worst-case bounds: norm x discrepancy
# --------------------------------------------------------------------------------------
def koksma_hlawka_bound(points: Any, *, variation: float) -> float:
    r"""Koksma's inequality in one dimension: :math:`V(f)\, D^*_n`.

    .. math::

        \left|\frac1n \sum_i f(x_i) - \int_0^1 f(x)\,dx\right| \le V(f)\, D^*_n(x_1, \dots, x_n)

    for :math:`f` of bounded variation :math:`V(f)` (Koksma 1942; Niederreiter 1992,
    Thm 2.9), with the exact star discrepancy :func:`~kernelapprox.discrepancy.star_discrepancy_1d`.

    Parameters
    ----------
    points : array_like, shape (n,) or (n, 1)
        Points in :math:`[0, 1]`.
    variation : float
        Total variation :math:`V(f) \ge 0` (e.g. :math:`\int_0^1 |f'|` for smooth :math:`f`).
    """
    v = check_nonnegative_float(variation, "variation")
    return v * discrepancy.star_discrepancy_1d(points)


_L2_DISCREPANCIES = {
    "l2_star": discrepancy.l2_star,
    "centered": discrepancy.centered,
    "wrap_around": discrepancy.wrap_around,
}


def worst_case_bound(
    points: Any, *, norm: float, kind: str = "centered", weights: Any = None
) -> float:
    r"""Hilbert-space Koksma--Hlawka bound :math:`\|f\|_K \, D_K` on the unit cube.

    .. math::

        \Bigl|\sum_i \xi_i f(x_i) - \int_{[0,1]^d} f\Bigr| \le \|f\|_K\, D_K(P, \xi),

    Cauchy--Schwarz applied to the representer of the error functional in the RKHS of the
    discrepancy's kernel (Hickernell 1998, Math. Comp. 67, Thm 3.1); equality holds for the
    representer itself.

    Parameters
    ----------
    points : array_like, shape (n, d)
        Points in the unit cube.
    norm : float
        :math:`\|f\|_K` in the RKHS of ``kind``'s kernel (for ``"centered"`` and
        ``"l2_star"`` a norm built from mixed first derivatives, Hickernell 1998, Eq. 3.6).
    kind : {"l2_star", "centered", "wrap_around"}
        Which discrepancy (:mod:`kernelapprox.discrepancy`).
    weights : array_like, shape (n,), optional
        Cubature weights; default :math:`1/n`.
    """
    kind = check_choice(kind, "kind", _L2_DISCREPANCIES)
    return check_nonnegative_float(norm, "norm") * _L2_DISCREPANCIES[kind](points, weights=weights)


def box_error_bound(
    frequencies: Any, *, norm: float, scale: Any, b: Any, weights: Any = None
) -> float:
    r"""Box-discrepancy bound :math:`\|f\|_{PW_b}\, D^{\square b}` on a frequency integral.

    .. math::

        \Bigl|\sum_l \xi_l f(\omega_l) - \int f(\omega)\,p(\omega)\,d\omega\Bigr|
        \le \|f\|_{PW_b}\, D^{\square b}(S, \xi)

    for every :math:`f` in the Paley--Wiener space :math:`PW_b` (Avron, Sindhwani, Yang &
    Mahoney, JMLR 17, 2016, Sec. 3.2), with :math:`p = N(0, \mathrm{diag}(s^2))` and
    :func:`~kernelapprox.discrepancy.box`.
    """
    return check_nonnegative_float(norm, "norm") * discrepancy.box(
        frequencies, scale=scale, b=b, weights=weights
    )
