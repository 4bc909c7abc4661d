"""EST subnetworks on Hugging Face GPT-2, Llama-style and GPT-NeoX decoders (code unedited)."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from kernelapprox.lm import LayerSlice, Subnetwork

transformers = pytest.importorskip("transformers")
from kernelapprox.dynamics.est_hf import HFSubnetworks  # noqa: E402

VOCAB, T, D, LAYERS, HEADS, MLP = 40, 8, 16, 4, 4, 8
FAMILIES = ("gpt2", "llama", "gpt_neox")


def _model(family: str, *, eager: bool = False) -> torch.nn.Module:
    """A random tiny decoder in float64 (weights of scale 0.3, biases random too)."""
    kwargs = {"attn_implementation": "eager"} if eager else {}
    if family == "gpt2":
        config = transformers.GPT2Config(
            vocab_size=VOCAB,
            n_positions=T,
            n_embd=D,
            n_layer=LAYERS,
            n_head=HEADS,
            n_inner=MLP,
            resid_pdrop=0.0,
            embd_pdrop=0.0,
            attn_pdrop=0.0,
            **kwargs,
        )
        cls = transformers.GPT2LMHeadModel
    elif family == "llama":  # grouped-query attention: 2 key-value groups of 2 query heads
        config = transformers.LlamaConfig(
            vocab_size=VOCAB,
            hidden_size=D,
            intermediate_size=MLP,
            num_hidden_layers=LAYERS,
            num_attention_heads=HEADS,
            num_key_value_heads=2,
            max_position_embeddings=T,
            **kwargs,
        )
        cls = transformers.LlamaForCausalLM
    else:
        config = transformers.GPTNeoXConfig(
            vocab_size=VOCAB,
            hidden_size=D,
            intermediate_size=MLP,
            num_hidden_layers=LAYERS,
            num_attention_heads=HEADS,
            max_position_embeddings=T,
            **kwargs,
        )
        cls = transformers.GPTNeoXForCausalLM
    torch.manual_seed(0)
    model = cls(config).double().eval()
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name or "ln_" in name:
                continue
            p.copy_(0.3 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    return model


def _ids(seed: int = 2) -> torch.Tensor:
    return torch.randint(0, VOCAB, (2, T), generator=torch.Generator().manual_seed(seed))


def _parts(model, family):
    """(layers, attention module, its output projection, MLP module, final norm)."""
    if family == "gpt2":
        base = model.transformer
        return base.h, lambda lay: lay.attn, lambda lay: lay.attn.c_proj, base.ln_f
    if family == "llama":
        base = model.model
        return base.layers, lambda lay: lay.self_attn, lambda lay: lay.self_attn.o_proj, base.norm
    base = model.gpt_neox
    return (
        base.layers,
        lambda lay: lay.attention,
        lambda lay: lay.attention.dense,
        base.final_layer_norm,
    )


@pytest.mark.parametrize("family", FAMILIES)
def test_rates_one_is_the_model_exactly(family) -> None:
    model, ids = _model(family), _ids()
    est = HFSubnetworks(model)
    assert est.family == family
    units = 2 if family == "llama" else HEADS
    assert (est.n_layers, est.n_heads, est.n_neurons) == (LAYERS, units, MLP)
    sub = est.sampler(seed=0).sample(3, (1.0, 1.0, 1.0))
    out = est(sub, ids, labels=ids)
    out.loss.backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad(set_to_none=True)
    ref = model(ids, labels=ids)
    ref.loss.backward()
    assert torch.equal(out.logits, ref.logits)
    for g, p in zip(grads, model.parameters(), strict=True):
        assert torch.equal(g, p.grad)
    explicit = Subnetwork(
        tuple(LayerSlice(torch.arange(est.n_heads), torch.arange(MLP)) for _ in range(LAYERS))
    )
    torch.testing.assert_close(est(explicit, ids).logits, ref.logits, rtol=1e-13, atol=1e-13)


def _reference_layer0(model, family, x, ctx, part):
    """Layer 0 on the subnetwork ``part``, from the full model's own modules: the kept heads'
    columns of the full attention context and the kept neurons' columns of the full
    activations (selection, not weight slicing), the scales applied by hand."""
    s, c_h, c_m = part.layer_scale, part.head_scale, part.neuron_scale
    layer = _parts(model, family)[0][0]
    if family == "gpt2":
        dh = D // HEADS
        rows = (part.heads[:, None] * dh + torch.arange(dh)).reshape(-1)
        proj = layer.attn.c_proj
        h = x + s * (c_h * ctx[..., rows] @ proj.weight[rows, :] + proj.bias)
        mlp = layer.mlp
        act = mlp.act(mlp.c_fc(layer.ln_2(h)))[..., part.neurons]
        return h + s * (c_m * act @ mlp.c_proj.weight[part.neurons, :] + mlp.c_proj.bias)
    if family == "llama":
        width = 2 * (D // HEADS)  # one key-value group: 2 query heads
        rows = (part.heads[:, None] * width + torch.arange(width)).reshape(-1)
        o = layer.self_attn.o_proj
        h = x + s * c_h * ctx[..., rows] @ o.weight[:, rows].T
        mlp, n = layer.mlp, layer.post_attention_layernorm(h)
        act = (mlp.act_fn(mlp.gate_proj(n)) * mlp.up_proj(n))[..., part.neurons]
        return h + s * c_m * act @ mlp.down_proj.weight[:, part.neurons].T
    dh = D // HEADS
    rows = (part.heads[:, None] * dh + torch.arange(dh)).reshape(-1)
    dense = layer.attention.dense
    a = s * (c_h * ctx[..., rows] @ dense.weight[:, rows].T + dense.bias)
    mlp = layer.mlp
    act = mlp.act(mlp.dense_h_to_4h(layer.post_attention_layernorm(x)))[..., part.neurons]
    m = s * (c_m * act @ mlp.dense_4h_to_h.weight[:, part.neurons].T + mlp.dense_4h_to_h.bias)
    return x + a + m  # GPT-NeoX's parallel residual


@pytest.mark.parametrize("family", FAMILIES)
def test_sampled_layer_equals_the_explicit_sub_computation(family) -> None:
    model, ids = _model(family), _ids()
    est = HFSubnetworks(model)
    layers, _, out_proj, final_norm = _parts(model, family)
    sampler = est.sampler(seed=5)
    rates = (0.5, 0.5, 0.75)  # 3 of 4 layers, scale 4/3 ("inverse")
    sub = next(s for s in (sampler.sample(t, rates) for t in range(100)) if s.layers[0] is not None)
    part = sub.layers[0]
    assert part.heads.numel() == est.n_heads // 2 and part.neurons.numel() == MLP // 2
    assert part.layer_scale == pytest.approx(4 / 3)
    seen: dict[str, object] = {}

    def keep(key):  # a pre-hook that records its first input and changes nothing
        def hook(m, a):
            seen.setdefault(key, a[0])

        return hook

    def record(i):
        def hook(m, a, out):
            calls.setdefault(i, (a[0], out[0] if isinstance(out, tuple) else out))

        return hook

    hooks = [
        layers[0].register_forward_pre_hook(keep("x")),
        out_proj(layers[0]).register_forward_pre_hook(keep("ctx")),
    ]
    with torch.no_grad():
        model(ids)
    for h in hooks:
        h.remove()
    calls: dict[int, tuple] = {}
    hooks = [lay.register_forward_hook(record(i)) for i, lay in enumerate(layers)]
    hooks.append(final_norm.register_forward_pre_hook(keep("final")))
    with torch.no_grad():
        est(sub, ids)
    for h in hooks:
        h.remove()
    kept = [i for i, p in enumerate(sub.layers) if p is not None]
    assert sorted(calls) == kept  # skipped layers are not run
    with torch.no_grad():
        want = _reference_layer0(model, family, seen["x"], seen["ctx"], part)
    torch.testing.assert_close(calls[0][1], want, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(calls[0][0], seen["x"], rtol=0, atol=0)
    for a, b in itertools.pairwise(kept):  # a skipped layer passes its input through
        assert torch.equal(calls[b][0], calls[a][1])
    assert torch.equal(seen["final"], calls[kept[-1]][1])


@pytest.mark.parametrize("family", FAMILIES)
def test_sampled_sublayers_are_unbiased_by_exact_enumeration(family) -> None:
    model, ids = _model(family), _ids()
    est = HFSubnetworks(model)
    layers, attention, _, _ = _parts(model, family)
    outputs: list[torch.Tensor] = []

    def grab(m, a, out):
        outputs.append(out[0] if isinstance(out, tuple) else out)

    for kind, module, n in (
        ("heads", attention(layers[0]), est.n_heads),
        ("neurons", layers[0].mlp, MLP),
    ):
        hook = module.register_forward_hook(grab)
        with torch.no_grad():
            model(ids)
            full = outputs.pop()
            k = n // 2
            for subset in itertools.combinations(range(n), k):
                idx = torch.tensor(subset)
                first = (
                    LayerSlice(heads=idx, head_scale=n / k)
                    if kind == "heads"
                    else (LayerSlice(neurons=idx, neuron_scale=n / k))
                )
                est(Subnetwork((first,) + (LayerSlice(),) * (LAYERS - 1)), ids)
        hook.remove()
        draws = torch.stack(outputs)
        outputs.clear()
        assert len(draws) == len(list(itertools.combinations(range(n), k)))
        torch.testing.assert_close(draws.mean(0), full, rtol=1e-12, atol=1e-12)
        assert (draws - full).abs().max() > 1e-3  # single draws do differ from the full sublayer


def _flops(fn) -> int:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        fn()
    return counter.get_total_flops()


@pytest.mark.parametrize("family", FAMILIES)
def test_only_the_sampled_part_is_computed(family) -> None:
    model, ids = _model(family, eager=True), _ids()
    est = HFSubnetworks(model)
    sampler = est.sampler(seed=0)
    none = _flops(lambda: est(Subnetwork((None,) * LAYERS), ids))  # embeddings and head
    full = _flops(lambda: model(ids)) - none
    half = _flops(lambda: est(sampler.sample(0, (0.5, 0.5, 0.5)), ids)) - none
    width = _flops(lambda: est(sampler.sample(0, (0.5, 0.5, 1.0)), ids)) - none
    assert full > 0
    assert 4 * half == full  # half the layers at half width: a quarter of the block FLOPs
    assert 2 * width == full


@pytest.mark.parametrize("family", FAMILIES)
def test_gradients_reach_only_the_sampled_part(family) -> None:
    model, ids = _model(family), _ids()
    est = HFSubnetworks(model)
    sub = est.sampler(seed=3).sample(0, (0.5, 0.5, 0.5))
    est(sub, ids, labels=ids).loss.backward()
    layers, _, out_proj, _ = _parts(model, family)
    for i, (layer, part) in enumerate(zip(layers, sub.layers, strict=True)):
        grads = [p.grad for p in layer.parameters()]
        if part is None:
            assert all(g is None for g in grads), f"skipped layer {i} got a gradient"
            continue
        w = out_proj(layer).weight.grad
        head_axis = 0 if family == "gpt2" else 1  # Conv1D (in, out) vs Linear (out, in)
        width = w.shape[head_axis] // est.n_heads
        per_unit = w.abs().movedim(head_axis, 0).reshape(est.n_heads, width, -1).sum((1, 2))
        kept = torch.zeros(est.n_heads, dtype=torch.bool)
        kept[part.heads] = True
        assert torch.all(per_unit[~kept] == 0) and torch.all(per_unit[kept] > 0)
    assert torch.equal(est(Subnetwork.full(LAYERS), ids).logits, model(ids).logits)


def test_bad_input_names_the_parameter() -> None:
    with pytest.raises(TypeError, match="model"):
        HFSubnetworks(torch.nn.Linear(2, 2))
    with pytest.raises(TypeError, match="model"):
        HFSubnetworks("gpt2")
    est = HFSubnetworks(_model("gpt2"))
    with pytest.raises(ValueError, match="4 layer entries"):
        est(Subnetwork((None,)), _ids())
    with pytest.raises(ValueError, match=r"layers\[1\].heads"):
        est([None, LayerSlice(heads=torch.tensor([4])), None, None], _ids())
    with pytest.raises(ValueError, match=r"layers\[0\].neurons"):
        est([LayerSlice(neurons=torch.tensor([0, MLP])), None, None, None], _ids())
    with pytest.raises(TypeError, match="subnetwork"):
        est("all", _ids())


# --- torch.distributed: every rank runs the same subnetwork --------------------------------------


def _data_parallel_run(rank: int, world: int, steps: int) -> dict:
    """EST on the Llama-style model, batch of 4 split over ``world`` ranks; float64 SGD."""
    import torch.distributed as dist

    from kernelapprox.dynamics.est import StageSchedule

    model = _model("llama")
    est = HFSubnetworks(model)
    sampler = est.sampler(seed=7)
    schedule = StageSchedule.preset("gpt2").scaled(steps)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    losses = []
    for t in range(steps):
        ids = torch.randint(0, VOCAB, (4, T), generator=torch.Generator().manual_seed(t))
        share = ids[rank * 4 // world : (rank + 1) * 4 // world]
        opt.zero_grad(set_to_none=True)
        logits = est(sampler.at(t, schedule), share).logits  # the loss in float64 (the
        # model's own loss casts logits to float32)
        loss = torch.nn.functional.cross_entropy(
            logits[:, :-1].reshape(-1, VOCAB), share[:, 1:].reshape(-1)
        )
        loss.backward()
        if world > 1:  # the same parameters have gradients on every rank, or this would hang
            for p in model.parameters():
                if p.grad is not None:
                    dist.all_reduce(p.grad)
                    p.grad /= world
            dist.all_reduce(loss := loss.detach())
            loss /= world
        losses.append(float(loss.detach()))
        opt.step()
    return {"losses": losses, "params": [p.detach() for p in model.parameters()]}


def _gloo_worker(rank: int, world: int, store: str, out_dir: str, steps: int) -> None:
    from datetime import timedelta

    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo",
        init_method=f"file://{store}",
        rank=rank,
        world_size=world,
        timeout=timedelta(seconds=30),  # a missed collective fails instead of hanging
    )
    try:
        torch.save(_data_parallel_run(rank, world, steps), f"{out_dir}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_two_gloo_ranks_match_one_process(tmp_path) -> None:
    import torch.multiprocessing as mp

    steps = 6  # stages (1, 3, 6): half the layers, then half width, then the full model
    start = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    mp.start_processes(
        _gloo_worker,
        args=(2, str(tmp_path / "store"), str(tmp_path), steps),
        nprocs=2,
        start_method=start,
    )
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    single = _data_parallel_run(0, 1, steps)
    for r in ranks:
        assert r["losses"] == pytest.approx(single["losses"], rel=1e-12)
        for p, q in zip(r["params"], single["params"], strict=True):
            torch.testing.assert_close(p, q, rtol=1e-10, atol=1e-12)
