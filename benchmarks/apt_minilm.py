"""Issue 16's targets for APT on MiniLM, checked on one ``kernelapprox compress apt`` run (opt-in).

Runs ``kernelapprox compress apt --format json`` with the options given here (default: the
command's defaults: MiniLM, ``--keep 0.4``, the docstring-module task, five methods on
3 paired seeds) and reads the targets off its JSON, paired by seed where the command gives an
interval:

* APT keeps >= 95 % of full fine-tuning's score: the verdict of ``accuracy_ratio`` (or
  ``cosine_ratio`` for ``--task embed``), the mean of the per-seed ratios APT / full with its
  95 % paired Student-t interval (*met* when the whole interval is at or above 0.95, *not met*
  when it is below, *inconclusive* when it straddles 0.95; one seed gives no interval);
* APT beats magnitude and random pruning at the same budget: the paired difference of the
  score, *met* when its interval lies above 0, *not met* below, else *inconclusive*;
* peak training memory <= 60 % of full fine-tuning's (``peak_mem_ratio``, measured from the
  training loop's tensors, see :mod:`kernelapprox.compression.pruning.memory`);
* the shrunk model infers >= 1.8x faster than the unpruned one (``infer_speedup``: the median
  wall-clock ratio over all timing rounds, one thread, in the process that trained APT).

A target whose methods were left out of ``--methods`` reads *not measured*. Prints one line per
target, then the JSON summary without the per-method and per-seed details.

Run: ``python benchmarks/apt_minilm.py [extra compress-apt options, e.g. --out DIR]``.
Measured runs and their numbers: ``docs/results/apt.md``.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
from typing import Any

#: APT / full score at least this (issue 16)
TARGET_RATIO = 0.95
#: APT's peak training memory at most this fraction of full fine-tuning's
TARGET_MEMORY = 0.6
#: shrunk model's inference speed at least this multiple of the unpruned model's
TARGET_SPEEDUP = 1.8


def _interval_text(r: dict[str, Any]) -> str:
    if r.get("ci_low") is None:
        return f"{r['value']:.3f}, {r['n_seeds']} seed: no interval"
    return f"{r['value']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}], {r['n_seeds']} seeds"


def _above(r: dict[str, Any] | None, threshold: float) -> tuple[str, str]:
    """Verdict of a paired interval against "value >= threshold"
    (:func:`kernelapprox.compression.pruning.paired.target_verdict`)."""
    from kernelapprox.compression.pruning.paired import target_verdict

    if r is None:
        return "not measured", ""
    if r.get("value") is None:
        return "undefined", str(r.get("verdict", ""))
    return target_verdict(r, threshold), _interval_text(r)


def target_checks(summary: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """``{target: (verdict, detail)}`` of issue 16's targets on the command's JSON summary."""
    metric = "cosine" if summary.get("config", {}).get("task") == "embed" else "accuracy"
    checks = {
        f"{metric} >= 95 % of full": _above(summary.get(f"{metric}_ratio"), TARGET_RATIO),
        "beats magnitude": _above(summary.get(f"{metric}_minus_magnitude"), 0.0),
        "beats random": _above(summary.get(f"{metric}_minus_random"), 0.0),
    }
    mem = summary.get("peak_mem_ratio")
    checks["memory <= 60 % of full"] = (
        ("not measured", "")
        if mem is None
        else ("met" if mem <= TARGET_MEMORY else "not met", f"{mem:.3f} of full's")
    )
    speed = summary.get("infer_speedup")
    if speed is None:
        checks["inference >= 1.8x"] = ("not measured", "")
    else:
        lo, hi = summary["infer_speedup_range"]
        checks["inference >= 1.8x"] = (
            "met" if speed >= TARGET_SPEEDUP else "not met",
            f"median {speed:.2f}x over {summary.get('infer_speedup_rounds')} rounds, "
            f"range {lo:.2f}x to {hi:.2f}x",
        )
    return checks


def main(argv: list[str] | None = None) -> int:
    from kernelapprox.cli import main as cli_main

    argv = list(sys.argv[1:] if argv is None else argv)
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        status = cli_main(["compress", "apt", *argv, "--format", "json"])
    if status:
        return status
    summary = json.loads(buffer.getvalue())
    for name, (verdict, detail) in target_checks(summary).items():
        print(f"{name:<28} {verdict}" + (f" ({detail})" if detail else ""))
    skip = ("methods", "per_seed", "infer_speed_per_seed")
    print(json.dumps({k: v for k, v in summary.items() if k not in skip}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
