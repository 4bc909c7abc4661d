"""feature_attention against the fp64 oracles: outputs, states and gradients, awkward shapes."""

from __future__ import annotations

import pytest
import torch
from attention_helpers import TOLERANCE, assert_close, make_map, qkv

from kernelapprox.attention import (
    AttentionState,
    feature_attention,
    feature_attention_step,
    quadratic_oracle,
    recurrent_oracle,
)

# (B, T, H, H_kv, D, D_v, m, chunk): T = 1, a T that is not a multiple of the chunk,
# head dim 60 with Performer's default 266 features, grouped-query heads.
SHAPES = [
    (2, 1, 2, 1, 8, 5, 16, 16),
    (1, 63, 4, 2, 60, 7, 266, 16),
    (2, 40, 3, 3, 8, 4, 16, 64),
    (1, 100, 2, 1, 6, 3, 10, 8),
]
MAPS = ["positive", "hyperbolic", "dct", "dct_released", "elu"]


def _loss_weights(o: torch.Tensor, S: torch.Tensor, z: torch.Tensor, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(x.shape, generator=g, dtype=torch.float64) for x in (o, S, z))


@pytest.mark.parametrize("name", MAPS)
@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "B{}T{}H{}Hk{}D{}Dv{}m{}C{}".format(*s))
def test_outputs_states_and_gradients_match_the_quadratic_oracle(name, causal, shape):
    B, T, H, Hk, D, Dv, m, C = shape
    fm = make_map(name, D, m, seed=3)
    q, k, v = qkv(B, T, H, Hk, D, Dv, seed=T)
    ins = [x.clone().requires_grad_() for x in (q, k, v)]
    o, state = feature_attention(*ins, fm, causal=causal, chunk_size=C, output_final_state=True)
    S, z = state.absolute()
    ref_ins = [x.clone().requires_grad_() for x in (q, k, v)]
    ref_o, (ref_S, ref_z) = quadratic_oracle(*ref_ins, fm, causal=causal)
    assert_close(o, ref_o, 1e-10, "output")
    assert_close(S, ref_S, 1e-10, "state S")
    assert_close(z, ref_z, 1e-10, "state z")

    do, dS, dz = _loss_weights(o, S, z)
    grads = torch.autograd.grad((o * do).sum() + (S * dS).sum() + (z * dz).sum(), ins)
    ref = torch.autograd.grad((ref_o * do).sum() + (ref_S * dS).sum() + (ref_z * dz).sum(), ref_ins)
    for name_, g, r in zip("qkv", grads, ref, strict=True):
        assert_close(g, r, 1e-9, f"d{name_}")


@pytest.mark.parametrize("name", ["positive", "hyperbolic", "dct", "elu", "sincos"])
def test_chunked_causal_matches_the_token_recurrence(name):
    """The second, independent oracle: a per-token loop with no mask."""
    fm = make_map(name, 8, 64 if name == "sincos" else 24, seed=5)
    q, k, v = qkv(2, 50, 4, 2, 8, 6, seed=7, std=0.5)
    o, state = feature_attention(q, k, v, fm, causal=True, chunk_size=16, output_final_state=True)
    ref_o, (ref_S, ref_z) = recurrent_oracle(q, k, v, fm)
    # sincos has signed features, whose denominator can approach zero: looser but still tight
    tol = 1e-8 if name == "sincos" else 1e-10
    assert_close(o, ref_o, tol, "output")
    S, z = state.absolute()
    assert_close(S, ref_S, 1e-10, "state S")
    assert_close(z, ref_z, 1e-10, "state z")


def test_long_sequence_t1000_matches_the_oracle():
    fm = make_map("positive", 4, 8, seed=0)
    q, k, v = qkv(1, 1000, 1, 1, 4, 2, seed=11)
    o = feature_attention(q, k, v, fm, causal=True)
    ref, _ = quadratic_oracle(q, k, v, fm, causal=True)
    assert_close(o, ref, 1e-10, "T=1000 causal")
    o = feature_attention(q, k, v, fm, causal=False)
    ref, _ = quadratic_oracle(q, k, v, fm, causal=False)
    assert_close(o, ref, 1e-10, "T=1000 non-causal")


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("causal", [True, False])
def test_low_precision_inputs_within_the_dtype_tolerance(dtype, causal):
    """Half inputs, fp32 accumulation: compared with the fp64 oracle on the rounded inputs."""
    fm = make_map("positive", 60, 266, seed=1)
    q, k, v = qkv(1, 63, 4, 2, 60, 16, seed=2, dtype=dtype)
    ins = [x.clone().requires_grad_() for x in (q, k, v)]
    o = feature_attention(*ins, fm, causal=causal, chunk_size=16)
    assert o.dtype == dtype
    ref_ins = [x.to(torch.float64).requires_grad_() for x in (q, k, v)]
    ref, _ = quadratic_oracle(*ref_ins, fm, causal=causal)
    assert_close(o, ref, TOLERANCE[dtype], f"output {dtype}")
    do = torch.randn(o.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    grads = torch.autograd.grad((o.to(torch.float64) * do).sum(), ins)
    ref_grads = torch.autograd.grad((ref * do).sum(), ref_ins)
    for n, g, r in zip("qkv", grads, ref_grads, strict=True):
        assert g.dtype == dtype
        # gradients pass through one more rounding of the incoming gradient: twice the budget
        assert_close(g, r, 2 * TOLERANCE[dtype], f"d{n} {dtype}")


@pytest.mark.parametrize("causal", [True, False])
def test_initial_state_and_its_gradient_match_the_oracle(causal):
    fm = make_map("hyperbolic", 8, 12, seed=2)
    q, k, v = qkv(2, 30, 2, 2, 8, 3, seed=4)
    g = torch.Generator().manual_seed(9)
    S0 = torch.rand(2, 2, fm.output_dim, 3, generator=g, dtype=torch.float64)
    z0 = torch.rand(2, 2, fm.output_dim, generator=g, dtype=torch.float64) + 1.0
    # the same state expressed relative to a reference e^{5}
    log_scale = torch.full((2, 2), 5.0, dtype=torch.float64)
    kv_rel = (S0 * torch.exp(torch.tensor(-5.0))).requires_grad_()
    z_rel = (z0 * torch.exp(torch.tensor(-5.0))).requires_grad_()
    state = AttentionState(kv_rel, z_rel, log_scale)
    o = feature_attention(q, k, v, fm, causal=causal, initial_state=state, chunk_size=8)
    S0r, z0r = S0.clone().requires_grad_(), z0.clone().requires_grad_()
    ref, _ = quadratic_oracle(q, k, v, fm, causal=causal, initial_state=(S0r, z0r))
    assert_close(o, ref, 1e-10, "output with initial state")
    do = torch.randn(o.shape, generator=g, dtype=torch.float64)
    dkv, dz = torch.autograd.grad((o * do).sum(), (kv_rel, z_rel))
    rkv, rz = torch.autograd.grad((ref * do).sum(), (S0r, z0r))
    # chain rule through kv = S0 e^{-5}: dL/dkv = e^{5} dL/dS0
    assert_close(dkv * torch.exp(torch.tensor(-5.0)), rkv, 1e-10, "d kv")
    assert_close(dz * torch.exp(torch.tensor(-5.0)), rz, 1e-10, "d z")


def test_learnable_map_parameters_get_the_oracle_gradient():
    fm = make_map("positive", 8, 16, seed=0)
    base = fm.tensors(torch.device("cpu"), torch.float64)
    params = {n: t.clone().requires_grad_() for n, t in base.items()}
    ref_params = {n: t.clone().requires_grad_() for n, t in base.items()}
    q, k, v = qkv(1, 37, 2, 1, 8, 4, seed=8)
    o = feature_attention(q, k, v, fm, causal=True, chunk_size=8, params=params)
    ref, _ = quadratic_oracle(q, k, v, fm, causal=True, params=ref_params)
    assert_close(o, ref, 1e-10, "output with learnable params")
    do = torch.randn(o.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    gW, gxi = torch.autograd.grad((o * do).sum(), (params["W"], params["sqrt_xi"]))
    rW, rxi = torch.autograd.grad((ref * do).sum(), (ref_params["W"], ref_params["sqrt_xi"]))
    assert_close(gW, rW, 1e-9, "dW")
    assert_close(gxi, rxi, 1e-9, "d sqrt_xi")


@pytest.mark.parametrize("name", ["positive", "dct_released", "elu"])
def test_decode_steps_equal_one_causal_pass(name):
    fm = make_map(name, 8, 20, seed=1)
    q, k, v = qkv(2, 21, 4, 2, 8, 5, seed=3)
    full, final = feature_attention(q, k, v, fm, causal=True, output_final_state=True)
    state, outs = None, []
    for t in range(q.shape[1]):
        o_t, state = feature_attention_step(q[:, t], k[:, t], v[:, t], state, fm)
        outs.append(o_t)
    assert_close(torch.stack(outs, dim=1), full, 1e-12, "decode steps")
    for a, b in zip(state.absolute(), final.absolute(), strict=True):
        assert_close(a, b, 1e-12, "decode state")


def test_decode_after_prefill_continues_the_sequence():
    fm = make_map("hyperbolic", 8, 16, seed=4)
    q, k, v = qkv(1, 30, 2, 2, 8, 3, seed=5, dtype=torch.float32)
    full = feature_attention(q, k, v, fm, causal=True)
    _, state = feature_attention(
        q[:, :20], k[:, :20], v[:, :20], fm, causal=True, output_final_state=True
    )
    outs = []
    for t in range(20, 30):
        o_t, state = feature_attention_step(q[:, t], k[:, t], v[:, t], state, fm)
        outs.append(o_t)
    assert state.kv.dtype == torch.float32
    assert_close(torch.stack(outs, 1), full[:, 20:], TOLERANCE[torch.float32], "prefill+decode")


def _saved_bytes(fn) -> int:
    """Bytes of tensors autograd keeps for backward while ``fn`` runs."""
    total = 0

    def pack(x):
        nonlocal total
        total += x.numel() * x.element_size()
        return x

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda x: x):
        fn()
    return total


@pytest.mark.parametrize("causal", [True, False])
def test_recompute_gives_the_same_gradients_and_saves_only_the_inputs(causal):
    fm = make_map("positive", 8, 64, seed=0)
    q, k, v = qkv(1, 96, 2, 1, 8, 4, seed=1, dtype=torch.float32)
    grads = {}
    saved = {}
    for recompute in (False, True):
        ins = [x.clone().requires_grad_() for x in (q, k, v)]
        result = {}

        def run(ins=ins, result=result, recompute=recompute):
            result["o"] = feature_attention(
                *ins, fm, causal=causal, chunk_size=16, recompute=recompute
            )

        saved[recompute] = _saved_bytes(run)
        grads[recompute] = torch.autograd.grad(result["o"].square().sum(), ins)
    for a, b in zip(grads[False], grads[True], strict=True):
        assert_close(b, a, 1e-6, "recomputed gradient")
    inputs = sum(x.numel() * x.element_size() for x in (q, k, v))
    features = 2 * 96 * 2 * 64 * 4  # phi_q alone is this large
    assert saved[False] > features
    assert saved[True] < inputs + features // 4


@pytest.mark.parametrize("name", ["positive", "hyperbolic", "dct"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_rows_that_see_only_padding_have_zero_output_and_finite_gradients(name, dtype):
    """Causal attention with leading padding: the first rows see no key. Their output is 0
    and their gradients are 0 (a 1/tiny division gave nan gradients); the other rows match
    the oracle on the unpadded keys."""
    B, T, H, D, Dv, n_pad = 2, 12, 2, 8, 4, 3
    fm = make_map(name, D, 16, seed=0)
    q, k, v = (x.to(dtype).requires_grad_() for x in qkv(B, T, H, H, D, Dv, seed=5))
    pad = torch.zeros(B, T, dtype=torch.bool)
    pad[:, :n_pad] = True
    o = feature_attention(q, k, v, fm, causal=True, key_padding_mask=pad, chunk_size=4)
    w = torch.randn(o.shape, generator=torch.Generator().manual_seed(2), dtype=dtype)
    grads = torch.autograd.grad((o * w).sum(), (q, k, v))
    assert all(bool(torch.isfinite(g).all()) for g in grads)
    assert bool((o[:, :n_pad] == 0).all())
    assert bool((grads[0][:, :n_pad] == 0).all())
    tail = [x.detach()[:, n_pad:].double() for x in (q, k, v)]
    ref, _ = quadratic_oracle(*tail, fm, causal=True)
    assert_close(o[:, n_pad:].double(), ref, TOLERANCE[dtype], "rows after the padding")
