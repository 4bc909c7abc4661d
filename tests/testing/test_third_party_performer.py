"""kernelapprox.testing on a third-party implementation: performer-pytorch's ``softmax_kernel``.

What it computes (performer_pytorch 1.1.4, ``softmax_kernel``), for data ``x`` in ``R^d`` and a
projection ``W`` (``m x d``) from ``gaussian_orthogonal_random_matrix`` (orthogonal blocks with
chi_d row norms: every row is marginally N(0, I_d)), with ``u = d^{-1/4} x``:

    phi(x)_j = m^{-1/2} (exp(w_j.u - |u|^2/2 - M) + eps),

where the stabilizer ``M`` is ``max_j w_j.u`` for each query row (``is_query=True``) and the
maximum over *all* rows and features for keys (``is_query=False``). Without ``eps`` and
``M`` the product ``phi(q).phi(k)`` is FAVOR+'s positive-feature estimate, unbiased for
``exp(u_q.u_k) = exp(q.k / sqrt(d))``. The stabilizers multiply it by ``exp(-M_q - M_K)``, a
random factor that depends on the draw and on the query, so the raw features do *not*
estimate ``exp(q.k / sqrt(d))`` (not even up to a constant); the factor cancels in attention's
row normalization.

A second finding: ``orthogonal_matrix_chunk`` takes ``Q`` from ``torch.linalg.qr`` without the
sign fix ``Q diag(sign(diag R))`` (Mezzadri, Notices AMS 2007), so ``Q`` is not Haar: row ``j`` of
each block has its ``j``-th coordinate mostly negative (row 0: always). The rows are then not
isotropic, and even the de-stabilized estimate is biased for inputs along the coordinate axes.

Expected verdicts (asserted below):

* raw ``softmax_kernel`` features: fail ``assert_unbiased`` for ``exp(q.k/sqrt(d))``;
* de-stabilized (``eps=0``, ``M`` multiplied back) with performer's projection: fail, because
  of the missing sign fix (the sign bias itself is checked directly);
* de-stabilized with performer's projection and independent random row signs (which makes
  the blocks Haar), or with :mod:`kernelapprox.sampling`'s orthogonal frequencies: pass for
  ``exp(q.k/sqrt(d))`` and fail for ``exp(q.k)`` (the ``d^{-1/4}`` data normalizer);
* the row-normalized raw and de-stabilized Grams agree to rounding (the stabilizers cancel in
  attention).

Needs the ``performer-pytorch`` package (skipped without it).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from kernelapprox import kernels, sampling
from kernelapprox.testing import assert_psd_gram, assert_unbiased
from tests.conftest import THOROUGH

performer = pytest.importorskip("performer_pytorch.performer_pytorch")

D, M = 6, 16
DRAWS = 600 if THOROUGH else 150
rng = np.random.default_rng(7)
AXES = 1.5 * torch.eye(D, dtype=torch.float64)
# inputs along the coordinate axes (where the sign bias shows) and generic ones
Q = torch.cat([AXES[:3], -AXES[:2], torch.as_tensor(0.8 * rng.normal(size=(2, D)))])
K = torch.cat([AXES[:3], torch.as_tensor(0.8 * rng.normal(size=(2, D)))])


def projection(seed: int) -> torch.Tensor:
    """performer's own projection, drawn from torch's global generator under ``seed``."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return performer.gaussian_orthogonal_random_matrix(M, D).to(torch.float64)


def raw(W: torch.Tensor, *, is_query: bool, eps: float = 1e-4):
    def phi(X: torch.Tensor) -> torch.Tensor:
        out = performer.softmax_kernel(
            X[None, None], projection_matrix=W, is_query=is_query, eps=eps
        )
        return out[0, 0]

    return phi


def stabilizer(W: torch.Tensor, X: torch.Tensor, *, is_query: bool) -> torch.Tensor:
    """The ``M`` that softmax_kernel subtracts (its data_dash maximum), recomputed here."""
    dash = (X * D**-0.25) @ W.T
    return dash.amax(dim=-1, keepdim=True) if is_query else dash.amax()


def destabilized(W: torch.Tensor, *, is_query: bool):
    phi = raw(W, is_query=is_query, eps=0.0)
    return lambda X: phi(X) * torch.exp(stabilizer(W, X, is_query=is_query))


def pair(W: torch.Tensor, make_phi):
    return make_phi(W, is_query=True), make_phi(W, is_query=False)


def make_raw(seed: int):
    return pair(projection(seed), raw)


def make_destabilized(seed: int):
    return pair(projection(seed), destabilized)


def make_sign_fixed(seed: int):
    """performer's projection with independent random row signs: Haar blocks (see above)."""
    W = projection(seed)
    gen = torch.Generator().manual_seed(seed)
    signs = torch.randint(0, 2, (M, 1), generator=gen).to(W.dtype) * 2 - 1
    return pair(W * signs, destabilized)


def make_package_orthogonal(seed: int):
    W = sampling.sample_frequencies("orthogonal", kernels.Softmax(), M, D, seed=seed)
    return pair(torch.as_tensor(W), destabilized)


SOFTMAX_SCALED = kernels.Softmax(scale=1.0 / math.sqrt(D))  # exp(q.k / sqrt(d))


def test_raw_softmax_kernel_is_not_an_unbiased_kernel_estimate():
    with pytest.raises(AssertionError, match="assert_unbiased"):
        assert_unbiased(make_raw, SOFTMAX_SCALED, Q, K, n_draws=DRAWS)


def test_orthogonal_blocks_lack_the_sign_fix():
    first = []
    for seed in range(200):
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            first.append(float(performer.orthogonal_matrix_chunk(D)[0, 0]))
    assert max(first) <= 0.0  # a Haar row would be positive half of the time
    with pytest.raises(AssertionError, match="assert_unbiased"):
        assert_unbiased(make_destabilized, SOFTMAX_SCALED, Q, K, n_draws=DRAWS)


@pytest.mark.parametrize("make", [make_sign_fixed, make_package_orthogonal])
def test_destabilized_features_with_haar_blocks_are_unbiased_for_exp_qk_over_sqrt_d(make):
    assert assert_unbiased(make, SOFTMAX_SCALED, Q, K, n_draws=DRAWS).passed
    # the data normalizer d^{-1/4} is part of the target: without it the mean is far off
    with pytest.raises(AssertionError, match=r"assert_unbiased: .* differs from the kernel"):
        assert_unbiased(make, kernels.Softmax(1.0), Q, K, n_draws=DRAWS)


def test_stabilizers_cancel_in_row_normalized_attention():
    W = projection(3)
    a = raw(W, is_query=True, eps=0.0)(Q) @ raw(W, is_query=False, eps=0.0)(K).T
    b = destabilized(W, is_query=True)(Q) @ destabilized(W, is_query=False)(K).T
    torch.testing.assert_close(a / a.sum(-1, keepdim=True), b / b.sum(-1, keepdim=True))
    assert not torch.allclose(a, b)  # the un-normalized values differ by exp(-M_q - M_K)


def test_query_features_give_a_psd_gram():
    phi = raw(projection(5), is_query=True)
    assert_psd_gram(lambda X: phi(X) @ phi(X).T, Q)
