import warnings

import numpy as np
import pytest
import scipy.fft
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from kernelapprox import features, kernels
from kernelapprox.estimators.replications import mean_and_se
from kernelapprox.features import MAPS, dct2_ortho, dct3_ortho, dct_matrix
from kernelapprox.sampling import QMCBalanceWarning
from tests.conftest import THOROUGH

KERNELS = {
    "gaussian": kernels.Gaussian(1.3),
    "laplacian": kernels.Laplacian(1.5),
    "softmax": kernels.Softmax(0.7),
}
COMBOS = [
    (name, k)
    for name, cls in MAPS.items()
    for k in KERNELS
    if KERNELS[k].unit in cls.supported_kernels
]
UNBIASED = [(name, k) for name, k in COMBOS if MAPS[name].unbiased]


@pytest.fixture(autouse=True)
def _quiet_balance():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", QMCBalanceWarning)
        yield


rng = np.random.default_rng(0)
X = 0.5 * rng.normal(size=(6, 3))


@pytest.mark.parametrize(("name", "kernel"), COMBOS)
def test_shapes_dtypes_and_numpy_torch_parity(name, kernel):
    fm = features.make(name, KERNELS[kernel], 10, dim=3, seed=1)
    phi = fm(X)
    assert isinstance(phi, np.ndarray) and phi.shape == (6, fm.output_dim)
    assert phi.dtype == (np.complex128 if fm.complex_valued else np.float64)
    t64 = fm(torch.from_numpy(X))
    np.testing.assert_allclose(t64.numpy(), phi, rtol=1e-12, atol=1e-14)
    t32 = fm(torch.from_numpy(X).float())
    assert t32.dtype == (torch.complex64 if fm.complex_valued else torch.float32)
    np.testing.assert_allclose(t32.numpy(), phi, rtol=1e-4, atol=1e-5)
    # batched leading axes
    assert fm(torch.from_numpy(X).reshape(2, 3, 3)).shape == (2, 3, fm.output_dim)
    assert fm.frequencies.shape == (10, 3)
    np.testing.assert_allclose(fm.weights, 0.1)


@pytest.mark.parametrize(("name", "kernel"), UNBIASED)
def test_unbiased_within_five_standard_errors(name, kernel):
    """Average of R independent maps vs the exact Gram: every entry within 5 SE."""
    k = KERNELS[kernel]
    R = 2000 if THOROUGH else 300
    est = np.stack([features.make(name, k, 16, dim=3, seed=s).gram(X) for s in range(R)])
    mean, se = mean_and_se(est, axis=0)
    diff = np.abs(mean - k(X))
    exact = se < 1e-12  # e.g. sincos on the diagonal: cos(0) = 1 for every draw
    assert np.all(diff[exact] < 1e-12)
    z = diff[~exact] / se[~exact]
    assert z.max() < 5, f"max |z| = {z.max():.2f}"


@pytest.mark.parametrize(("name", "kernel"), COMBOS)
@given(data=arrays(np.float64, (5, 3), elements=st.floats(-1.5, 1.5)))
def test_gram_symmetric_and_psd(name, kernel, data):
    fm = features.make(name, KERNELS[kernel], 12, dim=3, seed=0)
    K = fm.gram(data)
    np.testing.assert_allclose(K, K.T, rtol=1e-12, atol=1e-12)
    eig = np.linalg.eigvalsh(K)
    assert eig.min() >= -1e-10 * max(1.0, np.abs(eig).max())


@pytest.mark.parametrize(("name", "kernel"), COMBOS)
def test_seed_reproduces_bit_identical_frequencies(name, kernel):
    a = features.make(name, KERNELS[kernel], 9, dim=3, seed=5, sampler="sobol")
    b = features.make(
        name, KERNELS[kernel], 9, dim=3, seed=torch.Generator().manual_seed(5), sampler="sobol"
    )
    np.testing.assert_array_equal(a.frequencies, b.frequencies)
    np.testing.assert_array_equal(a(X), b(X))
    c = features.make(name, KERNELS[kernel], 9, dim=3, seed=6, sampler="sobol")
    assert not np.array_equal(a.frequencies, c.frequencies)


@pytest.mark.parametrize("name", [n for n, c in MAPS.items() if c.exponential])
def test_log_features_are_the_log_of_the_features(name):
    fm = features.make(name, kernels.Softmax(), 7, dim=3, seed=2)
    np.testing.assert_allclose(np.exp(fm.log_features(X)), fm(X), rtol=1e-12)
    with pytest.raises(TypeError, match="not exponential"):
        features.make("sincos", kernels.Softmax(), 7, dim=3, seed=2).log_features(X)


def test_positive_maps_are_positive_and_extreme_inputs_stay_finite():
    for name in ("positive", "hyperbolic", "dct", "dct_released"):
        fm = features.make(name, kernels.Softmax(), 8, dim=3, seed=0)
        assert np.all(fm(X) > 0)
        logs = fm.log_features(torch.full((2, 3), 300.0))
        assert torch.all(torch.isfinite(logs))


def test_cos_offset_reproduces_sklearn_rbf_sampler():
    from sklearn.kernel_approximation import RBFSampler

    Z = np.random.default_rng(3).normal(size=(20, 5))
    ref = RBFSampler(gamma=0.37, n_components=64, random_state=0).fit(Z)
    kernel = kernels.Gaussian(length_scale=1 / np.sqrt(2 * 0.37))
    fm = features.CosOffset.from_frequencies(
        kernel, ref.random_weights_.T, offsets=ref.random_offset_
    )
    np.testing.assert_allclose(fm(Z), ref.transform(Z), rtol=0, atol=1e-12)


def test_pair_terms_times_weights_is_the_estimate():
    fm = features.make("sincos", kernels.Gaussian(), 8, dim=3, seed=0)
    Y = X[::-1].copy()
    T = fm.pair_terms(X, Y)
    assert T.shape == (6, 8)
    np.testing.assert_allclose(T @ fm.weights, np.diag(fm.gram(X, Y)), rtol=1e-12)


def test_custom_weights_scale_each_frequency():
    w = np.arange(1.0, 9.0)
    w /= w.sum()
    fm = features.make("positive", kernels.Softmax(), 8, dim=3, seed=0, weights=w)
    base = features.make("positive", kernels.Softmax(), 8, dim=3, seed=0)
    np.testing.assert_allclose(fm(X), base(X) * np.sqrt(8 * w), rtol=1e-12)
    np.testing.assert_allclose(fm.pair_terms(X, X) @ w, np.diag(fm.gram(X)), rtol=1e-12)
    for bad in (-w, np.zeros(8), w[:3], np.full(8, np.nan)):
        with pytest.raises(ValueError, match="weights"):
            features.make("positive", kernels.Softmax(), 8, dim=3, seed=0, weights=bad)


# --- DiJiang's DCT maps -------------------------------------------------------------------------


@pytest.mark.parametrize("d", [1, 2, 3, 7, 8, 60, 64])
def test_fast_dct_matches_scipy(d):
    x = torch.randn(4, d, dtype=torch.float64)
    np.testing.assert_allclose(
        dct2_ortho(x).numpy(), scipy.fft.dct(x.numpy(), norm="ortho"), atol=1e-12
    )
    np.testing.assert_allclose(
        dct3_ortho(x).numpy(), scipy.fft.idct(x.numpy(), norm="ortho"), atol=1e-12
    )
    C = dct_matrix(d)
    np.testing.assert_allclose(C, scipy.fft.dct(np.eye(d), axis=0, norm="ortho"), atol=1e-13)
    np.testing.assert_allclose(C @ C.T, np.eye(d), atol=1e-12)


@pytest.mark.parametrize("name", ["dct", "dct_released"])
@pytest.mark.parametrize("m", [3, 8, 21])
def test_dct_fast_transform_equals_dense(name, m):
    kw = dict(dim=8, seed=4, sampler="sobol")
    fast = features.make(name, kernels.Softmax(), m, transform="fast", **kw)
    dense = features.make(name, kernels.Softmax(), m, transform="dense", **kw)
    Z = np.random.default_rng(1).normal(size=(5, 8))
    np.testing.assert_allclose(fast(Z), dense(Z), rtol=1e-10)
    # frequencies are t_i times DCT directions (rows of C, sign-flipped blocks beyond d)
    norms = np.linalg.norm(fast.standard_frequencies, axis=1)
    np.testing.assert_allclose(norms, np.abs(fast.radii), rtol=1e-12)


def test_dct_released_is_the_released_code_formula():
    """phi(x) = softmax(x @ (C @ diag(t))) with C = scipy's orthonormal DCT-II of eye(d)."""
    d = 16
    fm = features.make("dct_released", kernels.Softmax(), d, dim=d, seed=0)
    Z = np.random.default_rng(2).normal(size=(4, d))
    C = scipy.fft.dct(np.eye(d), axis=0, norm="ortho")
    logits = Z @ (C @ np.diag(fm.radii))
    ref = np.exp(logits - logits.max(1, keepdims=True))
    ref /= ref.sum(1, keepdims=True)
    np.testing.assert_allclose(fm(Z), ref, rtol=1e-12)
    assert not features.DCTReleased.unbiased
    # radii are standard-normal quantiles, frequencies the *columns* of C scaled by t
    np.testing.assert_allclose(fm.standard_frequencies, (C * fm.radii).T, atol=1e-14)


def test_dct_paper_map_prefactor_and_radii():
    d = 8
    fm = features.make("dct", kernels.Gaussian(1.0), d, dim=d, seed=3, sampler="sobol")
    Z = np.random.default_rng(4).normal(size=(3, d)) * 0.3
    C = dct_matrix(d)
    ref = np.exp(fm.radii * (Z @ C.T) - (Z**2).sum(1, keepdims=True)) / np.sqrt(d)
    np.testing.assert_allclose(fm(Z), ref, rtol=1e-12)
    assert np.all(fm.radii > 0)  # chi_d radii
    normal = features.make("dct", kernels.Gaussian(1.0), d, dim=d, seed=3, radial="normal")
    assert np.any(normal.radii < 0)


def test_dct_is_biased_for_fixed_directions():
    """With m = d fixed DCT directions the average over radii reaches its own limit, not K_G.

    The mean of R = 3000 independent maps must match the exact limit of the fixed-direction
    estimator within 5 standard errors, and differ from K_G by more than 5.
    """
    d = 4
    k = kernels.Gaussian(1.0)
    Z = np.random.default_rng(5).normal(size=(3, d)) * 0.6
    R = 3000
    est = np.stack([features.make("dct", k, d, dim=d, seed=s).gram(Z) for s in range(R)])
    se = mean_and_se(est, axis=0)[1]
    # the exact limit for these fixed directions v_i (rows of the DCT matrix) and chi_d radii:
    # E phi(x).phi(y) = exp(-|x|^2 - |y|^2) mean_i E_r exp(r v_i.(x + y)), r ~ chi_d (quadrature)
    from scipy import integrate, stats

    C = features.dct_matrix(d)

    def chi_mgf(a: float) -> float:
        # chi_d has no mass worth counting beyond r = 40
        return integrate.quad(lambda r: np.exp(r * a) * stats.chi.pdf(r, d), 0, 40.0)[0]

    limit = np.array(
        [
            [np.exp(-x @ x - y @ y) * np.mean([chi_mgf(v @ (x + y)) for v in C]) for y in Z]
            for x in Z
        ]
    )
    assert np.abs(est.mean(0) - limit).max() < 5 * se.max()  # the estimate is the right one
    assert (np.abs(est.mean(0) - k(Z)) / se).max() > 5  # ... and it is biased for K_G


def test_bad_input_names_the_parameter():
    k = kernels.Gaussian()
    with pytest.raises(ValueError, match="map must be one of"):
        features.make("relu", k, 4, dim=2)
    with pytest.raises(ValueError, match="n_features"):
        features.make("sincos", k, 0, dim=2)
    with pytest.raises(ValueError, match="dim"):
        features.make("sincos", k, 4, dim=0)
    with pytest.raises(ValueError, match="cannot target the laplacian"):
        features.make("positive", kernels.Laplacian(), 4, dim=2)
    with pytest.raises(ValueError, match="sampler must be one of"):
        features.make("dct", k, 4, dim=2, sampler="orthogonal")
    with pytest.raises(ValueError, match="transform"):
        features.make("dct", k, 4, dim=2, transform="fft")
    with pytest.raises(ValueError, match="radial"):
        features.make("dct", k, 4, dim=2, radial="gamma")
    fm = features.make("sincos", k, 4, dim=2, seed=0)
    with pytest.raises(ValueError, match="NaN"):
        fm(np.array([[np.nan, 0.0]]))
    with pytest.raises(ValueError, match="2 columns"):
        fm(np.ones((3, 3)))
    with pytest.raises(ValueError, match=r"shape \(\.\.\., 2\)"):
        fm(torch.ones(3, 3))
    with pytest.raises(ValueError, match="weights must be one of"):
        features.make("sincos", k, 4, dim=2, weights="optimal")
    assert "SinCos(kernel=Gaussian(length_scale=1.0), n_features=4" in repr(fm)
