"""Opt-in benchmark: issue 17's targets for Any-Precision nested quantization.

Runs :func:`kernelapprox.compression.quantization.experiment.run_quantization` on MiniLM
(default) or the small decoder and checks the issue's targets:

* nested k-bit quality within 5 % of independent k-bit quality, ``(1 - cos_nested) /
  (1 - cos_independent) - 1 <= 0.05``, for every k from 3 to 6 (MiniLM);
* the weighted error within 1.25x of the exact optimum at k <= 5 (on the sampled rows);
* all widths 3..8 together in <= 1.15x the bytes of one 8-bit model on 4096-wide rows and
  >= 3x smaller than six separate models (:func:`nested_storage` on a 4096 x 4096 matrix; the
  model's own shapes are reported too);
* quantizing every linear layer at 3..8 bits in under 60 s (the ``nested`` wall time; its
  process CPU seconds beside it, which a shared machine does not inflate).

Then the throughput of :class:`QuantizedLinear` (cached dequantized weight, and
dequantizing on every call) against ``torch.nn.Linear`` at batch 1 and 64. Usage::

    PYTHONPATH=. python benchmarks/quantization_targets.py --threads 2
    PYTHONPATH=. python benchmarks/quantization_targets.py --model tiny --format json
"""

from __future__ import annotations

import argparse
import json
import sys

import torch

from kernelapprox.compression.quantization.experiment import run_quantization
from kernelapprox.compression.quantization.packing import nested_storage


def targets(result: dict) -> dict:
    rows = {r["bits"]: r for r in result["per_bits"]}
    checks: dict[str, object] = {}
    if result["quality_metric"] == "cosine":
        gaps = {
            k: (1 - rows[k]["quality_nested"]) / max(1 - rows[k]["quality_independent"], 1e-300) - 1
            for k in range(3, 7)
            if k in rows
        }
        checks["quality_gap_3_to_6"] = gaps
        checks["quality_gap_ok"] = all(g <= 0.05 for g in gaps.values())
    opt = {k: r["nested_over_optimal"] for k, r in rows.items() if r["nested_over_optimal"]}
    checks["nested_over_optimal"] = opt
    checks["optimal_ok"] = all(v <= 1.25 for v in opt.values())
    wide = nested_storage([(4096, 4096)], 3, 8)
    checks["bytes_4096"] = wide
    checks["bytes_ok"] = wide["nested_over_one_model"] <= 1.15 and wide["separate_over_nested"] >= 3
    checks["bytes_model"] = result["storage"]
    checks["nested_seconds"] = result["seconds"]["nested"]
    checks["nested_cpu_seconds"] = result["seconds"]["nested_cpu"]
    checks["time_ok"] = result["seconds"]["nested"] < 60
    return checks


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="minilm", choices=("minilm", "tiny"))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--format", default="text", choices=("text", "json"))
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    result = run_quantization(
        args.model, seed=args.seed, progress=lambda s: print(s, file=sys.stderr, flush=True)
    )
    checks = targets(result)
    if args.format == "json":
        print(json.dumps({"result": result, "targets": checks}, indent=2, default=str))
    else:
        for key, value in checks.items():
            print(f"{key}: {value}")
        print(f"throughput: {result['throughput']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
