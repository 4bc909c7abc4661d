"""APT's cubic schedule, masks by selection during training, and the physically shrunk model."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from kernelapprox.compression.pruning import (
    MaskHooks,
    Pruner,
    count_params,
    cubic_keep_fraction,
    decoder_sites,
    pruning_steps,
    shrink_decoder,
)
from kernelapprox.lm import Decoder, DecoderConfig, LayerSlice

CONFIG = DecoderConfig(context=6, n_layers=3, d_model=8, n_heads=4, d_mlp=10)


def _model(seed=0):
    model = Decoder(CONFIG, seed=seed, dtype=torch.float64)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * 0.3)
    idx = torch.randint(0, 256, (2, 6), generator=gen)
    return model, idx


def _masks(seed=1):
    gen = torch.Generator().manual_seed(seed)
    masks = {}
    for i in range(CONFIG.n_layers):
        masks[f"layers.{i}.heads"] = torch.rand(CONFIG.n_heads, generator=gen) < 0.5
        masks[f"layers.{i}.neurons"] = torch.rand(CONFIG.d_mlp, generator=gen) < 0.5
    masks["layers.1.heads"][:] = False  # a layer without heads
    masks["layers.2.neurons"][:] = False  # a layer without neurons
    masks["layers.0.heads"][0] = True
    return masks


def test_cubic_schedule_values():
    kw = {"t_warm": 10, "t_end": 110, "gamma_final": 0.4}
    assert cubic_keep_fraction(0, **kw) == 1.0  # before the window: min(gamma_0, ...)
    assert cubic_keep_fraction(10, **kw) == pytest.approx(1.0)
    assert cubic_keep_fraction(60, **kw) == pytest.approx(0.4 + 0.6 * 0.5**3)
    assert cubic_keep_fraction(110, **kw) == pytest.approx(0.4)
    assert cubic_keep_fraction(500, **kw) == pytest.approx(0.4)  # clamped, not below gamma_T
    values = [cubic_keep_fraction(t, **kw) for t in range(0, 130)]
    assert all(a >= b for a, b in itertools.pairwise(values))
    assert pruning_steps(10, 110) == list(range(10, 111, 10))
    assert len(pruning_steps(0, 7)) == 8  # rounded steps merge
    with pytest.raises(ValueError, match="t_end"):
        cubic_keep_fraction(0, t_warm=5, t_end=5, gamma_final=0.5)
    with pytest.raises(ValueError, match="gamma_final"):
        cubic_keep_fraction(0, t_warm=0, t_end=5, gamma_final=1.5)
    with pytest.raises(TypeError, match="n"):
        pruning_steps(0, 5, 2.0)


def test_masked_model_equals_the_decoders_own_slicing():
    model, idx = _model()
    masks = _masks()
    masks["layers.1.heads"][2] = True  # LayerSlice needs one head
    masks["layers.2.neurons"][3] = True
    with torch.no_grad(), MaskHooks(decoder_sites(model), masks):
        masked = model(idx)
    parts = [
        LayerSlice(
            heads=torch.nonzero(masks[f"layers.{i}.heads"]).reshape(-1),
            neurons=torch.nonzero(masks[f"layers.{i}.neurons"]).reshape(-1),
        )
        for i in range(CONFIG.n_layers)
    ]
    with torch.no_grad():
        torch.testing.assert_close(masked, model(idx, parts), rtol=0, atol=1e-12)


def test_shrunk_model_equals_masked_model_and_is_smaller():
    model, idx = _model()
    masks = _masks()
    with torch.no_grad(), MaskHooks(decoder_sites(model), masks):
        masked = model(idx)
    before = count_params(model)
    removed = sum(
        int((~m).sum()) * s.params_per_group for s in decoder_sites(model) for m in [masks[s.name]]
    )
    shrink_decoder(model, masks)
    with torch.no_grad():
        torch.testing.assert_close(model(idx), masked, rtol=0, atol=1e-12)
    assert count_params(model) == before - removed
    assert model.blocks[1].attn.q.weight.shape == (0, CONFIG.d_model)
    assert model.blocks[0].mlp.fc.out_features == int(masks["layers.0.neurons"].sum())
    model(idx).sum().backward()  # the shrunk model trains


def test_masks_select_so_a_nan_in_a_pruned_channel_does_not_spread():
    model, idx = _model()
    masks = _masks()
    dead = int(torch.nonzero(~masks["layers.0.neurons"])[0])
    with torch.no_grad():
        model.blocks[0].mlp.fc.weight[dead] = float("nan")
        assert torch.isnan(model(idx)).all()
        with MaskHooks(decoder_sites(model), masks):
            assert torch.isfinite(model(idx)).all()


def test_pruner_follows_the_schedule_during_training():
    model, idx = _model(seed=2)
    targets = torch.roll(idx, -1, 1)
    sites = decoder_sites(model)
    with Pruner(sites, keep=0.4, t_warm=2, t_end=12) as pruner:
        for t in range(15):
            model.zero_grad()
            model.loss(idx, targets).backward()
            pruner.step(t)
            with torch.no_grad():  # plain SGD (torch.optim's first use imports dynamo: seconds)
                for p in model.parameters():
                    p -= 1e-2 * p.grad
        with torch.no_grad():
            masked = model(idx)
    assert [h["step"] for h in pruner.history] == list(range(2, 13))
    for h in pruner.history:
        assert h["kept_params"] <= h["budget"]
        assert h["budget"] == pytest.approx(
            cubic_keep_fraction(h["step"], t_warm=2, t_end=12, gamma_final=0.4) * pruner.total
        )
    final = pruner.history[-1]
    biggest = max(s.params_per_group for s in sites)
    assert 0.4 * pruner.total - biggest < final["kept_params"] <= 0.4 * pruner.total
    shrink_decoder(model, pruner.masks)
    with torch.no_grad():
        torch.testing.assert_close(model(idx), masked, rtol=0, atol=1e-12)
    assert not any(s.module._forward_hooks for s in sites)


def test_bad_masks_are_refused():
    model, _ = _model()
    sites = decoder_sites(model)
    with pytest.raises(ValueError, match="unknown site"):
        MaskHooks(sites, {"layers.9.heads": torch.ones(4, dtype=torch.bool)})
    with pytest.raises(TypeError, match="bool"):
        MaskHooks(sites, {"layers.0.heads": torch.ones(4)})
    with pytest.raises(ValueError, match="shape"):
        shrink_decoder(model, {"layers.0.heads": torch.ones(3, dtype=torch.bool)})
    with pytest.raises(ValueError, match="keep"):
        Pruner(sites, keep=0.0, t_warm=0, t_end=5)
    assert math.isfinite(cubic_keep_fraction(3, t_warm=0, t_end=5, gamma_final=0.0))
