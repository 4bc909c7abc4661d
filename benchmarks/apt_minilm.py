"""APT on MiniLM against issue 16's targets (opt-in; minutes on 2 cores).

Runs ``kernelapprox compress apt`` (default: MiniLM, ``--keep 0.4``, the docstring-module task)
and checks the issue's targets on its JSON: APT keeps >= 95 % of full fine-tuning's accuracy,
beats magnitude and random pruning at the same budget, trains with <= 60 % of full
fine-tuning's peak memory (measured from the training loop's tensors), and the shrunk model
infers >= 1.8x faster than the full one.

Run: ``python benchmarks/apt_minilm.py [--out DIR] [extra compress-apt options]``.

Measured here (2026-12-01, one thread on a busy 2-core machine, about 6.5 min per run;
60 steps of batch 16, 64 tokens, 512 training docstrings of 11 modules, seed 0):

* with APT's distillation (``--distill 1``, the first default; 160 test docstrings): full
  0.788, LoRA 0.863, APT 0.388 at 0.401 of the encoder parameters, magnitude 0.413, random
  0.294. The snapshot of a barely trained model is a poor teacher, and from step 42 on
  (mu = 1) the cross-entropy is out of the loss.
* the default now (``--distill 0``; 161 test docstrings, the corpus differed by one): full
  0.857, LoRA 0.851, APT 0.795 (93 % of full), magnitude 0.497, random 0.286; estimated
  training memory 91 MB vs 345 MB (26 %); shrunk APT inference 1.93x the full model's
  (wall time on a shared machine); adapter ranks grew from 8 to 11..64; APT trained in 52 s
  against full fine-tuning's 89 s.

* re-measured later that day with the measured memory (load average 12 to 15; the five-method
  run stopped after full fine-tuning, APT run alone with ``--methods apt``, so the test
  docstrings differed, 162 vs 160): full 0.821, APT 0.8125 at 0.401 of the encoder
  parameters; peak training memory 253.3 MB vs 565.6 MB (45 %); see docs/results/apt.md.

Targets: beats magnitude and random, memory <= 60 %, inference >= 1.8x met; >= 95 % of full
fine-tuning's accuracy not met (93 %).
"""

from __future__ import annotations

import contextlib
import io
import json
import sys


def main(argv: list[str] | None = None) -> int:
    from kernelapprox.cli import main as cli_main

    argv = list(sys.argv[1:] if argv is None else argv)
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        status = cli_main(["compress", "apt", "--format", "json", *argv])
    if status:
        return status
    r = json.loads(buffer.getvalue())
    checks = {
        "accuracy >= 95 % of full": (r["accuracy"], 0.95 * r["accuracy_full"]),
        "beats magnitude": (r["accuracy"], r["accuracy_magnitude"]),
        "beats random": (r["accuracy"], r["accuracy_random"]),
        "memory <= 60 % of full": (0.6 * r["peak_mem_mb_full"], r["peak_mem_mb"]),
        "inference >= 1.8x": (r["infer_speedup"], 1.8),
    }
    for name, (a, b) in checks.items():
        met = a is not None and b is not None and a >= b
        print(f"{name:<28} {'met' if met else 'NOT met'} ({a} vs {b})")
    print(json.dumps({k: r[k] for k in r if k not in ("methods", "config")}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
