"""Discrepancies: scipy, literature values, quadrature of the kernel forms, box discrepancy."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import integrate
from scipy.stats import qmc

from kernelapprox import discrepancy
from kernelapprox.estimators.replications import mean_and_se

# --------------------------------------------------------------------------------------
# strategies
# --------------------------------------------------------------------------------------
seeds = st.integers(min_value=0, max_value=2**32 - 1)


@st.composite
def unit_points(draw, max_n: int = 30, max_d: int = 5):
    n = draw(st.integers(1, max_n))
    d = draw(st.integers(1, max_d))
    rng = np.random.default_rng(draw(seeds))
    x = rng.random((n, d))
    if draw(st.booleans()):  # put some coordinates on the faces of the cube
        mask = rng.random((n, d)) < 0.2
        x[mask] = rng.integers(0, 2, size=mask.sum())
    return x


# --------------------------------------------------------------------------------------
# agreement with scipy.stats.qmc.discrepancy (mixed convention: CD/WD squared, L2-star root)
# --------------------------------------------------------------------------------------
@given(unit_points())
def test_l2_star_matches_scipy_root_and_square(x):
    ref = qmc.discrepancy(x, method="L2-star")  # scipy returns the root for L2-star
    np.testing.assert_allclose(discrepancy.l2_star(x), ref, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(discrepancy.l2_star(x, squared=True), ref**2, rtol=1e-10, atol=1e-15)


@given(unit_points())
def test_centered_matches_scipy_square_and_root(x):
    ref = qmc.discrepancy(x, method="CD")  # scipy returns the square for CD
    np.testing.assert_allclose(discrepancy.centered(x, squared=True), ref, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(discrepancy.centered(x), np.sqrt(ref), rtol=1e-9, atol=1e-7)


@given(unit_points())
def test_wrap_around_matches_scipy_square_and_root(x):
    ref = qmc.discrepancy(x, method="WD")  # scipy returns the square for WD
    np.testing.assert_allclose(
        discrepancy.wrap_around(x, squared=True), ref, rtol=1e-10, atol=1e-13
    )
    np.testing.assert_allclose(discrepancy.wrap_around(x), np.sqrt(ref), rtol=1e-9, atol=1e-7)


# --------------------------------------------------------------------------------------
# literature values (reference notes, section 4.1)
# --------------------------------------------------------------------------------------
def _design(levels, n_levels):
    return (2.0 * np.asarray(levels, dtype=float) - 1.0) / (2.0 * n_levels)


def test_centered_fang_et_al_2006():
    design_1 = _design([[1, 3], [2, 6], [3, 2], [4, 5], [5, 1], [6, 4]], 6)
    design_2 = _design([[1, 5], [2, 4], [3, 3], [4, 2], [5, 1], [6, 6]], 6)
    assert discrepancy.centered(design_1, squared=True) == pytest.approx(0.0081, abs=1e-4)
    assert discrepancy.centered(design_2, squared=True) == pytest.approx(0.0105, abs=1e-4)
    # the digits scipy's docstring prints for the first design
    assert discrepancy.centered(design_1, squared=True) == pytest.approx(
        0.008142039609053464, rel=1e-12
    )


def test_zhou_et_al_2013_example_4():
    levels = [
        [2, 1, 1, 2, 2, 2],
        [1, 2, 2, 2, 2, 2],
        [2, 1, 1, 1, 1, 1],
        [1, 1, 1, 1, 2, 2],
        [1, 2, 2, 2, 1, 1],
        [2, 2, 2, 2, 1, 1],
        [2, 2, 2, 1, 2, 2],
    ]
    design = _design(levels, 2)
    assert discrepancy.wrap_around(design, squared=True) == pytest.approx(1.3680, abs=1e-4)
    assert discrepancy.centered(design, squared=True) == pytest.approx(0.3172, abs=1e-4)


@pytest.mark.parametrize("d", [1, 2, 4, 8, 16, 32, 64])
def test_l2_star_single_corner_point(d):
    # Pillards, Vandewoestyne & Cools (2005): one point at (1, ..., 1) has D = sqrt(3^-d)
    assert discrepancy.l2_star(np.ones((1, d))) == pytest.approx(np.sqrt(3.0**-d), rel=1e-12)


# --------------------------------------------------------------------------------------
# the weighted (kernel) form, checked by 1-D quadrature of each kernel factor
# --------------------------------------------------------------------------------------
KERNEL_FACTORS = {
    "l2_star": lambda s, t: 1.0 - max(s, t),
    "centered": lambda s, t: 1.0 + 0.5 * abs(s - 0.5) + 0.5 * abs(t - 0.5) - 0.5 * abs(s - t),
    "wrap_around": lambda s, t: 1.5 - abs(s - t) * (1.0 - abs(s - t)),
}


def _kernel_discrepancy_by_quadrature(kind, x, w):
    """D^2 = int int K - 2 sum w_i int K(x_i, .) + sum w_i w_j K(x_i, x_j), by quadrature."""
    g = KERNEL_FACTORS[kind]
    n, d = x.shape
    kinks = [0.5]  # every factor is piecewise smooth with kinks at t = s and t = 1/2

    def inner(s):
        return integrate.quad(lambda t: g(s, t), 0, 1, points=[s, *kinks], epsabs=1e-14)[0]

    const_1d = integrate.quad(inner, 0, 1, points=kinks, epsabs=1e-14)[0]
    embed = np.ones(n)
    gram = np.ones((n, n))
    for i in range(n):
        for k in range(d):
            embed[i] *= inner(x[i, k])
            for j in range(n):
                gram[i, j] *= g(x[i, k], x[j, k])
    return const_1d**d - 2 * w @ embed + w @ gram @ w


@pytest.mark.parametrize("kind", sorted(KERNEL_FACTORS))
def test_weighted_form_matches_quadrature(kind):
    rng = np.random.default_rng(7)
    x = rng.random((5, 2))
    w = rng.random(5)  # weights that do not sum to one
    expected = _kernel_discrepancy_by_quadrature(kind, x, w)
    got = getattr(discrepancy, kind)(x, weights=w, squared=True)
    assert got == pytest.approx(expected, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("kind", ["l2_star", "centered", "wrap_around"])
@given(unit_points(max_n=12, max_d=3))
def test_uniform_weights_reduce_to_classical(kind, x):
    func = getattr(discrepancy, kind)
    n = x.shape[0]
    assert func(x, weights=np.full(n, 1.0 / n), squared=True) == pytest.approx(
        func(x, squared=True), rel=1e-12, abs=1e-15
    )


@pytest.mark.parametrize("kind", ["l2_star", "centered", "wrap_around"])
def test_repeated_point_equals_merged_weight(kind):
    func = getattr(discrepancy, kind)
    rng = np.random.default_rng(3)
    x = rng.random((4, 3))
    w = rng.random(4)
    merged = func(x, weights=w, squared=True)
    split = func(np.vstack([x, x[:1]]), weights=np.append(w * [0.25, 1, 1, 1], 0.75 * w[0]))
    assert split**2 == pytest.approx(merged, rel=1e-10)


@pytest.mark.parametrize("kind", ["l2_star", "centered", "wrap_around"])
def test_chunked_equals_unchunked_exactly(kind):
    func = getattr(discrepancy, kind)
    x = np.random.default_rng(11).random((37, 6))
    w = np.random.default_rng(12).random(37)
    results = {func(x, weights=w, squared=True, chunk_size=c) for c in (1, 4, 36, 37, 1000)}
    results.add(func(x, weights=w, squared=True))
    assert len(results) == 1


# --------------------------------------------------------------------------------------
# exact 1-D star discrepancy
# --------------------------------------------------------------------------------------
@given(st.integers(1, 200), seeds)
def test_star_1d_matches_sup_over_breakpoints(n, seed):
    x = np.sort(np.random.default_rng(seed).random(n))
    i = np.arange(1, n + 1)
    # sup_t |F_n(t) - t| is attained at a point x_(i), approached from the left or the right
    brute = max(np.max(i / n - x), np.max(x - (i - 1) / n))
    assert discrepancy.star_discrepancy_1d(x) == pytest.approx(brute, rel=1e-13, abs=1e-15)


def test_star_1d_known_values():
    assert discrepancy.star_discrepancy_1d([0.0]) == 1.0
    assert discrepancy.star_discrepancy_1d(np.array([[0.5]])) == 0.5
    grid = (np.arange(8) + 0.5) / 8
    assert discrepancy.star_discrepancy_1d(grid) == pytest.approx(1 / 16)


# --------------------------------------------------------------------------------------
# box discrepancy (Avron, Sindhwani, Yang & Mahoney 2016)
# --------------------------------------------------------------------------------------
def _sinc_b(u, b):
    return b / np.pi if u == 0 else np.sin(b * u) / (np.pi * u)


def _gauss(v, s):
    return np.exp(-0.5 * (v / s) ** 2) / (np.sqrt(2 * np.pi) * s)


@pytest.mark.parametrize(("w", "s", "b"), [(0.0, 1.0, 3.0), (1.7, 0.5, 2.0), (-3.1, 2.0, 0.7)])
def test_box_mean_embedding_1d_quadrature(w, s, b):
    expected = integrate.quad(
        lambda v: _sinc_b(w - v, b) * _gauss(v, s), -np.inf, np.inf, limit=400, epsabs=1e-13
    )[0]
    got = discrepancy.box_mean_embedding([[w]], scale=s, b=b)[0]
    assert got == pytest.approx(expected, rel=1e-8, abs=1e-12)


def test_box_mean_embedding_2d_quadrature():
    s, b, w = np.array([0.8, 1.5]), np.array([2.0, 1.2]), np.array([0.6, -1.1])
    expected = integrate.dblquad(
        lambda v2, v1: (
            _sinc_b(w[0] - v1, b[0])
            * _sinc_b(w[1] - v2, b[1])
            * _gauss(v1, s[0])
            * _gauss(v2, s[1])
        ),
        -8 * s[0],
        8 * s[0],
        -8 * s[1],
        8 * s[1],
        epsabs=1e-12,
    )[0]
    got = discrepancy.box_mean_embedding(w[None, :], scale=s, b=b)[0]
    assert got == pytest.approx(expected, rel=1e-7)


def test_box_mean_embedding_is_stable_far_out():
    # large |w| and large s*b: direct erf of a complex argument would overflow; here the
    # value is a Gaussian-damped number in [0, p(w)] and finite
    w = np.array([[0.0], [5.0], [40.0], [400.0]])
    got = discrepancy.box_mean_embedding(w, scale=1.0, b=60.0)
    assert np.all(np.isfinite(got))
    # b -> infinity: sinc_b -> delta, so beta -> p(w)
    np.testing.assert_allclose(got, _gauss(w[:, 0], 1.0), atol=1e-12)


def test_box_constant_quadrature_1d_and_2d():
    s, b = 0.7, 1.9
    direct = integrate.dblquad(
        lambda v, u: _sinc_b(u - v, b) * _gauss(u, s) * _gauss(v, s),
        -9 * s,
        9 * s,
        -9 * s,
        9 * s,
        epsabs=1e-12,
    )[0]
    assert discrepancy.box_constant(scale=s, b=b, dim=1) == pytest.approx(direct, rel=1e-7)
    # 2-D, through the Fourier side: (2 pi)^-2 int_box |phi_p(t)|^2 dt
    s2, b2 = np.array([0.7, 1.4]), np.array([1.9, 0.6])
    fourier = (
        integrate.dblquad(
            lambda t2, t1: np.exp(-((s2[0] * t1) ** 2) - (s2[1] * t2) ** 2),
            -b2[0],
            b2[0],
            -b2[1],
            b2[1],
        )[0]
        / (2 * np.pi) ** 2
    )
    assert discrepancy.box_constant(scale=s2, b=b2, dim=2) == pytest.approx(fourier, rel=1e-9)


@given(st.integers(1, 25), st.integers(1, 3), seeds, st.floats(0.2, 5.0), st.floats(0.2, 5.0))
def test_box_gram_symmetric_psd_and_discrepancy_nonnegative(m, d, seed, s, b):
    rng = np.random.default_rng(seed)
    w = rng.normal(scale=s, size=(m, d))
    gram = discrepancy.box_gram(w, b=b)
    assert np.array_equal(gram, gram.T)
    eig = np.linalg.eigvalsh(gram)
    assert eig.min() >= -1e-12 * max(1.0, eig.max())
    xi = rng.random(m)
    d2 = discrepancy.box(w, scale=s, b=b, weights=xi, squared=True)
    assert d2 >= 0.0
    # the three pieces assemble to the same number
    c = discrepancy.box_constant(scale=s, b=b, dim=d)
    beta = discrepancy.box_mean_embedding(w, scale=s, b=b)
    pieces = c - 2 * xi @ beta + xi @ gram @ xi
    assert d2 == pytest.approx(max(pieces, 0.0), rel=1e-9, abs=1e-12 * (c + xi @ gram @ xi))


def test_box_expected_square_for_monte_carlo_nodes():
    """E D^2 = (int K(w, w) p - int int K p p) / m = (prod b/pi - c) / m for iid nodes.

    This pins the normalisation of all three terms against each other: a wrong constant in
    any of them leaves a non-zero limit or a wrong slope.
    """
    s, b = np.array([1.0, 0.5]), np.array([2.0, 3.0])
    c = discrepancy.box_constant(scale=s, b=b, dim=2)
    rng = np.random.default_rng(2024)
    for m in (4, 64):
        reps = 1500
        values = np.array(
            [
                discrepancy.box(rng.normal(size=(m, 2)) * s, scale=s, b=b, squared=True)
                for _ in range(reps)
            ]
        )
        expected = (np.prod(b / np.pi) - c) / m
        se = mean_and_se(values)[1]
        assert abs(values.mean() - expected) <= 5 * se, (m, values.mean(), expected, se)


def test_box_goes_to_zero_for_monte_carlo_nodes():
    """For iid nodes from p, E D^2 = (prod_k b_k / pi - c) / m exactly: m D^2 has the same mean
    at every m (within 5 standard errors of the replications), so D^2 -> 0 like 1/m."""
    rng = np.random.default_rng(5)
    b = 2.0
    limit = (b / np.pi) ** 2 - discrepancy.box_constant(scale=1.0, b=b, dim=2)
    for m, reps in ((16, 300), (64, 150), (256, 60)):
        scaled = m * np.array(
            [discrepancy.box(rng.normal(size=(m, 2)), scale=1.0, b=b, squared=True)
             for _ in range(reps)]
        )  # fmt: skip
        assert abs(scaled.mean() - limit) <= 5 * mean_and_se(scaled)[1], m


def test_box_uniform_default_and_chunking():
    w = np.random.default_rng(9).normal(size=(29, 3))
    base = discrepancy.box(w, scale=1.0, b=2.5)
    assert discrepancy.box(w, scale=1.0, b=2.5, weights=np.full(29, 1 / 29)) == pytest.approx(
        base, rel=1e-12
    )
    assert discrepancy.box(w, scale=1.0, b=2.5, chunk_size=3) == base
    assert discrepancy.box(w, scale=[1.0, 1.0, 1.0], b=[2.5] * 3) == base


# --------------------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("func", [discrepancy.l2_star, discrepancy.centered])
def test_bad_points_raise(func):
    with pytest.raises(ValueError, match="unit cube"):
        func([[0.5, 1.5]])
    with pytest.raises(ValueError, match="shape"):
        func([0.1, 0.2])
    with pytest.raises(ValueError, match="NaN"):
        func([[np.nan, 0.2]])
    with pytest.raises(ValueError, match="weights"):
        func([[0.1], [0.2]], weights=[1.0])
    with pytest.raises(ValueError, match="non-negative"):
        func([[0.1], [0.2]], weights=[1.0, -0.5])
    with pytest.raises(ValueError, match="chunk_size"):
        func([[0.1], [0.2]], chunk_size=0)


def test_bad_box_input_raises():
    with pytest.raises(ValueError, match="b must"):
        discrepancy.box([[0.0, 1.0]], scale=1.0, b=0.0)
    with pytest.raises(ValueError, match="scale"):
        discrepancy.box([[0.0, 1.0]], scale=[1.0, 2.0, 3.0], b=1.0)
    with pytest.raises(ValueError, match="frequencies"):
        discrepancy.box([[np.inf, 1.0]], scale=1.0, b=1.0)
    with pytest.raises(ValueError, match="points"):
        discrepancy.star_discrepancy_1d(np.zeros((3, 2)))
