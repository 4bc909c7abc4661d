"""The hand-written backward pass of the chunked causal products (``attention.chunked``).

Checked two ways: :func:`torch.autograd.gradcheck` in float64 against finite differences of
the forward pass (every input that takes a gradient, both outputs, non-trivial scales and
grouped queries), and against autograd of a direct transcription of the forward formula.
The features' shifted exponential (``attention.maps.ShiftedExp``, which overwrites its fresh
input) is checked the same two ways. Causality of the gradients for non-finite inputs is
tested on ``feature_attention`` in ``test_masking.py``.
"""

from __future__ import annotations

import pytest
import torch

from kernelapprox.attention.chunked import ChunkProducts
from kernelapprox.attention.maps import ShiftedExp


def _inputs(Bh=2, N=3, C=4, G=1, F=5, D=3, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)

    def rand(*shape):
        return torch.rand(*shape, generator=g, dtype=dtype)

    Q, K = rand(Bh, N, C * G, F), rand(Bh, N, C, F)
    V, S0 = torch.randn(Bh, N, C, D, generator=g, dtype=dtype), rand(Bh, F, D)
    future = torch.ones(C, C, dtype=torch.bool).triu(1)
    weight = rand(Bh, N, C, C).masked_fill(future, 0.0)
    # scales away from 1 (rescaled rows, decaying states) so that every factor is exercised
    row_scale, value_scale = 0.2 + rand(Bh, N, C), 0.2 + rand(Bh, N, C)
    decay = 0.2 + rand(Bh, N)
    return (Q, K, V, S0), (weight, future, row_scale, value_scale, decay)


def _transcribed(Q, K, V, S0, weight, future, row_scale, value_scale, decay):
    """The module docstring's forward formula, chunk by chunk, for autograd."""
    Bh, N, CG, _ = Q.shape
    C = K.shape[2]
    G = CG // C
    P, outs = S0, []
    for n in range(N):
        A = (Q[:, n] @ K[:, n].transpose(-1, -2)).view(Bh, C, G, C) * weight[:, n, :, None, :]
        A = torch.where(future[:, None, :], 0.0, A).view(Bh, CG, C)
        read = (Q[:, n] @ P).view(Bh, C, G, -1) * row_scale[:, n, :, None, None]
        outs.append(A @ V[:, n] + read.view(Bh, CG, -1))
        Vw = V[:, n] * value_scale[:, n, :, None]
        P = P * decay[:, n, None, None] + K[:, n].transpose(-1, -2) @ Vw
    return torch.stack(outs, dim=1), P


# Bh > N as well as Bh <= N: the products into the walks' buffers loop over the shorter axis.
@pytest.mark.parametrize(("G", "Bh", "N"), [(1, 2, 3), (2, 2, 3), (1, 5, 2)])
def test_gradcheck_in_float64(G, Bh, N):
    (Q, K, V, S0), consts = _inputs(G=G, Bh=Bh, N=N)
    ins = [x.requires_grad_() for x in (Q, K, V, S0)]
    assert torch.autograd.gradcheck(lambda *x: ChunkProducts.apply(*x, *consts), ins)


@pytest.mark.parametrize(("G", "Bh"), [(1, 2), (3, 2), (2, 7)])
def test_forward_and_gradients_equal_autograd_of_the_formula(G, Bh):
    (Q, K, V, S0), consts = _inputs(Bh=Bh, N=4, C=3, G=G, F=6, D=4, seed=1)
    ins = [x.requires_grad_() for x in (Q, K, V, S0)]
    out, final = ChunkProducts.apply(*ins, *consts)
    ref_out, ref_final = _transcribed(*ins, *consts)
    torch.testing.assert_close(out, ref_out, rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(final, ref_final, rtol=1e-13, atol=1e-13)
    g = torch.Generator().manual_seed(5)
    dO = torch.randn(out.shape, generator=g, dtype=out.dtype)
    dS = torch.randn(final.shape, generator=g, dtype=final.dtype)
    ours = torch.autograd.grad((out * dO).sum() + (final * dS).sum(), ins)
    ref = torch.autograd.grad((ref_out * dO).sum() + (ref_final * dS).sum(), ins)
    for name, a, b in zip("QKVS", ours, ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12, msg=f"d{name}")


def _logs_and_shift(seed=2):
    g = torch.Generator().manual_seed(seed)
    logs = torch.randn(6, 5, 2, generator=g, dtype=torch.float64)
    shift = torch.randn(6, 1, 1, generator=g, dtype=torch.float64)
    return logs.requires_grad_(), shift.requires_grad_()


def test_shifted_exp_gradcheck_in_float64():
    logs, shift = _logs_and_shift()
    # ``logs * 1`` hands the function a fresh tensor each call, as the feature maps do
    assert torch.autograd.gradcheck(lambda a, b: ShiftedExp.apply(a * 1, b), (logs, shift))


def test_shifted_exp_equals_autograd_of_exp_and_overwrites_only_its_fresh_input():
    logs, shift = _logs_and_shift(3)
    fresh = logs * 2.0
    before = fresh.detach().clone()
    y = ShiftedExp.apply(fresh, shift)
    ref = torch.exp(before + shift)
    torch.testing.assert_close(y, ref, rtol=0, atol=0)
    assert fresh.data_ptr() == y.data_ptr()  # written in place: no new logs-sized tensor
    dy = torch.randn(y.shape, generator=torch.Generator().manual_seed(4), dtype=y.dtype)
    ours = torch.autograd.grad((y * dy).sum(), (logs, shift))
    ref = torch.autograd.grad((torch.exp(logs * 2.0 + shift) * dy).sum(), (logs, shift))
    for a, b in zip(ours, ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-14, atol=1e-14)
    # a shift that needs no gradient gets none
    fixed = shift.detach()
    (d_logs,) = torch.autograd.grad((ShiftedExp.apply(logs * 2.0, fixed) * dy).sum(), (logs,))
    torch.testing.assert_close(d_logs, ref[0], rtol=1e-14, atol=1e-14)


def test_shifted_exp_owned_writes_the_gradient_into_y_only_when_the_graph_is_released():
    logs, shift = _logs_and_shift(5)
    dy = torch.randn(logs.shape, generator=torch.Generator().manual_seed(6), dtype=logs.dtype)
    ref = torch.autograd.grad((ShiftedExp.apply(logs * 1, shift) * dy).sum(), (logs, shift))
    # retain_graph: y must survive the first pass, so the second one sees the same gradients
    y = ShiftedExp.apply(logs * 1, shift, True)
    loss = (y * dy).sum()
    first = torch.autograd.grad(loss, (logs, shift), retain_graph=True)
    second = torch.autograd.grad(loss, (logs, shift))
    for a, b, r in zip(first, second, ref, strict=True):
        torch.testing.assert_close(a, r, rtol=0, atol=0)
        torch.testing.assert_close(b, r, rtol=0, atol=0)
    # a released graph: the gradient lands in y's storage (no new tensor), same numbers
    y = ShiftedExp.apply(logs * 1, shift, True)
    saved = y.detach().clone()
    released = torch.autograd.grad((y * dy).sum(), (logs, shift))
    for a, r in zip(released, ref, strict=True):
        torch.testing.assert_close(a, r, rtol=0, atol=0)
    assert not torch.equal(y.detach(), saved)  # y was consumed, as documented
    # create_graph: the gradient itself stays differentiable (y is not overwritten)
    y = ShiftedExp.apply(logs * 1, shift, True)
    (d_logs,) = torch.autograd.grad((y * dy).sum(), (logs,), create_graph=True)
    (dd,) = torch.autograd.grad(d_logs.sum(), (logs,))
    torch.testing.assert_close(dd, torch.exp(logs + shift) * dy, rtol=1e-14, atol=0)


def test_attention_gradients_survive_retain_graph_and_match_a_released_graph():
    from kernelapprox import features, kernels
    from kernelapprox.attention import feature_attention

    fm = features.make("positive", kernels.Softmax(), 16, dim=8, seed=0)
    g = torch.Generator().manual_seed(7)
    q, k, v = (torch.randn(2, 2, 40, 8, generator=g, requires_grad=True) for _ in range(3))
    for causal in (True, False):
        out = feature_attention(q, k, v, fm, causal=causal, layout="bhtd", chunk_size=16)
        loss = (out * torch.linspace(-1, 1, out.numel()).view(out.shape)).sum()
        first = torch.autograd.grad(loss, (q, k, v), retain_graph=True)
        second = torch.autograd.grad(loss, (q, k, v))
        out = feature_attention(q, k, v, fm, causal=causal, layout="bhtd", chunk_size=16)
        loss = (out * torch.linspace(-1, 1, out.numel()).view(out.shape)).sum()
        released = torch.autograd.grad(loss, (q, k, v))
        for a, b, c in zip(first, second, released, strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
            torch.testing.assert_close(a, c, rtol=0, atol=0)
