"""The small decoder: shapes, causality, and sliced forwards against a masked dense reference."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from kernelapprox.lm import Decoder, DecoderConfig, LayerSlice, Subnetwork

CONFIG = DecoderConfig(vocab_size=256, context=12, n_layers=3, d_model=16, n_heads=4, d_mlp=24)


def _model(tie: bool = True, seed: int = 0) -> Decoder:
    config = DecoderConfig(**{**CONFIG.__dict__, "tie_embeddings": tie})
    model = Decoder(config, seed=seed, dtype=torch.float64)
    with torch.no_grad():  # non-zero biases and layer norms, so that their handling is tested
        gen = torch.Generator().manual_seed(seed + 1)
        for name, p in model.named_parameters():
            if "bias" in name or ".ln" in name or name.startswith("ln_"):
                p.add_(0.1 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    return model


def _tokens(batch: int = 2, length: int = 10) -> torch.Tensor:
    return torch.randint(0, 256, (batch, length), generator=torch.Generator().manual_seed(5))


def masked_reference(model: Decoder, idx: torch.Tensor, layers) -> torch.Tensor:
    """Dense forward, head by head, with 0/1 masks on heads and neurons (independent code)."""
    cfg = model.config
    dh = cfg.head_dim
    length = idx.shape[1]
    x = model.tok.weight[idx] + model.pos.weight[:length]
    causal = torch.ones(length, length, dtype=torch.bool).tril()
    for block, part in zip(model.blocks, layers, strict=True):
        if part is None:
            continue
        head_mask = torch.zeros(cfg.n_heads, dtype=x.dtype)
        head_mask[part.heads if part.heads is not None else slice(None)] = 1.0
        neuron_mask = torch.zeros(cfg.d_mlp, dtype=x.dtype)
        neuron_mask[part.neurons if part.neurons is not None else slice(None)] = 1.0
        h = F.layer_norm(x, (cfg.d_model,), block.ln1.weight, block.ln1.bias)
        attn = torch.zeros_like(x)
        for i in range(cfg.n_heads):
            rows = slice(i * dh, (i + 1) * dh)
            q = h @ block.attn.q.weight[rows].T + block.attn.q.bias[rows]
            k = h @ block.attn.k.weight[rows].T + block.attn.k.bias[rows]
            v = h @ block.attn.v.weight[rows].T + block.attn.v.bias[rows]
            scores = (q @ k.transpose(-1, -2) / math.sqrt(dh)).masked_fill(~causal, -math.inf)
            ctx = torch.softmax(scores, dim=-1) @ v
            attn = attn + head_mask[i] * ctx @ block.attn.o.weight[:, rows].T
        attn = part.head_scale * attn + block.attn.o.bias
        x = x + part.layer_scale * attn
        h = F.layer_norm(x, (cfg.d_model,), block.ln2.weight, block.ln2.bias)
        hidden = F.gelu(h @ block.mlp.fc.weight.T + block.mlp.fc.bias) * neuron_mask
        mlp = part.neuron_scale * hidden @ block.mlp.proj.weight.T + block.mlp.proj.bias
        x = x + part.layer_scale * mlp
    x = F.layer_norm(x, (cfg.d_model,), model.ln_f.weight, model.ln_f.bias)
    return x @ model.lm_head_weight().T


def test_shapes_defaults_and_tied_head() -> None:
    model = Decoder(seed=0)
    assert model.config == DecoderConfig()
    assert model(_tokens(1, 7)).shape == (1, 7, 256)
    assert model.lm_head_weight() is model.tok.weight
    untied = _model(tie=False)
    assert untied.lm_head_weight() is untied.head.weight


def test_init_is_a_function_of_the_seed() -> None:
    a, b, c = (Decoder(CONFIG, seed=s) for s in (1, 1, 2))
    for (name, pa), pb, pc in zip(
        a.named_parameters(), b.parameters(), c.parameters(), strict=True
    ):
        assert torch.equal(pa, pb), name
        if name.endswith("weight") and pa.ndim == 2:
            assert not torch.equal(pa, pc), name


def test_causal() -> None:
    model = _model()
    idx = _tokens()
    changed = idx.clone()
    changed[:, 6:] = (changed[:, 6:] + 1) % 256
    torch.testing.assert_close(model(idx)[:, :6], model(changed)[:, :6], rtol=0, atol=0)


@pytest.mark.parametrize("tie", [True, False])
def test_full_forward_equals_reference(tie: bool) -> None:
    model = _model(tie=tie)
    idx = _tokens()
    full = Subnetwork.full(CONFIG.n_layers)
    torch.testing.assert_close(
        model(idx), masked_reference(model, idx, full.layers), rtol=1e-12, atol=1e-12
    )


def test_all_indices_is_bit_identical_to_the_dense_path() -> None:
    model = _model()
    idx = _tokens()
    every = LayerSlice(heads=torch.arange(4), neurons=torch.arange(24))
    assert torch.equal(model(idx, [every] * 3), model(idx))


def test_sliced_forward_equals_masked_dense_with_scaling() -> None:
    model = _model()
    idx = _tokens()
    layers = (
        LayerSlice(torch.tensor([1, 3]), torch.tensor([0, 5, 7, 20]), 2.0, 6.0, 1.5),
        None,  # a skipped layer passes its input through
        LayerSlice(torch.tensor([2]), None, 4.0, 1.0, 1.5),
    )
    torch.testing.assert_close(
        model(idx, Subnetwork(layers)), masked_reference(model, idx, layers), rtol=1e-12, atol=1e-12
    )
    # and a planted bug is seen: dropping the head scale changes the output
    wrong = (
        LayerSlice(torch.tensor([1, 3]), torch.tensor([0, 5, 7, 20]), 1.0, 6.0, 1.5),
        *layers[1:],
    )
    assert (model(idx, wrong) - masked_reference(model, idx, layers)).abs().max() > 1e-6


def test_skipped_layers_are_identity() -> None:
    model = _model()
    idx = _tokens()
    only_middle = (None, LayerSlice(), None)
    x = model.tok(idx) + model.pos(torch.arange(idx.shape[1]))
    expected = F.linear(model.ln_f(model.blocks[1](x)), model.lm_head_weight())
    assert torch.equal(model(idx, only_middle), expected)


def test_gradient_reaches_only_the_sampled_slices() -> None:
    model = _model()
    idx = _tokens()
    heads, neurons = torch.tensor([0, 2]), torch.tensor([3, 4, 11])
    layers = (LayerSlice(heads, neurons, 2.0, 8.0), None, LayerSlice())
    model.loss(idx, torch.roll(idx, -1, 1), layers).backward()
    attn, mlp = model.blocks[0].attn, model.blocks[0].mlp
    dh = CONFIG.head_dim
    kept_rows = torch.cat([torch.arange(h * dh, (h + 1) * dh) for h in heads.tolist()])
    dropped_rows = torch.tensor([r for r in range(16) if r not in kept_rows.tolist()])
    for lin in (attn.q, attn.k, attn.v):
        assert lin.weight.grad[dropped_rows].abs().max() == 0
        assert lin.bias.grad[dropped_rows].abs().max() == 0
        assert lin.weight.grad[kept_rows].abs().max() > 0
    assert attn.o.weight.grad[:, dropped_rows].abs().max() == 0
    dropped = torch.tensor([n for n in range(24) if n not in neurons.tolist()])
    assert mlp.fc.weight.grad[dropped].abs().max() == 0
    assert mlp.proj.weight.grad[:, dropped].abs().max() == 0
    assert mlp.proj.weight.grad[:, neurons].abs().max() > 0
    for p in model.blocks[1].parameters():  # the skipped layer gets no gradient at all
        assert p.grad is None


def test_bad_input_names_the_parameter() -> None:
    model = _model()
    with pytest.raises(ValueError, match="d_model must be divisible by n_heads"):
        DecoderConfig(d_model=10, n_heads=3)
    with pytest.raises(ValueError, match="n_layers"):
        DecoderConfig(n_layers=0)
    with pytest.raises(TypeError, match="idx"):
        model(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="idx"):
        model(torch.zeros(1, 13, dtype=torch.long))
    with pytest.raises(ValueError, match="subnetwork must have 3"):
        model(_tokens(), [LayerSlice()])
    with pytest.raises(ValueError, match=r"layers\[0\].heads"):
        model(_tokens(), [LayerSlice(heads=torch.tensor([4])), None, None])
    with pytest.raises(ValueError, match="heads must not repeat"):
        LayerSlice(heads=torch.tensor([1, 1]))
    with pytest.raises(ValueError, match="head_scale"):
        LayerSlice(head_scale=0.0)
    with pytest.raises(TypeError, match="neurons"):
        LayerSlice(neurons=[1, 2])


def test_residual_stream_and_run_blocks() -> None:
    model = _model()
    idx = _tokens()
    stream = model.residual_stream(idx)
    x = model.tok(idx) + model.pos(torch.arange(idx.shape[1]))
    assert torch.equal(stream, model.run_blocks(x))
    assert torch.equal(model(idx), F.linear(model.ln_f(stream), model.lm_head_weight()))
    with pytest.raises(ValueError, match="x must be a tensor of shape"):
        model.run_blocks(x[..., :3])
