"""Bounds are never violated in experiments built to approach them; inversions round-trip."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import integrate
from scipy.stats import qmc

from kernelapprox import discrepancy
from kernelapprox.estimators.bounds import (
    box_error_bound,
    gaussian_sigma_p,
    hoeffding_probability,
    hoeffding_terms_needed,
    koksma_hlawka_bound,
    rahimi_recht_features_needed,
    rahimi_recht_probability,
    sutherland_schneider_features_needed,
    sutherland_schneider_probability,
    worst_case_bound,
)
from tests.conftest import THOROUGH

SEEDS = 40_000 if THOROUGH else 10_000


# --------------------------------------------------------------------------------------
# pointwise Hoeffding: empirical tail frequency over many seeds
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize(("n_terms", "eps"), [(2, 0.9), (4, 0.7), (8, 0.5), (32, 0.25)])
def test_hoeffding_tail_frequency_never_exceeds_bound(n_terms, eps):
    """Sin/cos map with D = 2 n_terms outputs at a far-apart pair (k ~ 0, the widest terms).

    Each seed draws n_terms frequencies; the empirical frequency of |k_hat - k| >= eps must
    stay below the bound up to 5 binomial standard errors.
    """
    rng = np.random.default_rng(n_terms)
    z = 3.0  # ||Delta|| / sigma: k = exp(-4.5), cos(omega' Delta) spread over [-1, 1]
    k = np.exp(-(z**2) / 2)
    omega = rng.normal(size=(SEEDS, n_terms))
    k_hat = np.cos(z * omega).mean(axis=1)
    freq = np.mean(np.abs(k_hat - k) >= eps)
    bound = hoeffding_probability(eps, n_terms)
    assert bound < 1.0  # the experiment is in the bound's non-trivial range
    assert freq <= bound + 5 * np.sqrt(bound * (1 - bound) / SEEDS), (freq, bound)


def test_hoeffding_cos_offset_range():
    # cos+offset terms 2cos()cos() lie in [-2, 2]: range 4 gives 2 exp(-D eps^2 / 8)
    assert hoeffding_probability(0.5, 64, term_range=4.0) == pytest.approx(2 * np.exp(-64 / 32))


@given(st.floats(0.01, 1.5), st.floats(1e-6, 0.99), st.floats(0.5, 4.0))
def test_hoeffding_inversion_round_trips(eps, delta, term_range):
    n = hoeffding_terms_needed(eps, delta, term_range=term_range)
    assert hoeffding_probability(eps, n, term_range=term_range) <= delta
    if n > 1:
        assert hoeffding_probability(eps, n - 1, term_range=term_range) > delta


# --------------------------------------------------------------------------------------
# uniform bounds
# --------------------------------------------------------------------------------------
def test_uniform_bounds_hold_on_a_grid():
    """Sup over a grid of differences (a lower bound on the true sup) vs the uniform bounds.

    d = 1, inputs X = [0, 1] (diameter 1), Gaussian kernel with sigma = 1 (sigma_p = 1).
    """
    D, eps, reps = 2000, 0.3, 200
    rng = np.random.default_rng(7)
    deltas = np.linspace(-1, 1, 201)
    k = np.exp(-(deltas**2) / 2)
    exceed = 0
    for _ in range(reps):
        omega = rng.normal(size=D // 2)
        k_hat = np.cos(np.outer(deltas, omega)).mean(axis=1)
        exceed += np.max(np.abs(k_hat - k)) >= eps
    freq = exceed / reps
    kwargs = {"dim": 1, "sigma_p": gaussian_sigma_p(1), "diameter": 1.0}
    ss = sutherland_schneider_probability(eps, D, **kwargs)
    rr = rahimi_recht_probability(eps, D // 2, **kwargs)  # D // 2 frequencies
    assert ss < 1.0
    assert freq <= ss + 5 * np.sqrt(max(ss * (1 - ss), 1 / reps) / reps)
    assert freq <= rr
    # the sharper bound is the sharper one (same exponent, prefactor 66 < 256)
    assert ss <= rr


@pytest.mark.parametrize("map_", ["sincos", "cos_offset"])
@given(
    eps=st.floats(0.01, 1.0),
    delta=st.floats(1e-6, 0.5),
    dim=st.integers(1, 64),
    sigma_p=st.floats(0.1, 10.0),
    diameter=st.floats(0.1, 10.0),
)
def test_uniform_inversions_round_trip(map_, eps, delta, dim, sigma_p, diameter):
    kw = {"dim": dim, "sigma_p": sigma_p, "diameter": diameter}
    n = sutherland_schneider_features_needed(eps, delta, map=map_, **kw)
    assert sutherland_schneider_probability(eps, n, map=map_, **kw) <= delta
    if n > 1:
        assert sutherland_schneider_probability(eps, n - 1, map=map_, **kw) > delta
    n = rahimi_recht_features_needed(eps, delta, **kw)
    assert rahimi_recht_probability(eps, n, **kw) <= delta
    if n > 1:
        assert rahimi_recht_probability(eps, n - 1, **kw) > delta


def test_uniform_bound_values():
    # literal evaluation of the stated formulas
    kw = {"dim": 3, "sigma_p": 2.0, "diameter": 1.5}
    assert rahimi_recht_probability(0.1, 10**5, **kw) == pytest.approx(
        256 * 30.0**2 * np.exp(-(10**5) * 0.01 / 20)
    )
    assert sutherland_schneider_probability(0.1, 10**5, **kw) == pytest.approx(
        66 * 30.0**2 * np.exp(-(10**5) * 0.01 / 40)
    )
    assert sutherland_schneider_probability(0.1, 10**6, map="cos_offset", **kw) == pytest.approx(
        98 * 30.0**2 * np.exp(-(10**6) * 0.01 / 160)
    )
    assert gaussian_sigma_p(4, 2.0) == 1.0


# --------------------------------------------------------------------------------------
# Koksma-Hlawka in 1-D with the exact star discrepancy
# --------------------------------------------------------------------------------------
def _smooth(x):
    return np.sin(2 * np.pi * x) + x**2


SMOOTH_INTEGRAL = 1.0 / 3.0
SMOOTH_VARIATION = integrate.quad(
    lambda x: abs(2 * np.pi * np.cos(2 * np.pi * x) + 2 * x), 0, 1, limit=200
)[0]


@given(st.integers(0, 2**32 - 1), st.integers(0, 8), st.sampled_from(["random", "sobol"]))
def test_koksma_hlawka_never_violated(seed, log2_n, kind):
    rng = np.random.default_rng(seed)
    if kind == "random":
        x = rng.random(3 * 2**log2_n)
    else:
        x = qmc.Sobol(1, scramble=True, seed=rng).random_base2(log2_n)[:, 0]
    # f(x) = x: variation 1
    assert abs(x.mean() - 0.5) <= koksma_hlawka_bound(x, variation=1.0) + 1e-15
    err = abs(_smooth(x).mean() - SMOOTH_INTEGRAL)
    assert err <= koksma_hlawka_bound(x, variation=SMOOTH_VARIATION) + 1e-12


@given(st.integers(0, 2**32 - 1), st.integers(1, 100))
def test_koksma_hlawka_attained_by_an_indicator(seed, n):
    """f = 1[0, t) has variation 1; at the worst t the error equals D* (tightness)."""
    x = np.sort(np.random.default_rng(seed).random(n))
    i = np.arange(1, n + 1)
    # the sup of |F_n(t) - t| is approached at t = x_(i) from the right or attained at x_(i)
    errors = np.concatenate([i / n - x, x - (i - 1) / n])
    assert np.max(errors) == pytest.approx(koksma_hlawka_bound(x, variation=1.0), abs=1e-14)


# --------------------------------------------------------------------------------------
# Hilbert-space bounds: the kernels written out independently here
# --------------------------------------------------------------------------------------
def _l2_star_kernel(a, b):
    return np.prod(np.minimum(1 - a[:, None, :], 1 - b[None, :, :]), axis=-1)


def _l2_star_integral_of_section(y):  # int_[0,1]^d K(x, y) dx
    return np.prod((1 - y**2) / 2, axis=-1)


@given(st.integers(0, 2**32 - 1))
def test_l2_star_worst_case_bound_holds_and_is_attained(seed):
    rng = np.random.default_rng(seed)
    n, d, q = 12, 2, 5
    x, xi = rng.random((n, d)), rng.random(n) / n
    bound_per_norm = worst_case_bound(x, norm=1.0, kind="l2_star", weights=xi)
    # random f = sum_j a_j K(., y_j): ||f||^2 = a'K(Y, Y)a
    y, a = rng.random((q, d)), rng.normal(size=q)
    norm = np.sqrt(a @ _l2_star_kernel(y, y) @ a)
    err = abs(xi @ (_l2_star_kernel(x, y) @ a) - a @ _l2_star_integral_of_section(y))
    assert err <= worst_case_bound(x, norm=norm, kind="l2_star", weights=xi) * (1 + 1e-12)
    # the representer g = int K(., y) dy - sum xi_i K(., x_i) attains it: err(g) = ||g|| D
    # with ||g|| = D, i.e. err(g) = D^2
    err_g = 3.0**-d - 2 * xi @ _l2_star_integral_of_section(x) + xi @ _l2_star_kernel(x, x) @ xi
    assert err_g == pytest.approx(bound_per_norm**2, rel=1e-10, abs=1e-14)


@given(st.integers(0, 2**32 - 1))
def test_box_error_bound_holds_for_kernel_sections(seed):
    """f = sinc_b(., v) lies in PW_b with ||f||^2 = sinc_b(v, v) = prod b / pi."""
    rng = np.random.default_rng(seed)
    m, d, s, b = 20, 2, 1.0, np.array([1.5, 2.5])
    nodes = rng.normal(scale=s, size=(m, d))
    xi = rng.random(m) / m
    v = rng.normal(size=(1, d))
    f_nodes = discrepancy.box_gram(np.vstack([nodes, v]), b=b)[-1, :m]
    integral = discrepancy.box_mean_embedding(v, scale=s, b=b)[0]
    err = abs(xi @ f_nodes - integral)
    norm = np.sqrt(np.prod(b / np.pi))
    assert err <= box_error_bound(nodes, norm=norm, scale=s, b=b, weights=xi) * (1 + 1e-10)


def test_bad_input():
    with pytest.raises(ValueError, match="eps"):
        hoeffding_probability(0.0, 4)
    with pytest.raises(ValueError, match="delta"):
        hoeffding_terms_needed(0.1, 1.0)
    with pytest.raises(ValueError, match="map"):
        sutherland_schneider_probability(0.1, 4, dim=1, sigma_p=1, diameter=1, map="fourier")
    with pytest.raises(ValueError, match="variation"):
        koksma_hlawka_bound([0.5], variation=-1.0)
    with pytest.raises(ValueError, match="kind"):
        worst_case_bound([[0.5]], norm=1.0, kind="star")
