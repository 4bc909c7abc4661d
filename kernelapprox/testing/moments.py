r"""Statistical assertions on random feature maps: unbiasedness and variance.

Both helpers draw ``n_draws`` independent feature maps, estimate a moment of the Gram estimate
:math:`\hat K_{ij} = \mathrm{Re}\,\phi(x_i)^\top\overline{\phi(y_j)}` entry by entry, and
compare it with a reference (the kernel, or an analytic variance) on the scale of the moment's
own standard error.

The feature factory
-------------------
``make_features(seed)`` is called once per draw with an independent integer seed in
``[0, 2**32)`` (from ``numpy.random.SeedSequence(seed).spawn``, so draws never share a
stream; the integer suits ``torch.manual_seed``, ``numpy.random.default_rng`` and
:func:`kernelapprox.features.make`). It returns either

* one callable ``phi`` with ``phi(X) -> features`` of shape ``(n, m)``, applied to both
  arguments, or
* a pair ``(phi_x, phi_y)`` for asymmetric maps (e.g. Performer's separate query and key
  features), applied to ``X`` and to ``Y`` respectively.

Features may be numpy arrays or torch tensors, real or complex, of any float dtype; they are
converted to float64/complex128 before the product, so the helpers test the map rather than
the matrix product. A function of ``(X, seed)`` fits with ``lambda s: lambda X: f(X, s)``.

The threshold
-------------
An entry fails when :math:`|\hat\theta_{ij} - \theta_{ij}| > z^\ast\,\mathrm{SE}_{ij}
+ \tau_{ij}`. With ``correction="bonferroni"`` (default), :math:`z^\ast` is the Student-t
quantile (``n_draws - 1`` degrees of freedom) whose two-sided tail probability is that of
``n_sigma`` normal standard errors divided by the number of entries ``N``: the probability
that *some* entry of a correct implementation fails is then about the probability that *one*
normal variable exceeds ``n_sigma`` (5.7e-7 for 5). With ``correction="none"`` every entry is
tested at ``n_sigma`` on the t scale. :math:`\tau_{ij}` is a rounding allowance
(``numerical_rtol`` times the Cauchy-Schwarz bound :math:`|\phi(x_i)|\,|\phi(y_j)|`), so
entries whose estimate does not vary (zero standard error) must match to rounding.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from kernelapprox._validation import check_choice, check_positive_float, check_positive_int, spawn
from kernelapprox.estimators.replications import mean_and_se, variance_and_se
from kernelapprox.testing._arrays import machine_epsilon, n_rows, to_numpy

__all__ = ["MomentCheck", "assert_unbiased", "assert_variance_matches", "family_threshold"]

#: Rounding allowance, in units of the feature dtype's machine epsilon, times |phi(x)||phi(y)|.
NUMERICAL_RTOL_EPS = 256.0


def family_threshold(
    n_sigma: float, n_tests: int, n_draws: int, *, correction: str = "bonferroni"
) -> float:
    r"""The critical value :math:`z^\ast` that every entry's standardized error is held to.

    .. math:: z^\ast = t_{R-1}^{-1}\Bigl(1 - \frac{\alpha}{2N}\Bigr),
              \qquad \alpha = 2\,\bar\Phi(n_\sigma),

    with :math:`R` = ``n_draws``, :math:`N` = ``n_tests`` (1 with ``correction="none"``) and
    :math:`\bar\Phi` the standard normal tail (Bonferroni: the family-wise false-alarm
    probability is at most :math:`\alpha`; the t quantile accounts for the estimated standard
    error).

    Examples
    --------
    >>> round(family_threshold(5.0, 1, 10**6), 3)
    5.0
    >>> round(family_threshold(5.0, 100, 200), 2)
    6.09
    """
    n_sigma = check_positive_float(n_sigma, "n_sigma")
    n_tests = check_positive_int(n_tests, "n_tests")
    n_draws = check_positive_int(n_draws, "n_draws", minimum=2)
    check_choice(correction, "correction", ("bonferroni", "none"))
    alpha = 2.0 * stats.norm.sf(n_sigma)
    if correction == "bonferroni":
        alpha /= n_tests
    return float(stats.t.isf(alpha / 2.0, df=n_draws - 1))


@dataclass(frozen=True)
class MomentCheck:
    """The outcome of :func:`assert_unbiased` or :func:`assert_variance_matches`.

    Attributes
    ----------
    quantity : str
        ``"mean"`` or ``"variance"``: which moment of :math:`\\hat K` was checked.
    estimate, stderr, reference : ndarray, shape (n_x, n_y)
        The moment estimated from the draws, its standard error, and the reference value
        (kernel or analytic variance).
    z : ndarray, shape (n_x, n_y)
        The difference beyond the rounding allowance in standard errors,
        ``sign(diff) * max(|diff| - rounding, 0) / stderr`` (``+-inf`` where the standard
        error is 0 and the difference exceeds the allowance); an entry fails when
        ``|z| > threshold``.
    tolerance : ndarray, shape (n_x, n_y)
        The allowed absolute difference ``threshold * stderr + rounding``.
    threshold : float
        The critical value :math:`z^\\ast` (see :func:`family_threshold`).
    n_draws : int
        Number of independent feature maps drawn.
    """

    quantity: str
    estimate: np.ndarray
    stderr: np.ndarray
    reference: np.ndarray
    z: np.ndarray
    tolerance: np.ndarray
    threshold: float
    n_draws: int

    @property
    def failing(self) -> np.ndarray:
        """Boolean mask of the entries outside their tolerance."""
        return np.abs(self.estimate - self.reference) > self.tolerance

    @property
    def passed(self) -> bool:
        return not bool(self.failing.any())

    @property
    def worst(self) -> tuple[int, int]:
        """The entry with the largest difference relative to its tolerance."""
        excess = np.abs(self.estimate - self.reference) / np.maximum(self.tolerance, 1e-300)
        return tuple(int(i) for i in np.unravel_index(np.argmax(excess), excess.shape))

    def report(self) -> str:
        """A readable account of the check: how many entries fail and the worst one."""
        i, j = self.worst
        n_fail, n = int(self.failing.sum()), self.estimate.size
        name = "kernel" if self.quantity == "mean" else "analytic variance"
        what = "the estimate's mean" if self.quantity == "mean" else "the estimate's variance"
        return (
            f"{n_fail} of {n} entries: {what} differs from the {name} by more than "
            f"{self.threshold:.2f} standard errors (n_draws={self.n_draws}).\n"
            f"worst entry ({i}, {j}): {self.quantity} {self.estimate[i, j]:.6g} "
            f"+- {self.stderr[i, j]:.3g} (SE), {name} {self.reference[i, j]:.6g}, "
            f"difference {self.estimate[i, j] - self.reference[i, j]:+.3g}, "
            f"z = {self.z[i, j]:+.1f} (allowed |difference| {self.tolerance[i, j]:.3g})"
        )


def _check_factory(make_features: Any) -> None:
    if not callable(make_features):
        raise TypeError(
            "make_features must be a callable seed -> phi (or seed -> (phi_x, phi_y)), got "
            f"{type(make_features).__name__}"
        )


def _features(phi: Callable[[Any], Any], X: Any, rows: int, label: str, draw: int) -> tuple:
    out = phi(X)
    eps = machine_epsilon(out)
    arr = to_numpy(out, label)
    if arr.ndim != 2 or arr.shape[0] != rows:
        raise ValueError(
            f"{label} must have shape ({rows}, m) (one row of features per input row), got "
            f"{arr.shape} at draw {draw}"
        )
    if not np.all(np.isfinite(arr)):
        raise AssertionError(f"{label} contains NaN or infinite values at draw {draw}")
    return arr, eps


def _gram_draws(
    make_features: Callable[[int], Any], X: Any, Y: Any, n_draws: int, seed: Any
) -> Iterator[tuple[np.ndarray, np.ndarray, float]]:
    """Yield ``(K_hat, |phi(x_i)| |phi(y_j)|, eps)`` for ``n_draws`` independent maps."""
    nx = n_rows(X, "X")
    ny = nx if Y is None else n_rows(Y, "Y")
    for r, child in enumerate(spawn(seed, n_draws)):
        maps = make_features(int(child.generate_state(1)[0]))
        if isinstance(maps, tuple):
            if len(maps) != 2 or not all(callable(f) for f in maps):
                raise TypeError("make_features(seed) must return phi or a pair (phi_x, phi_y)")
            phi_x, phi_y = maps
        elif callable(maps):
            phi_x = phi_y = maps
        else:
            raise TypeError(
                f"make_features(seed) must return a callable or a pair, got {type(maps).__name__}"
            )
        PX, eps_x = _features(phi_x, X, nx, "phi(X)", r)
        if Y is None and phi_y is phi_x:
            PY, eps_y = PX, eps_x
        else:
            PY, eps_y = _features(phi_y, X if Y is None else Y, ny, "phi(Y)", r)
        if PX.shape[1] != PY.shape[1]:
            raise ValueError(
                f"phi(X) and phi(Y) must have the same width, got {PX.shape[1]} and {PY.shape[1]}"
            )
        K = np.real(PX @ np.conj(PY).T)
        bound = np.outer(np.linalg.norm(PX, axis=1), np.linalg.norm(PY, axis=1))
        yield K, bound, max(eps_x, eps_y)


def _reference(fn: Callable[[Any, Any], Any], X: Any, Y: Any, shape: tuple, name: str):
    ref = to_numpy(fn(X, X if Y is None else Y), name)
    if ref.shape != shape:
        raise ValueError(f"{name}(X, Y) must have shape {shape}, got {ref.shape}")
    if np.iscomplexobj(ref) or not np.all(np.isfinite(ref)):
        raise ValueError(f"{name}(X, Y) must be real and finite")
    return ref


def _check_common(n_draws: Any, n_sigma: Any, correction: Any, numerical_rtol: Any) -> tuple:
    n_draws = check_positive_int(n_draws, "n_draws", minimum=2)
    n_sigma = check_positive_float(n_sigma, "n_sigma")
    check_choice(correction, "correction", ("bonferroni", "none"))
    if numerical_rtol is not None:
        if isinstance(numerical_rtol, bool) or not isinstance(numerical_rtol, numbers.Real):
            raise TypeError(f"numerical_rtol must be a number >= 0, got {numerical_rtol!r}")
        if not np.isfinite(numerical_rtol) or numerical_rtol < 0:
            raise ValueError(f"numerical_rtol must be finite and >= 0, got {numerical_rtol}")
    return n_draws, n_sigma


def assert_unbiased(
    make_features: Callable[[int], Any],
    kernel: Callable[[Any, Any], Any],
    X: Any,
    Y: Any = None,
    *,
    n_draws: int = 200,
    n_sigma: float = 5.0,
    seed: Any = 0,
    correction: str = "bonferroni",
    numerical_rtol: float | None = None,
) -> MomentCheck:
    r"""Assert that random features estimate ``kernel`` without bias, entry by entry.

    Draws ``n_draws`` independent maps, computes
    :math:`\hat K^{(r)} = \mathrm{Re}\,\phi_r(X)\,\overline{\phi_r(Y)}^\top`, and checks that
    every entry's mean :math:`\bar K_{ij}` satisfies

    .. math:: |\bar K_{ij} - k(x_i, y_j)| \le z^\ast\, \mathrm{SE}_{ij} + \tau_{ij},
              \qquad \mathrm{SE}_{ij} = s_{ij} / \sqrt{R},

    with :math:`s_{ij}` the sample standard deviation over the :math:`R` draws,
    :math:`z^\ast` from :func:`family_threshold` and :math:`\tau_{ij}` the rounding allowance
    (module docstring). A map with a relative bias :math:`b` is detected once
    :math:`b\,k > z^\ast s / \sqrt R`, so raise ``n_draws`` to resolve smaller biases.

    Parameters
    ----------
    make_features : callable
        ``seed -> phi`` or ``seed -> (phi_x, phi_y)`` (see the module docstring).
    kernel : callable
        ``kernel(X, Y) -> Gram`` of shape ``(n_x, n_y)``: a :mod:`kernelapprox.kernels`
        kernel or any function (numpy or torch output).
    X, Y : array_like or tensor, shape (n_x, d) and (n_y, d)
        Inputs, passed unchanged to the features and to the kernel. ``Y`` defaults to ``X``.
    n_draws : int, default 200
        Number :math:`R \ge 2` of independent feature maps.
    n_sigma : float, default 5.0
        Per-test size in normal standard errors (see :func:`family_threshold`).
    seed : int or SeedSequence, default 0
        Root of the draws' seeds.
    correction : {"bonferroni", "none"}
        Multiple-comparison correction over the ``n_x * n_y`` entries.
    numerical_rtol : float, optional
        Rounding allowance relative to :math:`|\phi(x_i)|\,|\phi(y_j)|`; default
        ``256 * eps`` of the features' dtype.

    Returns
    -------
    MomentCheck
        The per-entry means, standard errors and z-scores (``quantity="mean"``).

    Raises
    ------
    AssertionError
        When an entry is outside its tolerance (the message names the worst entry, its
        z-score and the estimate against the kernel) or the features are not finite.

    Examples
    --------
    >>> import numpy as np
    >>> from kernelapprox import features, kernels
    >>> from kernelapprox.testing import assert_unbiased
    >>> X = np.random.default_rng(0).normal(size=(4, 3)) * 0.5
    >>> k = kernels.Gaussian(1.0)
    >>> def make(seed):
    ...     return features.make("sincos", k, 8, dim=3, seed=seed)
    >>> check = assert_unbiased(make, k, X, n_draws=100)
    >>> check.passed
    True
    >>> def too_wide(seed):  # frequencies for length scale 2: the wrong kernel
    ...     return features.make("sincos", kernels.Gaussian(2.0), 8, dim=3, seed=seed)
    >>> assert_unbiased(too_wide, k, 3 * X, n_draws=100)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    AssertionError: assert_unbiased: ...
    """
    _check_factory(make_features)
    if not callable(kernel):
        raise TypeError(f"kernel must be a callable (X, Y) -> Gram, got {type(kernel).__name__}")
    n_draws, n_sigma = _check_common(n_draws, n_sigma, correction, numerical_rtol)
    grams, bounds, eps = [], [], 0.0
    for K, b, e in _gram_draws(make_features, X, Y, n_draws, seed):
        grams.append(K)
        bounds.append(b)
        eps = max(eps, e)
    mean, stderr = mean_and_se(np.stack(grams), axis=0)
    bound = np.mean(bounds, axis=0)
    target = _reference(kernel, X, Y, mean.shape, "kernel")
    rtol = NUMERICAL_RTOL_EPS * eps if numerical_rtol is None else float(numerical_rtol)
    check = _decide("mean", mean, stderr, target, rtol * bound, n_sigma, n_draws, correction)
    if not check.passed:
        raise AssertionError("assert_unbiased: " + check.report())
    return check


def assert_variance_matches(
    make_features: Callable[[int], Any],
    variance_fn: Callable[[Any, Any], Any],
    X: Any,
    Y: Any = None,
    *,
    n_draws: int = 2000,
    n_sigma: float = 5.0,
    seed: Any = 0,
    correction: str = "bonferroni",
    numerical_rtol: float | None = None,
) -> MomentCheck:
    r"""Assert that the variance of the Gram estimate equals an analytic variance, entry by entry.

    From ``n_draws`` independent maps, the sample variance :math:`s^2_{ij}` of
    :math:`\hat K_{ij}` is compared with ``variance_fn(X, Y)[i, j]`` on the scale of its own
    standard error, estimated from the fourth central moment :math:`\hat\mu_4` (valid for
    non-normal estimates):

    .. math:: \mathrm{SE}(s^2) = \sqrt{(\hat\mu_4 - s^4) / R}

    (e.g. Casella & Berger, *Statistical Inference*, Ex. 5.8). The threshold and the rounding
    allowance are those of :func:`assert_unbiased` (the allowance relative to the analytic
    variance). Heavy-tailed estimates (exponential features with large inputs) need many
    draws for :math:`\hat\mu_4` to be reliable; keep inputs moderate.

    Parameters
    ----------
    make_features : callable
        ``seed -> phi`` or ``seed -> (phi_x, phi_y)`` (as in :func:`assert_unbiased`).
    variance_fn : callable
        ``variance_fn(X, Y) -> (n_x, n_y)`` array of :math:`\mathrm{Var}[\hat K_{ij}]`, e.g.
        a formula of :mod:`kernelapprox.estimators.analytic` broadcast over pairs.
    X, Y, n_draws, n_sigma, seed, correction, numerical_rtol
        As in :func:`assert_unbiased` (default ``n_draws=2000``: a variance needs more draws
        than a mean).

    Returns
    -------
    MomentCheck
        ``quantity="variance"``.

    Raises
    ------
    AssertionError
        When an entry's sample variance is outside its tolerance.

    Examples
    --------
    >>> import numpy as np
    >>> from kernelapprox import features, kernels
    >>> from kernelapprox.estimators import analytic
    >>> from kernelapprox.testing import assert_variance_matches
    >>> X = np.random.default_rng(1).normal(size=(3, 2)) * 0.4
    >>> k, m = kernels.Softmax(), 16
    >>> def make(seed):
    ...     return features.make("positive", k, m, dim=2, seed=seed)
    >>> def variance(X, Y):
    ...     return analytic.performer_positive_mse(X[:, None], Y[None, :], n_features=m)
    >>> assert_variance_matches(make, variance, X, n_draws=1000).passed
    True
    """
    _check_factory(make_features)
    if not callable(variance_fn):
        raise TypeError(
            f"variance_fn must be a callable (X, Y) -> variances, got {type(variance_fn).__name__}"
        )
    n_draws, n_sigma = _check_common(n_draws, n_sigma, correction, numerical_rtol)
    draws, eps = [], 0.0
    for K, _, e in _gram_draws(make_features, X, Y, n_draws, seed):
        draws.append(K)
        eps = max(eps, e)
    variance, stderr = variance_and_se(np.stack(draws), axis=0)
    target = _reference(variance_fn, X, Y, variance.shape, "variance_fn")
    if np.any(target < 0):
        raise ValueError("variance_fn(X, Y) must be non-negative")
    rtol = NUMERICAL_RTOL_EPS * eps if numerical_rtol is None else float(numerical_rtol)
    rounding = rtol * np.maximum(target, variance) + np.finfo(np.float64).tiny
    check = _decide("variance", variance, stderr, target, rounding, n_sigma, n_draws, correction)
    if not check.passed:
        raise AssertionError("assert_variance_matches: " + check.report())
    return check


def _decide(
    quantity: str,
    estimate: np.ndarray,
    stderr: np.ndarray,
    reference: np.ndarray,
    rounding: np.ndarray,
    n_sigma: float,
    n_draws: int,
    correction: str,
) -> MomentCheck:
    threshold = family_threshold(n_sigma, estimate.size, n_draws, correction=correction)
    diff = estimate - reference
    beyond = np.sign(diff) * np.maximum(np.abs(diff) - rounding, 0.0)
    z = np.where(stderr > 0, beyond / np.where(stderr > 0, stderr, 1.0), 0.0)
    z = np.where((stderr == 0) & (beyond != 0), np.where(diff > 0, np.inf, -np.inf), z)
    return MomentCheck(
        quantity=quantity,
        estimate=estimate,
        stderr=stderr,
        reference=reference,
        z=z,
        tolerance=threshold * stderr + rounding,
        threshold=threshold,
        n_draws=n_draws,
    )
