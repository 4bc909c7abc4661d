"""APT's cubic schedule, masks by selection during training, and the physically shrunk model."""

from __future__ import annotations

import copy
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
    with pytest.raises(TypeError, match="bool or floating"):
        MaskHooks(sites, {"layers.0.heads": torch.ones(4, dtype=torch.int64)})
    for bad in (1.5, -0.25, float("nan")):
        with pytest.raises(ValueError, match=r"\[0, 1\]"):
            MaskHooks(sites, {"layers.0.heads": torch.full((4,), bad)})
    with pytest.raises(ValueError, match="shape"):
        MaskHooks(sites, {"layers.0.heads": torch.ones(3)})
    for bad, error in ((-1, ValueError), (1.5, TypeError), (True, TypeError)):
        with pytest.raises(error, match="fade"):
            Pruner(sites, keep=0.5, t_warm=0, t_end=5, fade=bad)
    with pytest.raises(ValueError, match="shape"):
        shrink_decoder(model, {"layers.0.heads": torch.ones(3, dtype=torch.bool)})
    with pytest.raises(ValueError, match="keep"):
        Pruner(sites, keep=0.0, t_warm=0, t_end=5)
    assert math.isfinite(cubic_keep_fraction(3, t_warm=0, t_end=5, gamma_final=0.0))


def test_a_fading_mask_scales_its_groups_and_selects_the_dropped_ones():
    model, idx = _model()
    sites = decoder_sites(model)
    fading = torch.tensor([0.0, 0.25, 1.0, 0.5, 0.0, 1.0, 0.75, 1.0, 0.0, 0.5], dtype=torch.float64)
    with torch.no_grad():
        plain = model(idx)
        with MaskHooks(sites, {"layers.0.neurons": torch.ones(CONFIG.d_mlp, dtype=torch.float64)}):
            torch.testing.assert_close(model(idx), plain, rtol=0, atol=0)  # m = 1: bit for bit
        with MaskHooks(sites, {"layers.0.neurons": fading}):
            faded = model(idx)
        reference = copy.deepcopy(model)  # the same scaling on the down projection's columns
        reference.blocks[0].mlp.proj.weight.mul_(fading)
        torch.testing.assert_close(faded, reference(idx), rtol=0, atol=1e-12)
        model.blocks[0].mlp.fc.weight[0] = float("nan")  # a neuron at 0 is selected away
        with MaskHooks(sites, {"layers.0.neurons": fading}):
            assert torch.isfinite(model(idx)).all()
        model.blocks[0].mlp.fc.weight[1] = float("nan")  # one at 0.25 is not
        with MaskHooks(sites, {"layers.0.neurons": fading}):
            assert torch.isnan(model(idx)).all()


def _moved(start: torch.Tensor, keep: torch.Tensor, k: int, fade: int) -> torch.Tensor:
    """``start`` after ``k`` steps of ``1 / fade`` toward ``keep``, clamped to [0, 1]."""
    return (start + torch.where(keep, k / fade, -k / fade).to(torch.float64)).clamp(0, 1)


def test_pruner_fades_masks_toward_the_coming_selection_and_cuts_hard_at_updates():
    from kernelapprox.compression.pruning.selection import select_masks

    model, idx = _model(seed=3)
    targets = torch.roll(idx, -1, 1)
    sites = decoder_sites(model)
    gen = torch.Generator().manual_seed(5)
    scores = {s.name: torch.rand(s.n_groups, generator=gen, dtype=torch.float64) for s in sites}
    fade = 4
    seen = {}
    with Pruner(sites, keep=0.4, t_warm=2, t_end=22, n_updates=3, fade=fade) as pruner:
        assert pruner.updates == [2, 12, 22]
        for t in range(26):
            model.zero_grad()
            model.loss(idx, targets).backward()
            changed = pruner.step(t, scores)
            assert changed == (t in pruner.updates)
            assert pruner.needs_scores(t) == (2 <= t <= 22)
            seen[t] = {k: v.clone() for k, v in pruner.fading.items()}
            if t == 4:  # the hooks apply the fading masks themselves
                with torch.no_grad():
                    during = model(idx)
        with torch.no_grad():
            final = model(idx)
    picks = {
        u: select_masks(sites, scores, pruner._budget(u))[0] for u in pruner.updates
    }  # the selections the fade heads for
    assert all(bool(m.all()) for m in picks[2].values())  # gamma = 1 at the warm-up's end
    for t in range(3, 12):
        for k, keep in picks[12].items():
            torch.testing.assert_close(
                seen[t][k], _moved(seen[2][k], keep, t - 2, fade), rtol=0, atol=0
            )
    for t in range(13, 22):
        for k, keep in picks[22].items():
            expected = _moved(picks[12][k].to(torch.float64), keep, t - 12, fade)
            torch.testing.assert_close(seen[t][k], expected, rtol=0, atol=0)
    for u in pruner.updates:  # hard at every update, as without a fade
        for k, keep in picks[u].items():
            torch.testing.assert_close(seen[u][k], keep.to(torch.float64), rtol=0, atol=0)
    assert all(torch.equal(seen[25][k], seen[22][k]) for k in seen[22])  # after the window
    assert any(0 < float(v) < 1 for m in seen[4].values() for v in m)  # something half-faded
    with torch.no_grad(), MaskHooks(sites, seen[4]):  # what the model computed at step 4
        torch.testing.assert_close(model(idx), during, rtol=0, atol=0)
    hard = {k: m.clone() for k, m in pruner.masks.items()}
    for k in hard:
        torch.testing.assert_close(hard[k], picks[22][k], rtol=0, atol=0)
    with torch.no_grad(), MaskHooks(sites, hard):
        torch.testing.assert_close(model(idx), final, rtol=0, atol=0)


def test_without_a_fade_the_pruner_selects_only_at_updates():
    model, _ = _model()
    pruner = Pruner(decoder_sites(model), keep=0.4, t_warm=2, t_end=22, n_updates=3)
    assert [t for t in range(30) if pruner.needs_scores(t)] == [2, 12, 22]
    assert pruner.fading == {}
