r"""The expected squared Frobenius error of a random-feature Gram matrix is the summed variance.

Statement
---------
For the sin/cos map with $m$ i.i.d. frequencies $w_i \sim N(0, I)$ (output width $2m$), every
entry of $\hat K = \phi(X)\phi(X)^\top$ is unbiased with variance
$\operatorname{Var}\hat K_{ab} = \bigl(1 + k(2\Delta_{ab}) - 2k(\Delta_{ab})^2\bigr)/(2m)$,
$\Delta_{ab} = x_a - x_b$, $k(\Delta) = e^{-\|\Delta\|^2/2}$. Hence the relative Frobenius error
$\varepsilon = \|\hat K - K\|_F / \|K\|_F$ satisfies
$$E[\varepsilon^2] = \frac{\sum_{a,b} \operatorname{Var}\hat K_{ab}}{\|K\|_F^2}.$$

Source
------
Sutherland & Schneider, "On the Error of Random Fourier Features", UAI 2015
(arXiv 1506.02785), Section 2 (the variance of the sin/cos estimate); Rahimi & Recht,
NIPS 2007 (unbiasedness).

Method
------
$R$ independent sin/cos maps of the package ($m = 8$, Gaussian kernel, $n = 12$ fixed points in
$d = 3$). For each, the package's `relative_frobenius` and `relative_spectral` (and
`gram_error` with the two metric names) must equal `numpy.linalg.norm` of the difference over
the norm of $K$ (Frobenius and 2-norm) to $10^{-12}$ relative; the mean of $\varepsilon^2$ over
the $R$ maps must lie within 5 standard errors of the closed form above, evaluated here from the
points.
"""

from __future__ import annotations

import numpy as np

from kernelapprox.estimators.gram import gram_error, relative_frobenius, relative_spectral
from kernelapprox.estimators.replications import mean_and_se
from kernelapprox.features import SinCos
from kernelapprox.kernels import Gaussian

from ._core import Verdict
from ._numerical import Checks, numerical_claim, z_score

SEED = 20150712
N_POINTS, DIM, M = 12, 3, 8
RTOL = 1e-12


def expected_squared_error(X: np.ndarray, m: int) -> float:
    """``sum_ab Var K_hat_ab / |K|_F^2`` for the sin/cos map with ``m`` frequencies."""
    sq = np.sum((X[:, None, :] - X[None, :, :]) ** 2, axis=-1)
    k, k2 = np.exp(-0.5 * sq), np.exp(-2.0 * sq)
    variance = (1.0 + k2 - 2.0 * k**2) / (2 * m)
    return float(variance.sum() / np.sum(k**2))


def run(*, thorough: bool = False, seed: int = SEED) -> Verdict:
    checks = Checks()
    point_seed, map_seed = np.random.SeedSequence(seed).spawn(2)
    X = 0.6 * np.random.default_rng(point_seed).standard_normal((N_POINTS, DIM))
    kernel = Gaussian()
    K = kernel(X, X)
    R = 4000 if thorough else 800
    squared = np.empty(R)
    worst = 0.0
    for r, child in enumerate(map_seed.spawn(R)):
        K_hat = SinCos(kernel, M, dim=DIM, seed=child).gram(X)
        fro = np.linalg.norm(K_hat - K) / np.linalg.norm(K)
        spectral = np.linalg.norm(K_hat - K, 2) / np.linalg.norm(K, 2)
        got = {
            "relative_frobenius": (relative_frobenius(K_hat, K), fro),
            "relative_spectral": (relative_spectral(K_hat, K), spectral),
            "gram_error rel_fro": (gram_error(K_hat, K, "rel_fro"), fro),
            "gram_error rel_spectral": (gram_error(K_hat, K, "rel_spectral"), spectral),
        }
        for name, (value, reference) in got.items():
            gap = abs(value - reference) / reference
            worst = max(worst, gap)
            if gap > RTOL and not checks.failures:
                checks.require(False, f"{name} differs from numpy by {gap:.1e} (relative)")
        squared[r] = fro**2
    exact = expected_squared_error(X, M)
    mean, se = mean_and_se(squared)
    z = z_score(mean, exact, se)
    checks.within(z, 5, f"mean squared relative error {mean:.5f} is {z:+.1f} SE from {exact:.5f}")
    return checks.verdict(
        f"Gram error metrics equal numpy to {worst:.1e} (limit {RTOL:.0e}); E[ε²] over {R} "
        f"maps {mean:.5f} ± {se:.5f} vs the summed variance {exact:.5f} ({z:+.1f} SE)",
        worst_gap=worst,
        mean_squared_error=mean,
        se=se,
        exact=exact,
        z=z,
        maps=R,
    )


CLAIM = numerical_claim(
    run,
    name="gram_error_expectation",
    title="The expected squared relative Gram error is the summed entry variance",
    source="Sutherland & Schneider (UAI 2015) Sec. 2; Rahimi & Recht (NIPS 2007)",
    family="random_features",
    seed=SEED,
    tolerance="metrics 1e-12 relative to numpy; mean within 5 standard errors",
    verifies=(
        "kernelapprox.estimators.gram.relative_frobenius",
        "kernelapprox.estimators.gram.relative_spectral",
        "kernelapprox.estimators.gram.gram_error",
    ),
)
