"""Bad input raises a clear error naming the parameter; torch.compile traces the torch path."""

from __future__ import annotations

import pytest
import torch
from attention_helpers import assert_close, make_map, qkv

from kernelapprox import features, kernels
from kernelapprox.attention import AttentionState, feature_attention, feature_attention_step


@pytest.fixture
def setup():
    return make_map("positive", 4, 8), *qkv(2, 5, 2, 1, 4, 3, dtype=torch.float32)


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        (lambda fm, q, k, v: (fm, q, k, v, {"layout": "tbhd"}), ValueError, "layout"),
        (lambda fm, q, k, v: (fm, q.double(), k, v, {}), TypeError, "dtype"),
        (lambda fm, q, k, v: (fm, q[..., :3], k, v, {}), ValueError, "head dimension"),
        (
            lambda fm, q, k, v: (fm, q[:, :, :1], k.expand(-1, -1, 2, -1), v, {}),
            ValueError,
            "length and heads",
        ),
        (lambda fm, q, k, v: (fm, q[0], k, v, {}), ValueError, "4 dimensions"),
        (lambda fm, q, k, v: (fm, q.int(), k, v, {}), TypeError, "floating"),
        (lambda fm, q, k, v: (fm, q[:, :4], k, v, {}), ValueError, "as many queries"),
        (lambda fm, q, k, v: (fm, q, k, v, {"scale": -1.0}), ValueError, "scale"),
        (lambda fm, q, k, v: (fm, q, k, v, {"chunk_size": 0}), ValueError, "chunk_size"),
        (lambda fm, q, k, v: ("positive", q, k, v, {}), TypeError, "feature_map"),
        (lambda fm, q, k, v: (make_map("positive", 6, 8), q, k, v, {}), ValueError, "dim=6"),
        (
            lambda fm, q, k, v: (
                features.make("positive", kernels.Gaussian(), 8, dim=4),
                q,
                k,
                v,
                {},
            ),
            ValueError,
            "softmax",
        ),
        (
            lambda fm, q, k, v: (
                features.make("fourier", kernels.Softmax(), 8, dim=4),
                q,
                k,
                v,
                {},
            ),
            ValueError,
            "complex",
        ),
        (
            lambda fm, q, k, v: (fm, q, k, v, {"key_padding_mask": torch.zeros(2, 5)}),
            TypeError,
            "bool",
        ),
        (
            lambda fm, q, k, v: (
                fm,
                q,
                k,
                v,
                {"key_padding_mask": torch.zeros(2, 4, dtype=torch.bool)},
            ),
            ValueError,
            "key_padding_mask",
        ),
        (
            lambda fm, q, k, v: (fm, q, k, v, {"cu_seqlens": torch.tensor([0, 5])}),
            ValueError,
            "B == 1",
        ),
        (
            lambda fm, q, k, v: (fm, q[:1], k[:1], v[:1], {"cu_seqlens": torch.tensor([0, 3])}),
            ValueError,
            "end at T",
        ),
        (
            lambda fm, q, k, v: (fm, q[:1], k[:1], v[:1], {"cu_seqlens": torch.tensor([0.0, 5.0])}),
            TypeError,
            "integer",
        ),
        (
            lambda fm, q, k, v: (fm, q, k, v, {"initial_state": AttentionState.zeros(2, 1, 7, 3)}),
            ValueError,
            "initial_state",
        ),
        (
            lambda fm, q, k, v: (fm, q, k, v, {"initial_state": (1, 2, 3)}),
            TypeError,
            "initial_state",
        ),
        (lambda fm, q, k, v: (fm, q, k, v, {"causal": "no"}), TypeError, "causal"),
        (lambda fm, q, k, v: (fm, q, k, v, {"causal": 1}), TypeError, "causal"),
        (
            lambda fm, q, k, v: (fm, q, k, v, {"output_final_state": "yes"}),
            TypeError,
            "output_final_state",
        ),
        (lambda fm, q, k, v: (fm, q, k, v, {"recompute": None}), TypeError, "recompute"),
        (lambda fm, q, k, v: (fm, torch.tensor(1.0), k, v, {}), ValueError, "q must have 4"),
        (lambda fm, q, k, v: (fm, q, k, torch.tensor(1.0), {}), ValueError, "v must have 4"),
    ],
)
def test_bad_input_raises(setup, change, error, match):
    fm, q, k, v, kwargs = change(*setup)
    kwargs.setdefault("causal", True)
    with pytest.raises(error, match=match):
        feature_attention(q, k, v, fm, **kwargs)


def test_bad_step_input_raises(setup):
    fm, q, k, v = setup
    with pytest.raises(ValueError, match="q_t"):
        feature_attention_step(q[:, 0], k[:, 0, :, :3], v[:, 0], None, fm)
    with pytest.raises(ValueError, match="k_t"):
        feature_attention_step(q[:, 0], torch.tensor(1.0), v[:, 0], None, fm)
    with pytest.raises(TypeError, match="state"):
        feature_attention_step(q[:, 0], k[:, 0], v[:, 0], (1, 2, 3), fm)


def test_bad_module_input_raises():
    from kernelapprox.attention import FeatureAttention, MultiheadFeatureAttention, combine_states

    with pytest.raises(TypeError, match="causal"):
        MultiheadFeatureAttention(8, 2, causal="no")
    layer = MultiheadFeatureAttention(8, 2, causal=True)
    with pytest.raises(ValueError, match="x_t"):
        layer.step(torch.tensor(1.0), None)
    with pytest.raises(ValueError, match="x must"):
        layer(torch.tensor(1.0))
    with pytest.raises(TypeError, match="return_state"):
        layer(torch.randn(1, 3, 8), return_state="yes")
    q = torch.randn(1, 3, 2, 4)
    with pytest.raises(TypeError, match="is_causal"):
        FeatureAttention(4)(q, q, q, is_causal="no")
    with pytest.raises(TypeError, match="AttentionState"):
        combine_states((1, 2, 3))
    s = AttentionState.zeros(1, 1, 2, 3)
    assert torch.equal(combine_states(tuple(s)).kv, s.kv)  # a plain tuple of tensors works


def test_fully_masked_rows_give_zero_not_nan(setup):
    fm, q, k, v = setup
    mask = torch.ones(2, 5, dtype=torch.bool)
    for causal in (True, False):
        o = feature_attention(q, k, v, fm, causal=causal, key_padding_mask=mask)
        assert torch.equal(o, torch.zeros_like(o))


def test_torch_compile_traces_the_pure_torch_path():
    """Dynamo captures the whole function in one graph (``fullgraph=True``); the
    ``aot_eager`` backend also traces autograd, without a C++ compiler."""
    fm = make_map("hyperbolic", 4, 8)
    q, k, v = (x.requires_grad_() for x in qkv(1, 20, 2, 1, 4, 3, dtype=torch.float32))

    def attend(q, k, v):
        return feature_attention(q, k, v, fm, causal=True, chunk_size=8)

    compiled = torch.compile(attend, backend="aot_eager", fullgraph=True, dynamic=False)
    out = compiled(q, k, v)
    assert_close(out, attend(q, k, v), 1e-6, "compiled")
    (g,) = torch.autograd.grad(out.sum(), q)
    (ref,) = torch.autograd.grad(attend(q, k, v).sum(), q)
    assert_close(g, ref, 1e-6, "compiled gradient")


def test_a_map_with_its_own_softmax_scale_is_rejected():
    """The attention scale would otherwise be applied twice (once by the map's kernel)."""
    import pytest
    import torch

    from kernelapprox import features, kernels
    from kernelapprox.attention import feature_attention

    fm = features.make("positive", kernels.Softmax(scale=0.125), 16, dim=8, seed=0)
    q = torch.randn(1, 5, 2, 8)
    with pytest.raises(ValueError, match="scale 1"):
        feature_attention(q, q, q, fm, causal=True)
