"""The dtype policy: a feature map keeps its input's floating dtype unless ``dtype=`` is set."""

import numpy as np
import pytest
import torch

from kernelapprox import features, kernels
from kernelapprox.features import MAPS

MAP_KERNELS = [
    ("sincos", kernels.Gaussian(1.5)),
    ("cos_offset", kernels.Laplacian(2.0)),
    ("fourier", kernels.Gaussian(1.5)),
    ("positive", kernels.Softmax(0.5)),
    ("hyperbolic", kernels.Gaussian(1.5)),
    ("dct", kernels.Gaussian(1.5)),
    ("dct_released", kernels.Softmax(0.5)),
]
REAL_TO_COMPLEX = {np.float32: np.complex64, np.float64: np.complex128}


def expected(map_name: str, real: type) -> np.dtype:
    return np.dtype(REAL_TO_COMPLEX[real] if MAPS[map_name].complex_valued else real)


@pytest.mark.parametrize(("map_name", "kernel"), MAP_KERNELS)
def test_numpy_and_torch_keep_the_input_dtype(map_name, kernel):
    X = np.random.default_rng(0).normal(size=(6, 4)) / 2
    fm = features.make(map_name, kernel, 8, dim=4, seed=0)
    ref = fm(X)
    assert ref.dtype == expected(map_name, np.float64)
    out = fm(X.astype(np.float32))
    assert isinstance(out, np.ndarray) and out.dtype == expected(map_name, np.float32)
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6)
    t = fm(torch.tensor(X, dtype=torch.float32))
    assert t.dtype == torch.from_numpy(out).dtype
    np.testing.assert_array_equal(t.numpy(), out)  # one implementation for both
    assert fm.gram(X.astype(np.float32)).dtype == np.float32
    assert fm(X.round().astype(np.int64)).dtype == expected(map_name, np.float64)
    if MAPS[map_name].exponential:
        assert fm.log_features(X.astype(np.float32)).dtype == np.float32


@pytest.mark.parametrize("dtype", [np.float64, "float64", torch.float64])
def test_dtype_argument_overrides_the_input(dtype):
    X = np.random.default_rng(1).normal(size=(5, 3)).astype(np.float32)
    fm = features.make("sincos", kernels.Gaussian(), 16, dim=3, seed=0, dtype=dtype)
    assert fm(X).dtype == np.float64
    assert fm(torch.from_numpy(X)).dtype == torch.float64
    fm32 = features.make("sincos", kernels.Gaussian(), 16, dim=3, seed=0, dtype="float32")
    assert fm32(X.astype(np.float64)).dtype == np.float32
    # frequencies are drawn in float64 whatever the compute dtype
    assert fm32.standard_frequencies.dtype == np.float64
    np.testing.assert_array_equal(fm32.standard_frequencies, fm.standard_frequencies)
    assert fm32.pair_terms(X, X).dtype == np.float64
    W = features.SinCos.from_frequencies(kernels.Gaussian(), fm.frequencies, dtype="float32")
    assert W(X.astype(np.float64)).dtype == np.float32


@pytest.mark.parametrize("bad", ["int32", np.complex64, torch.int64, "half-ish", object])
def test_bad_dtype_names_the_parameter(bad):
    with pytest.raises(ValueError, match="dtype must be None"):
        features.make("sincos", kernels.Gaussian(), 4, dim=2, dtype=bad)


def test_half_precision_where_torch_has_the_kernels():
    X = np.random.default_rng(2).normal(size=(4, 3)) / 2
    for name, kernel in (("sincos", kernels.Gaussian()), ("positive", kernels.Softmax())):
        fm = features.make(name, kernel, 8, dim=3, seed=0)
        out = fm(X.astype(np.float16))
        assert out.dtype == np.float16
        np.testing.assert_allclose(out, fm(X), atol=5e-3)
        assert fm(torch.tensor(X, dtype=torch.bfloat16)).dtype == torch.bfloat16
    dense = features.make("dct", kernels.Gaussian(), 8, dim=3, seed=0, transform="dense")
    assert dense(X.astype(np.float16)).dtype == np.float16
    for name in ("fourier", "dct"):
        fm = features.make(name, kernels.Gaussian(), 8, dim=3, seed=0)
        with pytest.raises(TypeError, match=f"map '{name}' cannot compute in float16"):
            fm(X.astype(np.float16))
        with pytest.raises(TypeError, match="cannot compute in bfloat16"):
            fm(torch.tensor(X, dtype=torch.bfloat16))
        assert fm(X.astype(np.float16).astype(np.float32)).dtype != np.float16
