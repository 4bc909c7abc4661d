"""Opt-in benchmark: does EST's FLOPs saving become wall-clock saving?

Issue 15's target: the measured wall-clock saving of a run is at least 80 % of its FLOPs
saving. For each stage of a schedule (default the paper's ``gpt2`` preset) this script times
one training step (subnetwork draw, forward, backward, AdamW step) of
:class:`kernelapprox.lm.Decoder` at that stage's rates, each call with a new subnetwork, and
compares the time ratio with the FLOPs ratio of
:func:`kernelapprox.dynamics.est.subnetwork_flops` (LM head included, as the run pays for it).
The schedule-weighted wall saving is then set against the FLOPs saving.

Each stage's step is also split into its parts (subnetwork draw, forward, backward, optimizer
step), the medians of each part: the draw and the optimizer (which updates every parameter of
the kept layers, sampled slice or not) do not shrink with the subnetwork. ``--optimizer``
chooses AdamW's implementation: ``fused`` (one kernel, as ``compare_training`` uses),
``foreach`` (multi-tensor) or ``loop`` (per tensor in Python, torch's CPU default).

``--train full|est --steps N`` instead trains ``N`` steps of the scaled schedule in the process
and exits: two such processes timed against each other as whole processes give the run's wall
saving including everything a run pays (a ``--steps 0`` process measures the start-up to
subtract).

Small models are dominated by per-call overhead (index_select of the weight slices, kernel
launches, Python), so the ratio depends on size; try ``--d-model 256 --context 256`` and up.
Usage::

    PYTHONPATH=. python benchmarks/est_wall_clock.py --threads 2
    PYTHONPATH=. python benchmarks/est_wall_clock.py --d-model 768 --layers 12 --heads 12 \
        --context 1024 --batch 8 --device cuda --format json
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from kernelapprox.bench.timing import median_time
from kernelapprox.dynamics.est import (
    SCHEDULES,
    SubnetworkSampler,
    flops_saving,
    subnetwork_flops,
)
from kernelapprox.lm import Decoder, DecoderConfig


def measure(args: argparse.Namespace) -> dict:
    config = DecoderConfig(
        vocab_size=args.vocab,
        context=args.context,
        n_layers=args.layers,
        d_model=args.d_model,
        n_heads=args.heads,
        d_mlp=4 * args.d_model,
    )
    schedule = SCHEDULES[args.schedule]
    device = torch.device(args.device)
    model = Decoder(config, seed=0).to(device)
    impl = {"fused": {"fused": True}, "foreach": {"foreach": True}, "loop": {"foreach": False}}
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, **impl[args.optimizer])
    sampler = SubnetworkSampler.for_config(config, seed=0)
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, args.vocab, (args.batch, args.context), generator=gen).to(device)
    counter = iter(range(10**9))
    parts: dict[str, list[float]] = {}

    def sync() -> float:
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter()

    def step(rates) -> None:
        t0 = sync()
        sub = sampler.sample(next(counter), rates)
        t1 = sync()
        opt.zero_grad(set_to_none=True)
        loss = model.loss(x, x, sub)
        t2 = sync()
        loss.backward()
        t3 = sync()
        opt.step()
        t4 = sync()
        for name, a, b in (
            ("draw", t0, t1),
            ("forward", t1, t2),
            ("backward", t2, t3),
            ("optimizer", t3, t4),
        ):
            parts.setdefault(name, []).append(b - a)

    if args.train is not None:
        scaled = schedule.scaled(args.steps) if args.steps else schedule
        for t in range(args.steps):
            step(scaled.rates_at(t) if args.train == "est" else (1.0, 1.0, 1.0))
        return {"train": args.train, "steps": args.steps}

    def breakdown() -> dict[str, float]:
        out = {name: float(np.median(v[1:])) for name, v in parts.items()}  # first: warm-up
        parts.clear()
        return out

    full_time = median_time(lambda: step((1.0, 1.0, 1.0)), args.repeats)
    full_parts = breakdown()
    full_flops = subnetwork_flops(config, include_head=True)
    stages = []
    for n, rates in zip(schedule.stage_lengths, schedule.rates, strict=True):
        t = median_time(lambda r=rates: step(r), args.repeats)
        stages.append(
            {
                "rates": list(rates),
                "steps": n,
                "seconds_per_step": t,
                "time_ratio": t / full_time,
                "flops_ratio": subnetwork_flops(config, rates, include_head=True) / full_flops,
                "parts_seconds": breakdown(),
            }
        )
    total = schedule.total_steps
    wall_saving = 1 - sum(s["steps"] * s["time_ratio"] for s in stages) / total
    with_head = float(flops_saving(config, schedule, include_head=True))
    return {
        "config": dict(config.__dict__),
        "batch": args.batch,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "schedule": args.schedule,
        "optimizer": args.optimizer,
        "full_seconds_per_step": full_time,
        "full_parts_seconds": full_parts,
        "stages": stages,
        "flops_saving_blocks": float(flops_saving(config, schedule)),
        "flops_saving_with_head": with_head,
        "wall_saving": wall_saving,
        "wall_over_flops_saving": wall_saving / with_head if with_head else None,
        "target_met": bool(with_head and wall_saving >= 0.8 * with_head),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--d-model", type=int, default=256)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--context", type=int, default=256)
    p.add_argument("--vocab", type=int, default=256)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--schedule", default="gpt2", choices=sorted(SCHEDULES))
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--format", default="text", choices=("text", "json"))
    p.add_argument(
        "--optimizer",
        default="fused",
        choices=("fused", "foreach", "loop"),
        help="AdamW implementation",
    )
    p.add_argument(
        "--train",
        choices=("full", "est"),
        default=None,
        help="train --steps steps of the scaled schedule, then exit",
    )
    p.add_argument("--steps", type=int, default=40)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    result = measure(args)
    if args.train is not None:
        return
    if args.format == "json":
        print(json.dumps(result, indent=2))
        return
    print(f"EST wall clock vs FLOPs: {result['config']}, batch {args.batch}, {result['device']}")

    def ms(parts: dict[str, float]) -> str:
        return ", ".join(f"{name} {1e3 * v:.1f}" for name, v in parts.items())

    full = result["full_seconds_per_step"]
    print(f"  full: {1e3 * full:.1f} ms/step ({ms(result['full_parts_seconds'])})")
    for s in result["stages"]:
        print(
            f"  rates {s['rates']}: {1e3 * s['seconds_per_step']:.1f} ms/step, time ratio "
            f"{s['time_ratio']:.3f}, FLOPs ratio {s['flops_ratio']:.3f} "
            f"({ms(s['parts_seconds'])})"
        )
    print(
        f"FLOPs saving {100 * result['flops_saving_with_head']:.1f} % with head "
        f"({100 * result['flops_saving_blocks']:.1f} % blocks), wall saving "
        f"{100 * result['wall_saving']:.1f} %: {result['wall_over_flops_saving']:.2f} of it "
        f"(target 0.80: {'met' if result['target_met'] else 'not met'})"
    )


if __name__ == "__main__":
    main()
