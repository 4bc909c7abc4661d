"""Nested quantization of every linear layer of Hugging Face GPT-2 and Llama-style decoders.

Tiny offline configs (as the pruning tests use), float64. GPT-2's projections are ``Conv1D``
(weight ``(in, out)``) and its ``lm_head`` shares the token embedding's weight; Llama's are
``nn.Linear`` without bias.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from kernelapprox.compression.quantization import (
    QuantizedLinear,
    fisher_diagonal,
    linear_modules,
    quantize_linears,
    set_bits,
)
from tests.compression.tiny_decoders import tiny_gpt2, tiny_llama

transformers = pytest.importorskip("transformers")


def _gpt2() -> nn.Module:
    return tiny_gpt2(transformers)


def _llama() -> nn.Module:
    return tiny_llama(transformers)


def _batches() -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return [torch.randint(0, 40, (2, 8), generator=g) for _ in range(2)]


def _loss(model: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    return model(ids, labels=ids).loss


def _rows(module: nn.Module, tensor: torch.Tensor) -> torch.Tensor:
    """(out, in) rows of a weight-shaped tensor (a Conv1D's weight is (in, out))."""
    return tensor if isinstance(module, nn.Linear) else tensor.T


def _squared_gradients(model: nn.Module, names: list[str]) -> dict[str, torch.Tensor]:
    """The reference: plain autograd, every weight its own parameter (``model`` untied)."""
    modules = dict(model.named_modules())
    out = {name: torch.zeros_like(_rows(modules[name], modules[name].weight)) for name in names}
    for ids in _batches():
        model.zero_grad()
        _loss(model, ids).backward()
        for name in names:
            m = modules[name]
            out[name] += _rows(m, m.weight.grad) ** 2
    return out


@pytest.mark.parametrize("make", [_gpt2, _llama])
def test_every_linear_layer_is_found_and_its_fisher_is_its_squared_gradient(make) -> None:
    model = make()
    names = [name for name, _ in linear_modules(model)]
    kinds = {type(m).__name__ for _, m in linear_modules(model)}
    if make is _gpt2:  # 4 Conv1D per block, and the head
        assert len(names) == 2 * 4 + 1 and kinds == {"Conv1D", "Linear"}
        assert model.lm_head.weight is model.transformer.wte.weight
    else:  # q, k, v, o, gate, up, down per block, and the head
        assert len(names) == 2 * 7 + 1 and kinds == {"Linear"}
    fisher = fisher_diagonal(model, _loss, _batches())
    assert list(fisher) == names
    untied = copy.deepcopy(model)
    if make is _gpt2:  # the head's own weight: the gradient of the head's use alone
        untied.lm_head.weight = nn.Parameter(untied.lm_head.weight.detach().clone())
    expected = _squared_gradients(untied, names)
    for name in names:
        torch.testing.assert_close(fisher[name], expected[name], rtol=1e-10, atol=0)
    assert all(p.grad is None for p in model.parameters())
    if make is _gpt2:  # the tied parameter's gradient (head + embedding) would differ
        model.zero_grad()
        for ids in _batches()[:1]:
            _loss(model, ids).backward()
        tied_first = model.lm_head.weight.grad.clone()
        untied.zero_grad()
        _loss(untied, _batches()[0]).backward()
        assert not torch.allclose(tied_first, untied.lm_head.weight.grad, rtol=1e-3, atol=0)


@pytest.mark.parametrize("make", [_gpt2, _llama])
def test_quantized_decoder_equals_the_dequantized_weights_at_every_width(make) -> None:
    model = make()
    original = copy.deepcopy(model)
    fisher = fisher_diagonal(model, _loss, _batches())
    quantized = quantize_linears(model, fisher, seed_bits=2, max_bits=4, iterations=5, seed=0)
    assert not linear_modules(model)  # every Conv1D and Linear replaced
    assert set_bits(model, 3) == len(fisher)
    ids = _batches()[0]
    modules = dict(original.named_modules())
    for bits in (2, 3, 4):
        set_bits(model, bits)
        params = dict(original.named_parameters())
        for name, q in quantized.items():
            # fp16 tables as served, gathered by the algorithm's own codes
            table = q.tables[bits].to(torch.float16).to(torch.float64)
            w = table.gather(1, q.codes_at(bits))
            params[name + ".weight"] = _rows(modules[name], w)
        with torch.no_grad():
            want = torch.func.functional_call(original, params, (ids,), tie_weights=False).logits
            got = model(ids).logits
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    head = model.lm_head
    assert isinstance(head, QuantizedLinear)
    if make is _gpt2:  # the embedding keeps its full weight
        torch.testing.assert_close(model.transformer.wte.weight, original.transformer.wte.weight)
