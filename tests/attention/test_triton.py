"""Triton positive-feature attention against the fp64 oracle and the torch implementation.

Without CUDA the kernels run in Triton's interpreter on CPU tensors (``TRITON_INTERPRET=1``
is set here before ``triton`` is imported); the whole module is skipped without ``triton``.
Shapes are small and awkward (T = 1, 17, 63; F = 24 and D_v = 12 padded inside the kernels).
"""

from __future__ import annotations

import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest

pytest.importorskip("triton")

from hypothesis import given, settings
from hypothesis import strategies as st

from kernelapprox.attention import feature_attention, quadratic_oracle
from kernelapprox.attention.triton_kernels import (
    HAS_TRITON,
    triton_feature_attention,
)
from tests.attention.attention_helpers import TOLERANCE, assert_close, make_map, qkv

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
D, F = 16, 24


@pytest.fixture(scope="module")
def fm():
    return make_map("positive", D, F)


def _inputs(B, T, H, Hk, Dv, *, seed=0, std=1.0, dtype=torch.float32, layout="bthd"):
    """Inputs rounded to ``dtype`` on DEVICE, and the same rounded values in float64."""
    q, k, v = qkv(B, T, H, Hk, D, Dv, seed=seed, std=std, dtype=dtype)
    exact = tuple(x.to(torch.float64) for x in (q, k, v))
    if layout == "bhtd":
        q, k, v = (x.transpose(1, 2) for x in (q, k, v))
    return tuple(x.to(DEVICE) for x in (q, k, v)), exact


def _bthd(o, layout):
    return (o if layout == "bthd" else o.transpose(1, 2)).cpu()


def test_has_triton():
    assert HAS_TRITON


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("T", [1, 17, 63])
def test_matches_oracle_and_torch_fp32(fm, causal, T):
    (q, k, v), exact = _inputs(2, T, 2, 2, 12, seed=T)
    o = triton_feature_attention(q, k, v, fm, causal=causal, chunk_size=16, block_size=16)
    assert o.dtype == torch.float32 and o.shape == (2, T, 2, 12)
    oracle, _ = quadratic_oracle(*exact, fm, causal=causal)
    assert_close(o, oracle, TOLERANCE[torch.float32], "triton vs fp64 oracle")
    torch_out = feature_attention(q.cpu(), k.cpu(), v.cpu(), fm, causal=causal)
    assert_close(o, torch_out, TOLERANCE[torch.float32], "triton vs feature_attention")


@pytest.mark.parametrize("causal", [False, True])
def test_grouped_query_heads_and_bhtd_layout(fm, causal):
    """Four query heads read two kv heads; strided (bhtd) inputs; several chunks/blocks."""
    (q, k, v), exact = _inputs(1, 40, 4, 2, 8, seed=3, layout="bhtd")
    o = triton_feature_attention(
        q, k, v, fm, causal=causal, layout="bhtd", chunk_size=16, block_size=16
    )
    oracle, _ = quadratic_oracle(*exact, fm, causal=causal)
    assert_close(_bthd(o, "bhtd"), oracle, TOLERANCE[torch.float32], "gqa bhtd")


@pytest.mark.parametrize("causal", [False, True])
def test_large_log_scales_stay_finite_and_exact(fm, causal):
    """With scale 1 and |u| ~ 12 the unstabilized features exp(w.u - |u|^2/2) span ~e^{+-80}
    (under- and overflowing float32); the running maxima keep the output at rounding error."""
    (q, k, v), exact = _inputs(1, 33, 2, 1, 8, seed=5, std=3.0)
    o = triton_feature_attention(q, k, v, fm, causal=causal, scale=1.0, chunk_size=16)
    oracle, _ = quadratic_oracle(*exact, fm, causal=causal, scale=1.0)
    assert_close(o, oracle, TOLERANCE[torch.float32], "large log-scales")


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("causal", [False, True])
def test_half_operands(fm, dtype, causal):
    (q, k, v), exact = _inputs(1, 17, 2, 2, 8, seed=7, dtype=dtype)
    o = triton_feature_attention(q, k, v, fm, causal=causal, chunk_size=16)
    assert o.dtype == dtype
    oracle, _ = quadratic_oracle(*exact, fm, causal=causal)
    # Besides rounding the output (TOLERANCE), the state products round the features to
    # ``dtype`` (unit roundoff u): each weight of the average o = sum_j a_j v_j moves by a
    # relative u, an error ~ u |v| that is large relative to |o| (an average of many v_j).
    u = torch.finfo(dtype).eps / 2
    tol = TOLERANCE[dtype] + 2 * u * float(exact[2].norm() / oracle.norm())
    assert_close(o, oracle, tol, f"{dtype} operands")


@pytest.mark.parametrize("causal", [False, True])
def test_final_state_is_the_oracle_state(fm, causal):
    """``exp(log_scale) kv`` and ``exp(log_scale) z`` are the absolute sums over all keys."""
    (q, k, v), exact = _inputs(2, 21, 2, 1, 8, seed=11)
    _, state = triton_feature_attention(
        q, k, v, fm, causal=causal, chunk_size=16, output_final_state=True
    )
    _, (S, z) = quadratic_oracle(*exact, fm, causal=causal)
    scale = torch.exp(state.log_scale.double().cpu())
    tol = TOLERANCE[torch.float32]
    assert_close(state.kv.double().cpu() * scale[..., None, None], S, tol, "kv")
    assert_close(state.z.double().cpu() * scale[..., None], z, tol, "z")


@settings(max_examples=6, deadline=None)
@given(
    T=st.integers(1, 40),
    chunk=st.sampled_from([16, 32]),
    causal=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_chunk_and_block_sizes_do_not_change_the_output(fm, T, chunk, causal, seed):
    (q, k, v), exact = _inputs(1, T, 1, 1, 4, seed=seed)
    o = triton_feature_attention(q, k, v, fm, causal=causal, chunk_size=chunk, block_size=chunk)
    oracle, _ = quadratic_oracle(*exact, fm, causal=causal)
    assert_close(o, oracle, TOLERANCE[torch.float32], f"chunk {chunk}")


def test_rejects_unsupported_maps_and_dtypes(fm):
    (q, k, v), _ = _inputs(1, 4, 1, 1, 4)
    with pytest.raises(ValueError, match="'positive' map only"):
        triton_feature_attention(q, k, v, make_map("hyperbolic", D, F), causal=False)
    with pytest.raises(TypeError, match="float32, bfloat16 or float16"):
        triton_feature_attention(q.double(), k.double(), v.double(), fm, causal=False)
    with pytest.raises(ValueError, match="chunk_size"):
        triton_feature_attention(q, k, v, fm, causal=True, chunk_size=0)
