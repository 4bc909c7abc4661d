"""APT salience and masks on Hugging Face GPT-2 and Llama-style decoders (unedited code)."""

from __future__ import annotations

import pytest
import torch

from kernelapprox.compression.pruning import (
    MaskHooks,
    SalienceTracker,
    count_params,
    hf_decoder_sites,
    shrink_hf_decoder,
)
from tests.compression.tiny_decoders import tiny_gpt2, tiny_llama

transformers = pytest.importorskip("transformers")


def _gpt2():
    model = tiny_gpt2(transformers)
    # weight of the matrix whose input holds the site's channels, and how to scale its inputs
    proj = {
        "heads": "transformer.h.{i}.attn.c_proj.weight",
        "neurons": "transformer.h.{i}.mlp.c_proj.weight",
    }
    return model, proj, 0  # Conv1D: (in, out), the inputs are rows


def _llama():
    model = tiny_llama(transformers)
    proj = {
        "heads": "model.layers.{i}.self_attn.o_proj.weight",
        "neurons": "model.layers.{i}.mlp.down_proj.weight",
    }
    return model, proj, 1  # Linear: (out, in), the inputs are columns


@pytest.mark.parametrize("make", [_gpt2, _llama])
def test_salience_equals_the_mask_derivative(make):
    model, proj, axis = make()
    sites = hf_decoder_sites(model)
    ids = torch.randint(0, 40, (2, 8), generator=torch.Generator().manual_seed(1))
    params, masks = dict(model.named_parameters()), {}
    for s in sites:
        kind = s.name.split(".")[-1]
        name = proj[kind].format(i=s.layer)
        m = torch.ones(s.n_groups, dtype=torch.float64, requires_grad=True)
        masks[s.name] = m
        scale = m.repeat_interleave(s.group_size)
        params[name] = params[name] * (scale[:, None] if axis == 0 else scale[None, :])
    out = torch.func.functional_call(model, params, (ids,), {"labels": ids})
    out.loss.backward()
    with SalienceTracker(sites, form="taylor") as tracker:
        model(ids, labels=ids).loss.backward()
        scores = tracker.step()
    for s in sites:
        assert masks[s.name].grad.abs().min() > 1e-10
        torch.testing.assert_close(scores[s.name], -masks[s.name].grad, rtol=1e-9, atol=0)


@pytest.mark.parametrize("make", [_gpt2, _llama])
def test_masks_equal_zeroed_input_weights(make):
    model, proj, axis = make()
    sites = hf_decoder_sites(model)
    ids = torch.randint(0, 40, (2, 8), generator=torch.Generator().manual_seed(2))
    gen = torch.Generator().manual_seed(3)
    keep = {s.name: torch.rand(s.n_groups, generator=gen) < 0.5 for s in sites}
    keep["layers.1.heads"][:] = False
    with torch.no_grad(), MaskHooks(sites, keep):
        masked = model(ids).logits
    with torch.no_grad():
        for s in sites:
            w = model.get_parameter(proj[s.name.split(".")[-1]].format(i=s.layer))
            dead = ~keep[s.name].repeat_interleave(s.group_size)
            if axis == 0:
                w[dead] = 0
            else:
                w[:, dead] = 0
        torch.testing.assert_close(model(ids).logits, masked, rtol=0, atol=1e-12)


def test_parameter_counts_and_refusal():
    gpt2_heads = hf_decoder_sites(_gpt2()[0])[0]
    assert gpt2_heads.params_per_group == 4 * 16 * 4 + 3 * 4
    llama_heads = hf_decoder_sites(_llama()[0])[0]  # shared key-value heads
    assert llama_heads.params_per_group == 2 * 16 * 4
    with pytest.raises(TypeError, match="GPT-2 or Llama"):
        hf_decoder_sites(torch.nn.Linear(2, 2))


def _gqa_masks(sites, gen):
    """Random masks in which every key-value group of a layer keeps the same number of query
    heads (two heads per group here): layer 0 keeps one of each pair, layer 1 none."""
    keep = {}
    for s in sites:
        if s.name.endswith("heads"):
            if s.layer == 0:
                first = torch.rand(s.n_groups // 2, generator=gen) < 0.5
                keep[s.name] = torch.stack([first, ~first], 1).reshape(-1)
            else:
                keep[s.name] = torch.zeros(s.n_groups, dtype=torch.bool)
        else:
            keep[s.name] = torch.rand(s.n_groups, generator=gen) < 0.5
    return keep


@pytest.mark.parametrize("make", [_gpt2, _llama])
def test_shrunk_decoder_equals_the_masked_one(make):
    model, _, _ = make()
    sites = hf_decoder_sites(model)
    ids = torch.randint(0, 40, (2, 8), generator=torch.Generator().manual_seed(4))
    gen = torch.Generator().manual_seed(5)
    if make is _gpt2:
        keep = {s.name: torch.rand(s.n_groups, generator=gen) < 0.5 for s in sites}
        keep["layers.1.heads"][:] = False  # a layer without heads
        keep["layers.0.neurons"][:] = False  # and one without neurons
    else:
        keep = _gqa_masks(sites, gen)
    with torch.no_grad(), MaskHooks(sites, keep):
        masked = model(ids, use_cache=False).logits
    n_before = count_params(model)
    removed = sum(int((~keep[s.name]).sum()) * s.params_per_group for s in sites)
    if make is _llama:  # the key-value heads of the groups left empty (layer 1: both)
        removed += 2 * 2 * 16 * 4
    shrink_hf_decoder(model, keep)
    assert count_params(model) == n_before - removed
    with torch.no_grad():
        shrunk = model(ids, use_cache=False).logits
    torch.testing.assert_close(shrunk, masked, rtol=1e-12, atol=1e-12)
    first = model.transformer.h[0] if make is _gpt2 else model.model.layers[0]
    n_kept = int(keep["layers.0.heads"].sum())
    if make is _gpt2:
        assert first.attn.c_attn.weight.shape == (16, 3 * 4 * n_kept)
        assert first.mlp.c_fc.weight.shape == (16, 0)
    else:
        assert first.self_attn.q_proj.weight.shape == (4 * n_kept, 16)
        assert first.self_attn.k_proj.weight.shape == (4 * 2, 16)
        assert first.self_attn.num_key_value_groups == 1


def test_shrinking_refuses_unequal_groups_and_bad_masks():
    model = _llama()[0]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    uneven = {"layers.0.heads": torch.tensor([True, True, True, False])}
    with pytest.raises(ValueError, match="same number of heads"):
        shrink_hf_decoder(model, uneven)
    with pytest.raises(ValueError, match="unknown"):
        shrink_hf_decoder(model, {"layers.9.heads": torch.ones(4, dtype=torch.bool)})
    with pytest.raises(ValueError, match="shape"):
        shrink_hf_decoder(model, {"layers.0.neurons": torch.ones(3, dtype=torch.bool)})
    with pytest.raises(TypeError, match="bool"):
        shrink_hf_decoder(model, {"layers.0.neurons": torch.ones(24)})
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # nothing half-shrunk
