"""FeatureAttention and MultiheadFeatureAttention: equivalence, redraw policy, learning, decode."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from attention_helpers import TOLERANCE, assert_close, qkv

from kernelapprox.attention import (
    FeatureAttention,
    MultiheadFeatureAttention,
    feature_attention,
    relative_rms,
)


def _bhtd(*xs):
    return tuple(x.transpose(1, 2) for x in xs)


def test_feature_attention_module_equals_the_function_and_approximates_sdpa():
    attn = FeatureAttention(8, 2048, seed=0)
    q, k, v = _bhtd(*qkv(2, 40, 4, 4, 8, 8, seed=1, std=0.5, dtype=torch.float32))
    out = attn(q, k, v, is_causal=True)
    ref = feature_attention(q, k, v, attn.feature_map, causal=True, layout="bhtd")
    assert_close(out, ref, TOLERANCE[torch.float32], "module vs function")
    exact = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    assert relative_rms(out, exact) < 0.1  # m = 2048: the estimator's error is ~0.02 here


@pytest.mark.parametrize("policy", ["never", "every_call", 3])
def test_redraw_policy(policy):
    attn = FeatureAttention(4, 8, seed=5, redraw=policy)
    q, k, v = _bhtd(*qkv(1, 6, 2, 2, 4, 2, seed=0, dtype=torch.float32))
    seen = []
    for _ in range(7):
        attn(q, k, v)
        seen.append(attn.map_W.clone())
    changes = [not torch.equal(a, b) for a, b in itertools.pairwise(seen)]
    expected = {
        "never": [False] * 6,
        "every_call": [True] * 6,
        3: [False, False, True, False, False, True],
    }[policy]
    assert changes == expected
    # evaluation never redraws and is deterministic
    attn.eval()
    a, b = attn(q, k, v), attn(q, k, v)
    assert torch.equal(a, b) and torch.equal(attn.map_W, seen[-1])


def test_redraws_are_reproducible_from_the_seed():
    a = FeatureAttention(4, 8, seed=11, redraw="every_call")
    b = FeatureAttention(4, 8, seed=11, redraw="every_call")
    for _ in range(3):
        a.redraw(), b.redraw()
    assert a.n_draws == 3 and torch.equal(a.map_W, b.map_W)


def test_state_dict_round_trip_restores_the_features():
    a = FeatureAttention(4, 8, seed=1, redraw="every_call")
    a.redraw()
    b = FeatureAttention(4, 8, seed=2)
    b.load_state_dict(a.state_dict())
    q, k, v = _bhtd(*qkv(1, 5, 2, 2, 4, 2, seed=0, dtype=torch.float32))
    assert torch.equal(a.eval()(q, k, v), b.eval()(q, k, v))


def test_learnable_map_trains():
    attn = FeatureAttention(4, 8, seed=0, learnable=True)
    assert {n for n, _ in attn.named_parameters()} == {"map_W", "map_sqrt_xi"}
    with pytest.raises(ValueError, match="redraw"):
        FeatureAttention(4, 8, learnable=True, redraw=2)
    q, k, v = _bhtd(*qkv(1, 9, 2, 2, 4, 3, seed=0, dtype=torch.float32))
    before = attn.map_W.detach().clone()
    opt = torch.optim.SGD(attn.parameters(), lr=0.1)
    attn(q, k, v, is_causal=True).square().sum().backward()
    assert attn.map_W.grad is not None and attn.map_W.grad.abs().sum() > 0
    opt.step()
    assert not torch.equal(before, attn.map_W)


@pytest.mark.parametrize("feature_map", ["positive", "hyperbolic", "dct", "elu"])
def test_multihead_layer_decodes_like_its_causal_forward(feature_map):
    torch.manual_seed(0)
    layer = MultiheadFeatureAttention(
        16,
        4,
        num_kv_heads=2,
        causal=True,
        n_features=None if feature_map == "elu" else 12,
        feature_map=feature_map,
        seed=0,
        dtype=torch.float64,
    )
    x = torch.randn(2, 11, 16, dtype=torch.float64)
    full, final = layer(x, return_state=True)
    assert full.shape == (2, 11, 16)
    state, outs = None, []
    for t in range(11):
        y, state = layer.step(x[:, t], state)
        outs.append(y)
    assert_close(torch.stack(outs, 1), full, 1e-12, "decode")
    # prefill 6 tokens then continue with a state
    first, st = layer(x[:, :6], return_state=True)
    rest = layer(x[:, 6:], state=st)
    assert_close(torch.cat((first, rest), 1), full, 1e-12, "resume")
    for a, b in zip(st.absolute(), final.absolute(), strict=True):
        assert a.shape == b.shape


def test_multihead_layer_matches_a_manual_computation():
    torch.manual_seed(1)
    layer = MultiheadFeatureAttention(12, 3, causal=False, n_features=10, seed=3)
    x = torch.randn(2, 7, 12)
    mask = torch.zeros(2, 7, dtype=torch.bool)
    mask[0, 5:] = True
    out = layer(x, key_padding_mask=mask)
    q = layer.q_proj(x).view(2, 7, 3, 4)
    k = layer.k_proj(x).view(2, 7, 3, 4)
    v = layer.v_proj(x).view(2, 7, 3, 4)
    o = feature_attention(q, k, v, layer.attention.feature_map, causal=False, key_padding_mask=mask)
    assert_close(out, layer.out_proj(o.flatten(-2)), TOLERANCE[torch.float32], "manual")
    out.sum().backward()
    assert all(p.grad is not None for p in layer.q_proj.parameters())


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="redraw"):
        FeatureAttention(4, redraw="sometimes")
    with pytest.raises(ValueError, match="layout"):
        FeatureAttention(4, layout="tbhd")
    with pytest.raises(ValueError, match="divisible"):
        MultiheadFeatureAttention(10, 3)
    with pytest.raises(ValueError, match="multiple"):
        MultiheadFeatureAttention(12, 4, num_kv_heads=3)
    with pytest.raises(RuntimeError, match="non-causal"):
        MultiheadFeatureAttention(8, 2).step(torch.zeros(1, 8), None)
