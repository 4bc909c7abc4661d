"""Invariants of feature_attention, checked on hypothesis-drawn shapes."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from attention_helpers import TOLERANCE, assert_close, make_map, qkv
from hypothesis import given
from hypothesis import strategies as st

from kernelapprox import features, kernels
from kernelapprox.attention import (
    NumericalWarning,
    feature_attention,
    quadratic_oracle,
    softmax_attention,
)

MAP_NAMES = st.sampled_from(["positive", "hyperbolic", "dct_released", "elu"])


@st.composite
def problems(draw, min_t: int = 1):
    """A small attention problem: shapes, a map, a chunk size and a seed."""
    Hk = draw(st.integers(1, 2))
    return {
        "B": draw(st.integers(1, 2)),
        "T": draw(st.integers(min_t, 40)),
        "H": Hk * draw(st.integers(1, 2)),
        "Hk": Hk,
        "D": draw(st.sampled_from([4, 6])),
        "Dv": draw(st.integers(1, 4)),
        "m": draw(st.sampled_from([5, 8])),
        "chunk": draw(st.sampled_from([1, 4, 7, 16, 64])),
        "name": draw(MAP_NAMES),
        "seed": draw(st.integers(0, 2**16)),
    }


def _setup(p, dtype=torch.float64, std=1.0):
    fm = make_map(p["name"], p["D"], p["m"], seed=p["seed"])
    q, k, v = qkv(
        p["B"], p["T"], p["H"], p["Hk"], p["D"], p["Dv"], seed=p["seed"], std=std, dtype=dtype
    )
    return fm, q, k, v


@given(problems(min_t=2), st.data())
def test_causality_future_tokens_leave_past_outputs_bit_identical(p, data):
    fm, q, k, v = _setup(p, dtype=torch.float32, std=3.0)
    t0 = data.draw(st.integers(0, p["T"] - 2))
    o = feature_attention(q, k, v, fm, causal=True, chunk_size=p["chunk"])
    g = torch.Generator().manual_seed(p["seed"] + 1)
    q2, k2, v2 = q.clone(), k.clone(), v.clone()
    for x in (q2, k2, v2):  # large perturbations: a future key with a huge log-scale
        x[:, t0 + 1 :] = 10.0 * torch.randn(x[:, t0 + 1 :].shape, generator=g)
    o2 = feature_attention(q2, k2, v2, fm, causal=True, chunk_size=p["chunk"])
    assert torch.equal(o[:, : t0 + 1], o2[:, : t0 + 1])


@given(problems(min_t=2), st.data())
def test_split_and_resume_equals_one_pass(p, data):
    fm, q, k, v = _setup(p, std=2.0)
    cut = data.draw(st.integers(1, p["T"] - 1))
    full, final = feature_attention(
        q, k, v, fm, causal=True, chunk_size=p["chunk"], output_final_state=True
    )
    first, state = feature_attention(
        q[:, :cut],
        k[:, :cut],
        v[:, :cut],
        fm,
        causal=True,
        chunk_size=p["chunk"],
        output_final_state=True,
    )
    second, resumed = feature_attention(
        q[:, cut:],
        k[:, cut:],
        v[:, cut:],
        fm,
        causal=True,
        chunk_size=p["chunk"],
        initial_state=state,
        output_final_state=True,
    )
    assert_close(torch.cat((first, second), dim=1), full, 1e-12, "resumed output")
    for a, b in zip(resumed.absolute(), final.absolute(), strict=True):
        assert_close(a, b, 1e-12, "resumed state")


@given(problems(), st.booleans())
def test_output_does_not_depend_on_chunk_size(p, causal):
    fm, q, k, v = _setup(p)
    a = feature_attention(q, k, v, fm, causal=causal, chunk_size=p["chunk"])
    b = feature_attention(q, k, v, fm, causal=causal, chunk_size=3)
    assert_close(a, b, 1e-12, "chunk size")


@given(problems(), st.booleans())
def test_layout_invariance(p, causal):
    fm, q, k, v = _setup(p)
    a = feature_attention(q, k, v, fm, causal=causal, chunk_size=p["chunk"], layout="bthd")
    # bhtd inputs that are transposed *views* of bthd storage: no copy needed
    b = feature_attention(
        *(x.transpose(1, 2) for x in (q, k, v)),
        fm,
        causal=causal,
        chunk_size=p["chunk"],
        layout="bhtd",
    )
    assert b.shape == (p["B"], p["H"], p["T"], p["Dv"])
    assert_close(b.transpose(1, 2), a, 1e-13, "layout")


@given(problems(min_t=2), st.booleans(), st.data())
def test_key_padding_equals_truncation(p, causal, data):
    """Right padding: a masked key must vanish from numerator *and* denominator."""
    fm, q, k, v = _setup(p)
    keep = data.draw(st.integers(1, p["T"] - 1))
    mask = torch.zeros(p["B"], p["T"], dtype=torch.bool)
    mask[:, keep:] = True
    padded = feature_attention(
        q, k, v, fm, causal=causal, chunk_size=p["chunk"], key_padding_mask=mask
    )
    if causal:
        truncated = feature_attention(
            q[:, :keep], k[:, :keep], v[:, :keep], fm, causal=True, chunk_size=p["chunk"]
        )
        assert_close(padded[:, :keep], truncated, 1e-12, "causal padding")
    else:
        truncated = feature_attention(q, k[:, :keep], v[:, :keep], fm, causal=False)
        assert_close(padded, truncated, 1e-12, "non-causal padding")


@given(
    st.lists(st.integers(0, 12), min_size=1, max_size=4),
    MAP_NAMES,
    st.booleans(),
    st.integers(0, 2**16),
)
def test_varlen_equals_padded_with_mask(lengths, name, causal, seed):
    if sum(lengths) == 0:
        lengths = [*lengths[:-1], 3]
    D, H, Hk, Dv = 4, 2, 1, 3
    fm = make_map(name, D, 6, seed=seed)
    total, n, t_max = sum(lengths), len(lengths), max(lengths)
    q, k, v = qkv(1, total, H, Hk, D, Dv, seed=seed)
    cu = torch.tensor(np.concatenate(([0], np.cumsum(lengths))), dtype=torch.int32)
    packed, state = feature_attention(
        q, k, v, fm, causal=causal, cu_seqlens=cu, chunk_size=4, output_final_state=True
    )
    assert packed.shape == (1, total, H, Dv)
    # reference: the padded batch with a padding mask, built by hand
    mask = torch.ones(n, t_max, dtype=torch.bool)
    pq, pk, pv = (torch.zeros(n, t_max, *x.shape[2:], dtype=x.dtype) for x in (q, k, v))
    for i, (a, b) in enumerate(zip(cu[:-1].tolist(), cu[1:].tolist(), strict=True)):
        pq[i, : b - a], pk[i, : b - a], pv[i, : b - a] = q[0, a:b], k[0, a:b], v[0, a:b]
        mask[i, : b - a] = False
    ref, ref_state = feature_attention(
        pq, pk, pv, fm, causal=causal, key_padding_mask=mask, output_final_state=True
    )
    assert_close(packed[0], ref[~mask], 1e-12, "varlen output")
    for a, b in zip(state.absolute(), ref_state.absolute(), strict=True):
        assert_close(a, b, 1e-12, "varlen state")
    # and each sequence on its own
    for i, (a, b) in enumerate(zip(cu[:-1].tolist(), cu[1:].tolist(), strict=True)):
        if b > a:
            alone = feature_attention(q[:, a:b], k[:, a:b], v[:, a:b], fm, causal=causal)
            assert_close(packed[:, a:b], alone, 1e-12, f"sequence {i}")


@given(st.integers(0, 2**32 - 1), st.sampled_from(["mc", "orthogonal", "sobol"]))
def test_same_seed_gives_the_same_projection_and_output(seed, sampler):
    a = features.make("positive", kernels.Softmax(), 16, dim=4, sampler=sampler, seed=seed)
    b = features.make("positive", kernels.Softmax(), 16, dim=4, sampler=sampler, seed=seed)
    assert np.array_equal(a.standard_frequencies, b.standard_frequencies)
    q, k, v = qkv(1, 9, 2, 1, 4, 2, seed=1, dtype=torch.float32)
    assert torch.equal(
        feature_attention(q, k, v, a, causal=True), feature_attention(q, k, v, b, causal=True)
    )


def test_gqa_equals_repeated_kv_heads():
    fm = make_map("positive", 8, 16, seed=0)
    q, k, v = qkv(2, 33, 6, 2, 8, 5, seed=3)
    grouped = feature_attention(q, k, v, fm, causal=True, chunk_size=8)
    rep = feature_attention(
        q,
        k.repeat_interleave(3, dim=2),
        v.repeat_interleave(3, dim=2),
        fm,
        causal=True,
        chunk_size=8,
    )
    assert_close(grouped, rep, 1e-13, "GQA")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("causal", [True, False])
def test_large_norm_half_inputs_give_no_inf_or_nan(dtype, causal):
    """|q|, |k| ~ 64 (|u| ~ 22 after sqrt(scale)): unstabilized fp32 features underflow and
    their products give 0/0; the stabilized path matches the stabilized fp64 path."""
    fm = make_map("positive", 64, 128, seed=0)
    q, k, v = qkv(1, 100, 2, 2, 64, 8, seed=1, std=8.0, dtype=dtype)
    naive, _ = quadratic_oracle(*(x.to(torch.float32) for x in (q, k, v)), fm, causal=causal)
    assert not torch.isfinite(naive).any()  # why the stabilization is needed
    o, state = feature_attention(q, k, v, fm, causal=causal, output_final_state=True)
    assert torch.isfinite(o).all()
    assert all(torch.isfinite(x).all() for x in state)
    ref = feature_attention(*(x.to(torch.float64) for x in (q, k, v)), fm, causal=causal)
    assert_close(o, ref, TOLERANCE[dtype], "large norms")
    # far beyond: |q| ~ 400; the estimate is meaningless there, but never inf or nan, and
    # per-feature references leave no row underflowed (per-token log-scales did, and
    # warned; test_stability checks such outputs against the log-space oracle)
    q, k = (50.0 * q.float()).to(dtype), (50.0 * k.float()).to(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error", NumericalWarning)
        o, state = feature_attention(q, k, v, fm, causal=causal, output_final_state=True)
    assert torch.isfinite(o).all() and all(torch.isfinite(x).all() for x in state)


def test_softmax_attention_matches_torch_sdpa():
    q, k, v = qkv(2, 21, 4, 2, 8, 8, seed=0)
    mask = torch.zeros(2, 21, dtype=torch.bool)
    mask[1, 15:] = True
    for causal in (True, False):
        ours = softmax_attention(q, k, v, causal=causal, key_padding_mask=mask, scale=0.3)
        attn_mask = ~mask[:, None, None, :]
        if causal:
            attn_mask = attn_mask & torch.ones(21, 21, dtype=torch.bool).tril()
        ref = F.scaled_dot_product_attention(
            q.transpose(1, 2),
            k.repeat_interleave(2, 2).transpose(1, 2),
            v.repeat_interleave(2, 2).transpose(1, 2),
            attn_mask=attn_mask,
            scale=0.3,
        ).transpose(1, 2)
        assert_close(ours, ref, 1e-12, "softmax_attention vs SDPA")
