"""Growing low-rank adapters, APT's rank allocation and the self-distillation loss."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from kernelapprox.compression.pruning import (
    GrowingLoRALinear,
    SalienceTracker,
    adapter_sites,
    add_adapters,
    allocate_ranks,
    distillation_loss,
    distillation_weight,
    kl_divergence,
    snapshot,
)
from kernelapprox.lm import Decoder, DecoderConfig


def _trained_layer(seed=0):
    gen = torch.Generator().manual_seed(seed)
    layer = GrowingLoRALinear(nn.Linear(6, 5, dtype=torch.float64), rank=2, alpha=3.0, seed=seed)
    with torch.no_grad():  # as after some training: B is no longer zero
        layer.lora_b.copy_(torch.randn(5, 2, generator=gen, dtype=torch.float64))
        layer.lora_a.add_(torch.randn(2, 6, generator=gen, dtype=torch.float64))
    x = torch.randn(7, 3, 6, generator=gen, dtype=torch.float64)
    return layer, x


def test_growth_leaves_the_output_unchanged_and_the_new_rank_trains():
    layer, x = _trained_layer()
    before = layer(x).detach()
    scaling, delta = layer.scaling, (layer.lora_b @ layer.lora_a).detach()
    layer.grow(6, seed=1)
    assert layer.rank == 6 and layer.lora_a.shape == (6, 6) and layer.lora_b.shape == (5, 6)
    assert layer.scaling == pytest.approx(scaling, rel=1e-15) and layer.alpha == 9.0
    torch.testing.assert_close(layer.lora_b @ layer.lora_a, delta, rtol=0, atol=1e-12)
    after = layer(x)
    assert (after - before).abs().max() <= 1e-12
    after.square().sum().backward()
    assert layer.lora_b.grad[:, 2:].abs().min() > 0  # the new columns of B move
    assert layer.lora_a.grad[2:].abs().max() == 0  # A's new rows wait for B (zero at growth)
    assert layer.lora_a[2:].abs().max() <= 1 / math.sqrt(6)  # Kaiming-uniform bound
    assert layer.lora_a[2:].abs().min() > 0


def test_explicit_formula_and_merge():
    layer, x = _trained_layer(seed=2)
    w0, b0 = layer.base.weight, layer.base.bias
    expected = x @ w0.T + b0 + (3.0 / 2) * x @ layer.lora_a.T @ layer.lora_b.T
    torch.testing.assert_close(layer(x), expected, rtol=0, atol=1e-12)
    torch.testing.assert_close(layer.merged()(x), expected, rtol=0, atol=1e-12)
    assert not layer.base.weight.requires_grad
    with pytest.raises(ValueError, match="new_rank"):
        layer.grow(1)
    with pytest.raises(TypeError, match="base"):
        GrowingLoRALinear(nn.Conv1d(1, 1, 1), rank=2)
    with pytest.raises(ValueError, match="rank"):
        GrowingLoRALinear(nn.Linear(2, 2), rank=0)


def test_adapters_on_the_decoder_start_at_the_base_model():
    config = DecoderConfig(context=5, n_layers=2, d_model=8, n_heads=2, d_mlp=12)
    model = Decoder(config, seed=0, dtype=torch.float64)
    idx = torch.randint(0, 256, (2, 5), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        base = model(idx)
    adapters = add_adapters(model, ("attn.q", "attn.v"), rank=2, seed=3)
    assert sorted(adapters) == [f"blocks.{i}.attn.{n}" for i in range(2) for n in "qv"]
    with torch.no_grad():
        torch.testing.assert_close(model(idx), base, rtol=0, atol=0)
    a0, a1 = adapters["blocks.0.attn.q"].lora_a, adapters["blocks.1.attn.q"].lora_a
    assert not torch.equal(a0, a1)  # spawned seeds
    model.loss(idx, torch.roll(idx, -1, 1)).backward()  # the decoder reads .weight
    adapted = (".attn.q.", ".attn.v.")
    trainable = {
        n for n, p in model.named_parameters() if p.requires_grad and any(a in n for a in adapted)
    }
    assert trainable == {f"{k}.lora_{ab}" for k in adapters for ab in "ab"}
    assert adapters["blocks.0.attn.v"].lora_b.grad.abs().max() > 0
    assert model.blocks[0].attn.q.base.weight.grad is None


def test_bottleneck_salience_of_called_adapters():
    gen = torch.Generator().manual_seed(4)
    net = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3)).double()
    adapters = add_adapters(net, ("0", "2"), rank=3, seed=5)
    with torch.no_grad():
        for a in adapters.values():
            a.lora_b.normal_(generator=gen)
    sites = adapter_sites(adapters)
    x = torch.randn(8, 4, generator=gen, dtype=torch.float64)
    with SalienceTracker(sites) as tracker:
        net(x).square().sum().backward()
        scores = tracker.step()
    assert [s.name for s in sites] == ["0.bottleneck", "2.bottleneck"]
    assert all(scores[s.name].shape == (3,) and bool((scores[s.name] > 0).all()) for s in sites)
    with pytest.raises(ValueError, match="matched no"):
        add_adapters(net, ("nothing",), rank=2)


def test_allocation_example_by_hand():
    # top half by salience: adapters 0 and 2; rho = (480 - 320) / (80 + 80) + 1 = 2
    assert allocate_ranks([0.9, 0.1, 0.5, 0.3], [8, 8, 8, 8], [10] * 4, 480) == [16, 8, 16, 8]
    # one of the top half is at r_max: only the other grows, rho = 160 / 80 + 1 = 3
    assert allocate_ranks([0.9, 0.1, 0.5, 0.3], [64, 8, 8, 8], [10] * 4, 1040) == [64, 8, 24, 8]
    assert allocate_ranks([1.0, 2.0], [4, 4], [3, 3], 10) == [4, 4]  # target below current


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(0, 1), st.integers(1, 64), st.integers(1, 40)), min_size=1, max_size=9
    ),
    st.floats(1.0, 4.0),
)
def test_allocation_never_exceeds_the_target(adapters, growth):
    salience = [s for s, _, _ in adapters]
    ranks = [r for _, r, _ in adapters]
    ppr = [p for _, _, p in adapters]
    current = sum(r * p for r, p in zip(ranks, ppr, strict=True))
    target = int(current * growth)
    new = allocate_ranks(salience, ranks, ppr, target, r_max=64)
    assert sum(r * p for r, p in zip(new, ppr, strict=True)) <= max(target, current)
    assert all(r <= n <= 64 for r, n in zip(ranks, new, strict=True))
    order = sorted(range(len(ranks)), key=lambda i: -salience[i])
    bottom = order[math.ceil(len(ranks) / 2) :]
    assert all(new[i] == ranks[i] for i in bottom)


def _kl_reference(zs, zt, temperature):
    ps = np.exp(zs / temperature) / np.exp(zs / temperature).sum(-1, keepdims=True)
    pt = np.exp(zt / temperature) / np.exp(zt / temperature).sum(-1, keepdims=True)
    return float(np.mean(np.sum(pt * (np.log(pt) - np.log(ps)), -1)))


def test_distillation_loss_against_numpy():
    gen = torch.Generator().manual_seed(0)
    zs = torch.randn(2, 3, 7, generator=gen, dtype=torch.float64, requires_grad=True)
    zt = torch.randn(2, 3, 7, generator=gen, dtype=torch.float64, requires_grad=True)
    hs = [torch.randn(2, 3, 4, generator=gen, dtype=torch.float64) for _ in range(2)]
    ht = [torch.randn(2, 3, 4, generator=gen, dtype=torch.float64) for _ in range(2)]
    t = 2 / 3
    kl = _kl_reference(zs.detach().numpy().reshape(6, 7), zt.detach().numpy().reshape(6, 7), t)
    assert float(kl_divergence(zs, zt, t).detach()) == pytest.approx(kl, rel=1e-12)
    mse = sum(float(((a - b) ** 2).mean()) for a, b in zip(hs, ht, strict=True))
    loss = distillation_loss(zs, zt, hs, ht)
    assert loss.item() == pytest.approx(0.1 * 10 * t**2 * kl + 0.9 * mse, rel=1e-12)
    loss.backward()
    assert zt.grad is None and zs.grad.abs().max() > 0  # the teacher is not trained
    assert distillation_loss(zt, zt).item() == pytest.approx(0.0, abs=1e-15)
    doubled = distillation_loss(zs, zt, hs, ht, transforms=[lambda h: 2 * h] * 2)
    mse2 = sum(float(((2 * a - b) ** 2).mean()) for a, b in zip(hs, ht, strict=True))
    assert doubled.item() == pytest.approx(0.1 * 10 * t**2 * kl + 0.9 * mse2, rel=1e-12)


def test_distillation_is_finite_in_bfloat16_with_extreme_logits():
    zs = torch.tensor([[300.0, -300.0, 0.0]], dtype=torch.bfloat16)
    zt = torch.tensor([[-300.0, 300.0, float("-inf")]], dtype=torch.bfloat16)  # p_t = 0 entry
    value = kl_divergence(zs, zt, 2 / 3)
    assert value.dtype == torch.float32 and torch.isfinite(value)
    assert float(value) == pytest.approx(600 / (2 / 3), rel=1e-2)


def test_distillation_weight_and_snapshot():
    assert distillation_weight(5, 0, 10) == 0.5
    assert distillation_weight(-1, 0, 10) == 0.0 and distillation_weight(11, 0, 10) == 1.0
    model = nn.Linear(2, 2)
    teacher = snapshot(model)
    assert not any(p.requires_grad for p in teacher.parameters()) and not teacher.training
    with torch.no_grad():
        model.weight.add_(1.0)
    assert not torch.equal(teacher.weight, model.weight)
    with pytest.raises(ValueError, match="temperature"):
        kl_divergence(torch.zeros(1, 2), torch.zeros(1, 2), 0.0)
    with pytest.raises(ValueError, match="same shape"):
        kl_divergence(torch.zeros(1, 2), torch.zeros(1, 3), 1.0)
    with pytest.raises(ValueError, match="same length"):
        distillation_loss(torch.zeros(1, 2), torch.zeros(1, 2), [torch.zeros(1)], [])


def test_seed_defaults_follow_the_rule():
    """Modules that draw initial weights default to ``seed=None`` (fresh entropy; the rule next
    to ``SeedLike`` in kernelapprox/_validation.py); an explicit seed repeats."""
    import inspect

    for fn in (GrowingLoRALinear.__init__, GrowingLoRALinear.grow, add_adapters):
        assert inspect.signature(fn).parameters["seed"].default is None, fn.__qualname__
    fresh = [GrowingLoRALinear(nn.Linear(6, 5), rank=3).lora_a for _ in range(2)]
    assert not torch.equal(*fresh)
    seeded = [GrowingLoRALinear(nn.Linear(6, 5), rank=3, seed=7).lora_a for _ in range(2)]
    assert torch.equal(*seeded)
    grown = []
    for _ in range(2):
        layer = GrowingLoRALinear(nn.Linear(6, 5), rank=1, seed=7)
        layer.grow(3)
        grown.append(layer.lora_a[1:])
    assert not torch.equal(*grown)
