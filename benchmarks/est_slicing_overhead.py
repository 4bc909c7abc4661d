"""Opt-in benchmark: what a sampled EST step costs against a dense model of the kept size.

At the stage rates ``(p_H, p_M, p_L) = (1/2, 1/2, 1)`` three training steps (forward, backward,
fused AdamW) are timed in turn on the same batch, as CPU time of this process (median over
``--steps``):

* ``full``: :class:`kernelapprox.lm.Decoder` with every head and neuron;
* ``sliced``: the same decoder running a fresh subnetwork of
  :class:`~kernelapprox.dynamics.est.SubnetworkSampler` each step (gathers of the kept weight
  slices, gradients scattered back into the full parameters, AdamW over all of them);
* ``dense_half``: a decoder that *is* the kept size (half the heads of the same width, half the
  MLP), with no gathers: the best any slicing can do.

``sliced - dense_half`` is the price of slicing (the gathers and scatters, the optimizer over
the full parameters); ``dense_half / full`` against the FLOPs ratio is what no slicing can
remove (layer norms, embeddings, the LM head's softmax and other work outside the counted
matrix products, and per-operation overhead). The subnetwork draw is timed apart (``draw``).

Usage::

    PYTHONPATH=. python benchmarks/est_slicing_overhead.py --d-model 64 --context 64 --batch 16
    PYTHONPATH=. python benchmarks/est_slicing_overhead.py --d-model 256 --context 128 --batch 8
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from kernelapprox.dynamics.est import SubnetworkSampler, subnetwork_flops
from kernelapprox.lm import Decoder, DecoderConfig

RATES = (0.5, 0.5, 1.0)


def dense_half(config: DecoderConfig, seed: int) -> Decoder:
    """A decoder of the kept size at ``RATES``: half the heads (same head width), half the MLP."""
    half = DecoderConfig(
        vocab_size=config.vocab_size,
        context=config.context,
        n_layers=config.n_layers,
        d_model=config.d_model,
        n_heads=config.n_heads,
        d_mlp=config.d_mlp // 2,
    )
    model = Decoder(half, seed=seed)
    d, width = config.d_model, config.d_model // 2
    for block in model.blocks:
        attn = block.attn
        attn.q, attn.k, attn.v = (torch.nn.Linear(d, width) for _ in range(3))
        attn.o = torch.nn.Linear(width, d)
        attn.n_heads = config.n_heads // 2
    return model


def measure(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    config = DecoderConfig(
        context=args.context,
        n_layers=args.layers,
        d_model=args.d_model,
        n_heads=args.heads,
        d_mlp=4 * args.d_model,
    )
    if args.heads % 2 or config.d_mlp % 2:
        raise ValueError("--heads must be even (half of them are kept)")
    models = {"full": Decoder(config, seed=0), "sliced": Decoder(config, seed=0)}
    models["dense_half"] = dense_half(config, 0)
    optimizers = {
        name: torch.optim.AdamW(m.parameters(), lr=1e-3, fused=True) for name, m in models.items()
    }
    sampler = SubnetworkSampler.for_config(config, seed=0)
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, config.vocab_size, (args.batch, config.context), generator=gen)
    y = torch.randint(0, config.vocab_size, (args.batch, config.context), generator=gen)
    times: dict[str, list[float]] = {name: [] for name in (*models, "draw")}
    for t in range(args.warmup + args.steps):
        start = time.process_time()
        sub = sampler.sample(t, RATES)
        times["draw"].append(time.process_time() - start)
        for name, model in models.items():
            start = time.process_time()
            optimizers[name].zero_grad(set_to_none=True)
            model.loss(x, y, sub if name == "sliced" else None).backward()
            optimizers[name].step()
            times[name].append(time.process_time() - start)
    median = {
        name: sorted(v[args.warmup :])[len(v[args.warmup :]) // 2] for name, v in times.items()
    }
    flops_ratio = subnetwork_flops(config, RATES, include_head=True) / subnetwork_flops(
        config, include_head=True
    )
    full = median["full"]
    return {
        "config": dict(config.__dict__),
        "batch": args.batch,
        "steps": args.steps,
        "rates": list(RATES),
        "median_cpu_ms": {name: 1000 * v for name, v in median.items()},
        "sliced_over_full": (median["sliced"] + median["draw"]) / full,
        "dense_half_over_full": median["dense_half"] / full,
        "flops_ratio_with_head": flops_ratio,
        "stage_saving_over_flops_saving": (1 - (median["sliced"] + median["draw"]) / full)
        / (1 - flops_ratio),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--d-model", type=int, default=64)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--context", type=int, default=64)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--steps", type=int, default=40, help="timed steps of each model")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    print(json.dumps(measure(p.parse_args()), indent=2))


if __name__ == "__main__":
    main()
