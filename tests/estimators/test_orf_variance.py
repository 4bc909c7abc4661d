"""The exact ORF variance (``orf_pair_moment``, ``orf_variance``) against Monte Carlo and
numerical integration."""

import numpy as np
import pytest
from scipy import integrate, special, stats

from kernelapprox.estimators.analytic import (
    gaussian_cos_variance,
    orf_pair_moment,
    orf_variance,
)
from kernelapprox.estimators.replications import mean_and_se


def orf_estimates(seed: int, d: int, D: int, z: float, reps: int) -> np.ndarray:
    """``reps`` ORF estimates of ``exp(-z^2/2)`` with ``D`` rows, built from scipy's Haar
    sampler (``ortho_group``) and chi radii, independently of the package's sampler."""
    rng = np.random.default_rng(seed)
    blocks = -(-D // d)
    Q = stats.ortho_group.rvs(d, size=reps * blocks, random_state=rng).reshape(reps, blocks, d, d)
    rows = Q.reshape(reps, blocks * d, d)[:, :D, :]
    radii = np.sqrt(rng.chisquare(d, size=(reps, D)))
    delta = np.zeros(d)
    delta[0] = z  # Haar rows: the direction of delta does not matter
    return np.cos(radii * (rows @ delta)).mean(axis=1)


def variance_and_se(x: np.ndarray) -> tuple[float, float]:
    """Sample variance and its standard error ``sqrt((m4 - s^4) / R)``."""
    c = x - x.mean()
    var = float(np.mean(c**2))
    return var, float(np.sqrt((np.mean(c**4) - var**2) / len(x)))


@pytest.mark.parametrize(
    ("d", "D", "reps", "seed"),
    [(4, 4, 20000, 1), (8, 8, 20000, 2), (16, 16, 10000, 3), (64, 64, 2000, 4), (8, 20, 8000, 5)],
)
@pytest.mark.parametrize("z", [0.7, 1.5])
def test_exact_variance_within_3_se_of_monte_carlo(d, D, reps, seed, z):
    estimates = orf_estimates(seed, d, D, z, reps)
    mc, se = variance_and_se(estimates)
    assert abs(mc - orf_variance(z, dim=d, n_features=D)) <= 3 * se


def test_pair_moment_within_3_se_of_monte_carlo():
    d, z, reps = 8, 1.5, 40000
    rng = np.random.default_rng(6)
    Q = stats.ortho_group.rvs(d, size=reps, random_state=rng)
    r = np.sqrt(rng.chisquare(d, size=(reps, 2)))
    prod = np.cos(r[:, 0] * z * Q[:, 0, 0]) * np.cos(r[:, 1] * z * Q[:, 1, 0])
    mean, se = mean_and_se(prod)
    assert abs(mean - orf_pair_moment(z, dim=d)) <= 3 * se


@pytest.mark.parametrize("d", [2, 3, 5, 8, 64])
@pytest.mark.parametrize("z", [0.3, 1.0, 2.5])
def test_pair_moment_equals_the_radial_integral(d, z):
    """Steps 1-2 of the derivation without the series: ``E_{rho^2 ~ chi^2_2d} Omega_d(z rho)``
    with ``Omega_d(t) = Gamma(d/2) (2/t)^{d/2-1} J_{d/2-1}(t)``, by quadrature."""
    nu = d / 2 - 1

    def omega(t: float) -> float:
        if t == 0:
            return 1.0
        return float(np.exp(special.gammaln(d / 2) + nu * np.log(2 / t)) * special.jv(nu, t))

    value, err = integrate.quad(
        lambda s: omega(z * np.sqrt(s)) * stats.chi2.pdf(s, 2 * d),
        0,
        np.inf,
        limit=400,
        epsabs=1e-12,
        epsrel=1e-12,
    )
    assert err < 1e-7
    assert orf_pair_moment(z, dim=d) == pytest.approx(value, abs=max(10 * err, 1e-10))


def test_large_dimension_limit_and_leading_term():
    """The covariance minus Yu et al.'s leading term is O(d^-2): d^2 times it is constant."""
    z = np.linspace(0.2, 3.0, 15)
    scaled = []
    for d in (256, 1024):
        cov = orf_pair_moment(z, dim=d) - np.exp(-(z**2))
        lead = -np.exp(-(z**2)) * z**4 / (2 * d)
        scaled.append(d**2 * np.abs(cov - lead).max())
    assert 0 < scaled[1] < 1 and scaled[1] == pytest.approx(scaled[0], rel=0.05)
    # one frequency: no pairs, the iid variance; two full blocks halve one block's variance
    assert orf_variance(1.2, dim=8, n_features=1) == pytest.approx(gaussian_cos_variance(1.2))
    one = orf_variance(1.2, dim=8, n_features=8)
    assert orf_variance(1.2, dim=8, n_features=16) == pytest.approx(one / 2, rel=1e-12)


def test_even_dimension_is_the_kummer_polynomial():
    z, d = np.array([0.0, 0.5, 1.7, 4.0]), 6
    x, n = z**2 / 2, d // 2
    poly = sum(
        special.poch(-n, k) / (special.poch(n, k) * special.factorial(k)) * x**k
        for k in range(n + 1)
    )
    np.testing.assert_allclose(orf_pair_moment(z, dim=d), np.exp(-x) * poly, atol=1e-14)
