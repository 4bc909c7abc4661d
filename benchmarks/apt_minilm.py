"""APT on MiniLM against issue 16's targets (opt-in; minutes on 2 cores).

Runs ``kernelapprox compress apt`` (default: MiniLM, ``--keep 0.4``, the docstring-module task)
and checks the issue's targets on its JSON: APT keeps >= 95 % of full fine-tuning's accuracy,
beats magnitude and random pruning at the same budget, trains with <= 60 % of full fine-tuning's
(estimated) peak memory, and the shrunk model infers >= 1.8x faster than the full one.

Run: ``python benchmarks/apt_minilm.py [--out DIR] [extra compress-apt options]``.
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
