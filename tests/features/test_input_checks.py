"""The public entry points of every feature map check torch input exactly as numpy input.

NaN/inf is a ``ValueError``, complex values a ``TypeError`` and a 0-d input a ``ValueError``,
each naming the parameter; the per-frequency functions that attention calls stay unchecked.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from kernelapprox import features, kernels

DIM = 3


def _map(name: str) -> features.FeatureMap:
    cls = features.MAPS[name]
    kernel = kernels.Softmax() if "softmax" in cls.supported_kernels else kernels.Gaussian()
    return features.make(name, kernel, 4, dim=DIM, seed=0)


def _bad(kind: str, backend: str) -> Any:
    x = np.zeros((2, DIM))
    if kind == "nan":
        x[1, 2] = np.nan
    elif kind == "inf":
        x[0, 0] = -np.inf
    elif kind == "complex":
        x = x + 1j
    elif kind == "0-d":
        x = np.array(0.5)
    return torch.from_numpy(x) if backend == "torch" else x


ERRORS = {
    "nan": (ValueError, "contains NaN or infinite"),
    "inf": (ValueError, "contains NaN or infinite"),
    "complex": (TypeError, "must be real-valued"),
    "0-d": (ValueError, "must have shape"),
}


@pytest.mark.parametrize("backend", ["torch", "numpy"])
@pytest.mark.parametrize("kind", list(ERRORS))
@pytest.mark.parametrize("name", sorted(features.MAPS))
def test_call_and_gram_check_both_backends_alike(name, kind, backend):
    fm = _map(name)
    error, message = ERRORS[kind]
    good = _bad("none", backend)
    with pytest.raises(error, match=f"^X {message}"):
        fm(_bad(kind, backend))
    with pytest.raises(error, match=f"^X {message}"):
        fm.gram(_bad(kind, backend))
    with pytest.raises(error, match=f"^Y {message}"):
        fm.gram(good, _bad(kind, backend))
    if fm.exponential:
        with pytest.raises(error, match=f"^X {message}"):
            fm.log_features(_bad(kind, backend))


@pytest.mark.parametrize("name", sorted(features.MAPS))
def test_good_torch_input_is_unchanged(name):
    fm = _map(name)
    X = torch.linspace(-1, 1, 12, dtype=torch.float64).reshape(2, 2, DIM)
    out = fm(X)
    assert out.shape == (2, 2, fm.output_dim) and torch.isfinite(torch.as_tensor(out)).all()
    np.testing.assert_allclose(fm(X[0].numpy()), out[0].numpy(), rtol=1e-12)
    assert fm(torch.zeros(2, DIM, dtype=torch.int64)).real.dtype == torch.get_default_dtype()


def test_attention_hot_path_is_not_checked():
    """Attention calls per_frequency on its own (possibly NaN-padded) inputs: no check there."""
    fm = _map("positive")
    u = torch.full((2, DIM), float("nan"))
    assert torch.isnan(fm.per_frequency(u, fm.tensors(u.device, u.dtype))).all()


@pytest.mark.parametrize("backend", ["torch", "numpy"])
@pytest.mark.parametrize(("kind", "error"), [("nan", ValueError), ("complex", ValueError)])
def test_sklearn_transformer_checks_tensors_like_arrays(backend, kind, error):
    rf = features.RandomFeatures(n_features=4, random_state=0).fit(np.zeros((3, DIM)))
    with pytest.raises(error):  # scikit-learn's own convention: ValueError for both
        rf.transform(_bad(kind, backend))
    with pytest.raises(ValueError):
        rf.transform(_bad("0-d", backend))
