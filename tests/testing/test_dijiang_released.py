"""kernelapprox.testing on a re-implementation of DiJiang's released feature map.

The released code (YuchuanTian/DiJiang, ``modeling_gpt_neox_dijiang.py``; see
/work/shared/reference/dijiang.md Sec. 2) builds ``P = C @ diag(t)`` with ``C`` the orthonormal
DCT-II matrix (``scipy.fft.dct(eye, axis=0, norm="ortho")``) and
``t = Normal(0, 1).icdf(torch.rand(d))``, and uses ``phi(x) = softmax(x @ P)`` over the feature
axis. Written here in plain torch, independently of :mod:`kernelapprox.features`.

Expected verdicts: the map fails ``assert_unbiased`` against ``exp(q.k)`` (and against
``d * exp(q.k)``: no constant fixes it); its Gram is PSD; and
``features.make("dct_released", ...)`` reproduces it given the same radii. Not bit for bit:
the package builds ``C`` from the cosine formula (``dct_matrix``) instead of scipy's FFT-based
``dct`` (entries differ by up to ~1e-15) and evaluates the softmax in log space
(``exp(z - logsumexp(z))``); the agreement is asserted to 1e-12 relative in float64, which is
a few hundred ulps at d = 64.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.fft
import torch

from kernelapprox import features, kernels
from kernelapprox.estimators.replications import mean_and_se
from kernelapprox.testing import assert_psd_gram, assert_unbiased
from tests.conftest import THOROUGH

DRAWS = 600 if THOROUGH else 200
D = 4
X = torch.as_tensor(0.7 * np.random.default_rng(11).normal(size=(5, D)))


def released_projection(t: torch.Tensor) -> torch.Tensor:
    d = t.shape[0]
    C = torch.as_tensor(scipy.fft.dct(np.eye(d), axis=0, norm="ortho"), dtype=t.dtype)
    return C @ torch.diag(t)


def released_phi(t: torch.Tensor):
    P = released_projection(t)
    return lambda x: torch.softmax(x @ P, dim=-1)


def make_released(seed: int):
    gen = torch.Generator().manual_seed(seed)
    u = torch.rand(D, generator=gen, dtype=torch.float64)
    t = torch.distributions.Normal(0.0, 1.0).icdf(u)
    return released_phi(t)


def test_released_map_is_not_an_unbiased_softmax_estimate():
    softmax = kernels.Softmax()
    with pytest.raises(AssertionError, match="assert_unbiased"):
        assert_unbiased(make_released, softmax, X, n_draws=DRAWS)
    with pytest.raises(AssertionError, match="assert_unbiased"):
        assert_unbiased(make_released, lambda A, B: D * softmax(A, B), X, n_draws=DRAWS)


def test_released_gram_is_psd():
    assert_psd_gram(lambda A: make_released(0)(A) @ make_released(0)(A).T, X)


@pytest.mark.parametrize("d", [1, 4, 7, 64])
@pytest.mark.parametrize("transform", ["fast", "dense"])
def test_package_map_reproduces_the_released_map(d, transform):
    fm = features.make("dct_released", kernels.Softmax(), d, dim=d, seed=d, transform=transform)
    t = torch.as_tensor(fm.radii)
    x = torch.randn(9, d, generator=torch.Generator().manual_seed(d), dtype=torch.float64)
    ours, ref = fm(x), released_phi(t)(x)
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=0.0)
    # float32, as in training: the same map to float32 rounding
    ours32 = fm(x.float())
    torch.testing.assert_close(ours32, released_phi(t.float())(x.float()), rtol=2e-5, atol=1e-7)


def test_package_map_fails_like_the_released_one():
    """The package map fails ``assert_unbiased`` *because* it estimates what the released map
    estimates: its mean Gram over independent draws agrees with the independent re-implementation
    (independent radii) within 5 combined standard errors, and that mean is not exp(q.k)."""

    def make(seed):
        return features.make("dct_released", kernels.Softmax(), D, dim=D, seed=seed)

    with pytest.raises(AssertionError, match="assert_unbiased"):
        assert_unbiased(make, kernels.Softmax(), X, n_draws=DRAWS)
    ours = np.stack([make(s).gram(X.numpy()) for s in range(DRAWS)])
    ref = np.stack(
        [(lambda P: (P @ P.T).numpy())(make_released(10_000 + s)(X)) for s in range(DRAWS)]
    )
    se = np.sqrt(ours.var(0, ddof=1) / DRAWS + ref.var(0, ddof=1) / DRAWS)
    assert np.max(np.abs(ours.mean(0) - ref.mean(0)) / se) < 5
    exact = kernels.Softmax()(X.numpy())
    ours_mean, ours_se = mean_and_se(ours, axis=0)
    assert np.max(np.abs(ours_mean - exact) / ours_se) > 5
