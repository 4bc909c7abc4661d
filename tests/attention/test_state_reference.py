"""An incoming state whose reference is below, at or above the keys' log-scales.

:class:`~kernelapprox.attention.AttentionState` stores ``(kv, z)`` relative to ``exp(r)``;
the true state is ``exp(r) (kv, z)``. The algorithms rebase it to the running maximum
``M = max(r, c_j)`` of the keys' per-token log-scales ``c_j``, multiplying it by
``exp(r - M)``. When ``r >= max c_j`` that factor is 1 and a missing rescaling goes
unnoticed, so here the reference is also far *below* the keys' (the usual case when a
sequence resumes with keys larger than the earlier ones). References: the fp64 quadratic
oracle fed the absolute state, and one pass over all keys (a non-causal state splits a key
set like a sum: ``phi(q)^T (S_A + S_B) / phi(q)^T (z_A + z_B)``).
"""

from __future__ import annotations

import math

import pytest
import torch
from attention_helpers import TOLERANCE, assert_close, make_map, qkv

from kernelapprox.attention import AttentionState, feature_attention, quadratic_oracle

TOL = TOLERANCE[torch.float64]
#: References of the stored state: far below the keys' log-scales (their maxima per head are
#: 1.8 to 3.9 for these inputs and maps), near them, and above all of them.
REFERENCES = [-12.0, -1.0, 6.0]


def _absolute_state(fm, B: int, Hk: int, Dv: int, seed: int):
    """A positive absolute state ``(S0, z0)`` of the size of a few keys' contributions."""
    g = torch.Generator().manual_seed(seed)
    S0 = 0.3 * torch.rand(B, Hk, fm.output_dim, Dv, generator=g, dtype=torch.float64)
    z0 = 0.3 * (torch.rand(B, Hk, fm.output_dim, generator=g, dtype=torch.float64) + 0.5)
    return S0, z0


@pytest.mark.parametrize("name", ["positive", "hyperbolic", "dct"])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("reference", REFERENCES)
def test_state_at_any_reference_matches_the_oracle(name, causal, reference):
    B, T, H, Hk, D, Dv = 2, 21, 2, 1, 6, 3
    fm = make_map(name, D, 16, seed=1)
    q, k, v = qkv(B, T, H, Hk, D, Dv, seed=5)
    S0, z0 = _absolute_state(fm, B, Hk, Dv, seed=2)
    factor = math.exp(-reference)
    kv_rel = (S0 * factor).requires_grad_()
    z_rel = (z0 * factor).requires_grad_()
    state = AttentionState(kv_rel, z_rel, torch.full((B, Hk), reference, dtype=torch.float64))
    o, final = feature_attention(
        q, k, v, fm, causal=causal, initial_state=state, chunk_size=8, output_final_state=True
    )
    S0r, z0r = S0.clone().requires_grad_(), z0.clone().requires_grad_()
    ref, (ref_S, ref_z) = quadratic_oracle(q, k, v, fm, causal=causal, initial_state=(S0r, z0r))
    assert_close(o, ref, TOL, f"output, reference {reference}")
    S, z = final.absolute()
    assert_close(S, ref_S, TOL, "final S")
    assert_close(z, ref_z, TOL, "final z")
    do = torch.randn(o.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    dkv, dz = torch.autograd.grad((o * do).sum(), (kv_rel, z_rel))
    rkv, rz = torch.autograd.grad((ref * do).sum(), (S0r, z0r))
    # chain rule through S0 = e^{r} kv: dL/dkv = e^{r} dL/dS0, i.e. dL/dS0 = factor dL/dkv
    assert_close(dkv * factor, rkv, TOL, "d kv")
    assert_close(dz * factor, rz, TOL, "d z")


@pytest.mark.parametrize("name", ["positive", "hyperbolic"])
@pytest.mark.parametrize("growth", [1.0, 2.5])
def test_noncausal_keys_split_in_two_equal_one_pass(name, growth):
    """Keys A then keys B (``growth`` times larger, so that on most heads B's log-scales
    exceed A's state reference) through the state equal one non-causal pass over A and B."""
    B, Tq, Tk, H, Hk, D, Dv = 2, 9, 24, 2, 2, 6, 4
    fm = make_map(name, D, 16, seed=4)
    q, k, v = qkv(B, Tq, H, Hk, D, Dv, seed=8, Tk=Tk)
    split = 10
    k = torch.cat((k[:, :split], growth * k[:, split:]), dim=1)
    _, state_a = feature_attention(
        q, k[:, :split], v[:, :split], fm, causal=False, output_final_state=True
    )
    if growth > 1.0:  # the case the test exists for: on some head B outweighs A's reference
        _, state_b = feature_attention(
            q, k[:, split:], v[:, split:], fm, causal=False, output_final_state=True
        )
        assert bool((state_b.log_scale > state_a.log_scale + 1.0).any())
    o, state = feature_attention(
        q,
        k[:, split:],
        v[:, split:],
        fm,
        causal=False,
        initial_state=state_a,
        output_final_state=True,
    )
    one, one_state = feature_attention(q, k, v, fm, causal=False, output_final_state=True)
    assert_close(o, one, TOL, "resumed output")
    for a, b, what in zip(state.absolute(), one_state.absolute(), ("S", "z"), strict=True):
        assert_close(a, b, TOL, f"resumed state {what}")
    ref, _ = quadratic_oracle(q, k, v, fm, causal=False)
    assert_close(o, ref, TOL, "resumed output vs oracle")


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("name", ["positive", "hyperbolic"])
def test_float32_state_far_above_the_keys_does_not_overflow(name, causal):
    """A float32 state at reference ``r = 120`` (``e^{120}`` overflows float32, whose
    largest exponent is 88.7) with keys near ``e^{3}``: the state must stay the reference
    (``M = max(r, c_j) = r``), so it is used as stored and the keys are scaled by
    ``e^{c_j - r}``. Rebasing it to the keys' maximum instead multiplies it by ``e^{117}``:
    ``inf``. Reference: the fp64 oracle with the absolute state ``e^{120} (kv, z)``, which
    fp64 holds (``e^{120} = 1.3e52``)."""
    B, T, H, Hk, D, Dv = 2, 13, 2, 1, 6, 3
    reference = 120.0
    fm = make_map(name, D, 16, seed=1)
    q, k, v = qkv(B, T, H, Hk, D, Dv, seed=6, dtype=torch.float32)
    S0, z0 = _absolute_state(fm, B, Hk, Dv, seed=7)
    kv_rel, z_rel = S0.float(), z0.float()
    state = AttentionState(kv_rel, z_rel, torch.full((B, Hk), reference))
    o = feature_attention(q, k, v, fm, causal=causal, initial_state=state, chunk_size=8)
    assert o.dtype == torch.float32
    factor = math.exp(reference)
    absolute = (kv_rel.double() * factor, z_rel.double() * factor)
    ref, _ = quadratic_oracle(
        *(x.double() for x in (q, k, v)), fm, causal=causal, initial_state=absolute
    )
    assert_close(o, ref, TOLERANCE[torch.float32], f"float32 output at reference {reference}")
