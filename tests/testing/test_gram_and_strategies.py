"""assert_psd_gram and the hypothesis strategies (which drive property tests of the package)."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import kernelapprox.testing as kt
from kernelapprox import features
from kernelapprox.features import incompatibility
from kernelapprox.sampling import SAMPLERS
from kernelapprox.testing import assert_psd_gram, assert_unbiased, strategies
from tests.conftest import THOROUGH


@given(X=strategies.data_matrices(max_rows=10), kernel=strategies.kernels())
def test_exact_kernel_grams_are_psd(X, kernel):
    eigenvalues = assert_psd_gram(kernel, X)
    assert eigenvalues.shape == (X.shape[0],)


@given(config=strategies.feature_map_configs(weights=("uniform", "box")), data=st.data())
def test_every_valid_feature_map_gives_a_psd_gram(config, data):
    X = data.draw(strategies.data_matrices(dim=config.dim, max_rows=7))
    fm = config.make(seed=data.draw(st.integers(0, 2**32 - 1)))
    assert_psd_gram(fm.gram, X)  # numpy, possibly from complex features
    assert_psd_gram(fm.gram(torch.as_tensor(X, dtype=torch.float32)))


@settings(max_examples=40 if THOROUGH else 6)
@given(config=strategies.feature_map_configs(unbiased_only=True), data=st.data())
def test_unbiased_configurations_pass_assert_unbiased(config, data):
    X = data.draw(strategies.data_matrices(dim=config.dim, max_rows=4, max_norm=0.8))
    check = assert_unbiased(config.make, config.kernel, X, n_draws=120)
    assert check.passed and config.unbiased


def test_psd_failures_are_reported():
    with pytest.raises(AssertionError, match="smallest eigenvalue -1"):
        assert_psd_gram(np.array([[1.0, 2.0], [2.0, 1.0]]))
    with pytest.raises(AssertionError, match="not Hermitian"):
        assert_psd_gram(np.array([[1.0, 0.5], [0.4, 1.0]]))
    with pytest.raises(AssertionError, match="NaN"):
        assert_psd_gram(np.array([[1.0, np.nan], [np.nan, 1.0]]))
    with pytest.raises(AssertionError, match="square"):
        assert_psd_gram(np.ones((2, 3)))
    with pytest.raises(ValueError, match="X is required"):
        assert_psd_gram(lambda X: X @ X.T)
    with pytest.raises(ValueError, match="rtol"):
        assert_psd_gram(np.eye(2), rtol=-1.0)
    # a tiny negative eigenvalue from rounding passes; a clearly negative one does not
    G = np.diag([1.0, -1e-17])
    assert_psd_gram(G)
    with pytest.raises(AssertionError, match=r"smallest eigenvalue -1e-06 < .* 1 of 2 .* negative"):
        assert_psd_gram(np.diag([1.0, -1e-6]))
    # complex Hermitian PSD
    P = np.array([[1.0, 1j], [0.5, 2.0]])
    assert_psd_gram(P @ P.conj().T)


@given(X=strategies.data_matrices(max_rows=9, max_dim=4, max_norm=2.5))
def test_data_matrices_are_bounded_and_finite(X):
    assert X.dtype == np.float64 and X.ndim == 2 and 1 <= X.shape[0] <= 9 and X.shape[1] <= 4
    assert np.all(np.isfinite(X)) and np.all(np.linalg.norm(X, axis=1) <= 2.5 * (1 + 1e-12))


@given(pair=strategies.data_pairs(max_rows=5))
def test_data_pairs_share_the_dimension(pair):
    X, Y = pair
    assert X.shape[1] == Y.shape[1]


@given(config=strategies.feature_map_configs(weights=("uniform", "box")))
def test_feature_map_configs_are_valid(config):
    assert config.map in features.MAPS and config.sampler in SAMPLERS
    assert incompatibility(config.kernel.name, config.map, config.sampler, config.weights) == ""
    fm = config.make(seed=0)
    assert fm.n_features == config.n_features and fm.dim == config.dim


@given(shape=strategies.attention_shapes(max_tokens=20, min_tokens=2))
def test_attention_shapes_in_bounds(shape):
    B, T, H, D = shape
    assert 1 <= B <= 3 and 2 <= T <= 20 and 1 <= H <= 3 and 1 <= D <= 33


@given(qkv=strategies.attention_inputs(dtype=torch.float32, value_dim=2))
def test_attention_inputs(qkv):
    q, k, v = qkv
    assert q.shape == k.shape and v.shape == (*q.shape[:3], 2) and q.dtype == torch.float32


def test_no_valid_configuration_is_an_error():
    @given(strategies.feature_map_configs(maps=("dct_released",), kernel_families=("gaussian",)))
    def draw(config):
        raise AssertionError("unreachable: dct_released cannot target the Gaussian kernel")

    with pytest.raises(ValueError, match="no valid"):
        draw()


def test_docstring_examples_run():
    """The examples in every docstring of kernelapprox.testing are doctests."""
    import kernelapprox.testing.attention as attention
    import kernelapprox.testing.gram as gram
    import kernelapprox.testing.moments as moments

    for module in (kt, attention, gram, moments, strategies):
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert result.failed == 0 and result.attempted > 0, module.__name__
