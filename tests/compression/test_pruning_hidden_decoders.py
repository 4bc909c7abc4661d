"""Hidden dimensions of Hugging Face GPT-2 and Llama-style decoders: kept norms over the
pre-LN stream, the coupled count, and the shrunk model against the masked one."""

from __future__ import annotations

import pytest
import torch

from kernelapprox.compression.pruning import (
    MaskHooks,
    Pruner,
    count_params,
    hf_decoder_sites,
    shrink_hf_decoder,
)
from kernelapprox.compression.pruning.hidden import HiddenDims, KeptRMSNorm
from kernelapprox.compression.pruning.models import _hf_decoder_blocks
from tests.compression.tiny_decoders import tiny_gpt2, tiny_llama

transformers = pytest.importorskip("transformers")
IDS = torch.randint(0, 40, (2, 8), generator=torch.Generator().manual_seed(4))


def _gpt2():
    return tiny_gpt2(transformers)


def _llama(kv_heads=2):
    model = tiny_llama(transformers, kv_heads, seed=kv_heads)
    with torch.no_grad():  # norms away from 1, so that a wrong entry shows
        for p in model.parameters():
            if p.ndim == 1:
                p.uniform_(0.5, 1.5)
    return model


def _llama_own_kv():
    return _llama(kv_heads=4)


MASKS = {
    "layers.0.heads": torch.tensor([True, True, False, False]),  # one kv group of the Llama
    "layers.1.heads": torch.tensor([True, True, True, True]),
    "layers.0.neurons": torch.arange(24) % 2 == 0,
    "layers.1.neurons": torch.arange(24) < 7,
    "hidden": torch.arange(16) % 3 != 1,
}


def _layer_params(model):
    return sum(count_params(b) for b in _hf_decoder_blocks(model)[2])


NO_HEADS = {**MASKS, "layers.1.heads": torch.zeros(4, dtype=torch.bool)}  # an empty attention


@pytest.mark.parametrize("masks", [MASKS, NO_HEADS], ids=["heads", "no-heads-in-layer-1"])
@pytest.mark.parametrize("make", [_gpt2, _llama, _llama_own_kv])
def test_shrunk_hidden_equals_masked_hidden_and_the_count(make, masks):
    model = make()
    sites = hf_decoder_sites(model)
    hidden = HiddenDims(model)
    with torch.no_grad():
        plain = model(IDS).logits
        torch.testing.assert_close(model(IDS).logits, plain, rtol=0, atol=0)  # all kept
        hidden.apply(masks["hidden"])
        with MaskHooks(sites, {k: m for k, m in masks.items() if k != "hidden"}):
            masked = model(IDS).logits
    assert (masked - plain).abs().max() > 1e-3  # dropping dimensions changed something
    kept = {k: int(m.sum()) for k, m in masks.items() if k != "hidden"}
    expected = hidden.count(sites, kept, int(masks["hidden"].sum()))
    full = hidden.count(sites, {}, 16)
    if make is not _llama:  # every layer parameter is some head's, neuron's or dimension's
        assert full == _layer_params(model)
    shrink_hf_decoder(model, masks)
    with torch.no_grad():
        torch.testing.assert_close(model(IDS).logits, masked, rtol=0, atol=1e-12)
    if make is _llama:  # shared key-value heads: their k/v rows are not in the budget
        attns = [b.self_attn for b in _hf_decoder_blocks(model)[2]]
        kv = sum(a.k_proj.weight.numel() * 2 for a in attns if hasattr(a, "k_proj"))
        assert _layer_params(model) - kv == expected
    else:
        assert _layer_params(model) == expected
    assert model.lm_head.in_features == int(masks["hidden"].sum())
    if make is _gpt2:
        assert model.lm_head.weight is model.transformer.wte.weight  # still tied


@pytest.mark.parametrize("make", [_gpt2, _llama])
def test_nan_in_a_dropped_dimension_reaches_nothing(make):
    model = make()
    hidden = HiddenDims(model)
    hidden.apply(MASKS["hidden"])
    with torch.no_grad():
        clean = model(IDS).logits
        _, base, _ = _hf_decoder_blocks(model)
        # (GPT-2's token embedding is also its LM head, which multiplies the final norm's
        # zeros: a nan there would reach the logits of the masked model, not of the shrunk)
        table = base.wpe if make is _gpt2 else base.embed_tokens
        table.weight[:, 1] = float("nan")  # dimension 1 is dropped
        torch.testing.assert_close(model(IDS).logits, clean, rtol=0, atol=0)


def test_kept_rms_norm_is_the_llama_norm_over_the_kept_dimensions():
    norm = _llama().model.norm
    kept = KeptRMSNorm(norm)
    x = torch.randn(2, 3, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert torch.equal(kept(x), norm(x))  # all kept: the module itself, bit for bit
    keep = torch.arange(16) % 4 != 0
    kept.set_keep(keep)
    k = x[..., keep].float()
    ref = norm.weight[keep] * (
        k / torch.sqrt((k**2).mean(-1, keepdim=True) + norm.variance_epsilon)
    )
    torch.testing.assert_close(kept(x)[..., keep], ref.double(), rtol=1e-6, atol=1e-6)
    assert torch.equal(kept(x)[..., ~keep], torch.zeros_like(x[..., ~keep]))
    with pytest.raises(TypeError, match="RMS norm"):
        KeptRMSNorm(torch.nn.Linear(3, 3))


def test_pruner_prunes_a_gpt2s_hidden_dimensions_within_the_budget():
    model = _gpt2()
    hidden = HiddenDims(model)
    sites = hf_decoder_sites(model)
    gen = torch.Generator().manual_seed(2)  # scores that do drop dimensions (the tracked
    # salience of this random GPT-2 keeps them all and drops its heads)
    scores = {
        s.name: torch.rand(s.n_groups, generator=gen, dtype=torch.float64)
        for s in [*sites, *hidden.sites]
    }
    with Pruner(sites, keep=0.5, t_warm=1, t_end=6, hidden=hidden, fade=2) as pruner:
        for t in range(8):
            model.zero_grad()
            model(IDS, labels=IDS).loss.backward()
            pruner.step(t, scores)
        with torch.no_grad():
            masked = model(IDS).logits
    kept_dims = int(pruner.masks["hidden"].sum())
    assert 1 <= kept_dims < 16
    final = pruner.history[-1]
    assert final["kept_params"] <= final["budget"]
    shrink_hf_decoder(model, pruner.masks)
    with torch.no_grad():
        torch.testing.assert_close(model(IDS).logits, masked, rtol=0, atol=1e-12)
    assert _layer_params(model) == final["kept_params"]
