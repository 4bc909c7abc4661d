"""Opt-in benchmark: the time to quantize every linear layer of MiniLM at 3..8 bits.

Issue 17's target: all 37 linear layers of all-MiniLM-L6-v2 (10.8 M weights) quantized at
every width from 3 to 8 bits in under 60 s on 2 cores. The sensitivities are those of the
experiment (:func:`kernelapprox.compression.quantization.experiment.run_quantization`: the
diagonal Fisher of a random projection of the embedding on ``--calibration`` sentences of the
offline corpus); only :func:`~kernelapprox.compression.quantization.quantize_linears` is
timed, on a fresh copy of the model per method, as wall-clock and process CPU seconds of one
run after a warm-up on the first layer (a whole warm-up run would double a long benchmark).

Usage::

    PYTHONPATH=. python benchmarks/quantize_minilm_time.py --threads 1
    PYTHONPATH=. python benchmarks/quantize_minilm_time.py --methods tree --threads 2 --json F

On a shared machine quote the CPU seconds beside the wall time: the wall time includes the
time the process waited for a core. Measured 2026-12-01 (2 shared cores, load average 11-15):
see ``docs/results/quantization.md``.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time

import torch

from kernelapprox.compression.quantization.experiment import _minilm
from kernelapprox.compression.quantization.models import quantize_linears
from kernelapprox.compression.quantization.nested import nested_quantize


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--methods", nargs="+", default=["tree", "upscale"], choices=["tree", "upscale"])
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    p.add_argument("--calibration", type=int, default=128, help="calibration sentences")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, help="also write the figures to this file")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    setup = _minilm(args.seed, args.calibration, 8)
    model, fisher = setup["model"], setup["fisher"]
    first = next(iter(fisher))
    weight = dict(model.named_modules())[first].weight.detach()
    result = {
        "threads": args.threads,
        "calibration": args.calibration,
        "n_layers": len(fisher),
        "n_weights": sum(f.numel() for f in fisher.values()),
    }
    for method in args.methods:
        nested_quantize(weight, fisher[first], method=method, seed=0)  # warm-up

        net = copy.deepcopy(model)
        start, start_cpu = time.perf_counter(), time.process_time()
        quantize_linears(net, fisher, method=method, seed=args.seed)
        wall, cpu = time.perf_counter() - start, time.process_time() - start_cpu
        result[method] = {"wall_s": wall, "cpu_s": cpu}
        print(f"{method}: {len(fisher)} layers in {wall:.1f} s wall, {cpu:.1f} s CPU", flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=2)
    json.dump(result, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
