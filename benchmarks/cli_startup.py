"""Start-up time of ``kernelapprox --version`` and ``--help`` against a bare ``python -c pass``.

Issue 20 asks both to finish within 0.5 s of the bare interpreter. Each command runs as a whole
process, in turn with the bare interpreter (A B A B ...), so that a drift of the machine's
speed hits both; the figure is the median of the differences and of the ratios.

    python benchmarks/cli_startup.py [--repeats 10]

Measured on the shared 2-core machine at load 16 (whole processes, 10 runs each, medians):
``--version`` 0.388 s vs 0.061 s of wall time (0.123 vs 0.020 s of CPU), ``--help`` 0.248 vs
0.070 s (0.073 vs 0.020 s); before the lazy imports ``--version`` took 12.95 s.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

COMMANDS = {
    "--version": [sys.executable, "-m", "kernelapprox", "--version"],
    "--help": [sys.executable, "-m", "kernelapprox", "--help"],
}
BARE = [sys.executable, "-c", "pass"]


def wall(argv: list[str]) -> float:
    """Wall seconds of one run of ``argv`` (its output discarded)."""
    start = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    for name, argv in COMMANDS.items():
        wall(argv), wall(BARE)  # warm-up: page cache, .pyc files
        pairs = [(wall(argv), wall(BARE)) for _ in range(args.repeats)]
        ours = statistics.median(a for a, _ in pairs)
        bare = statistics.median(b for _, b in pairs)
        extra = statistics.median(a - b for a, b in pairs)
        ratio = statistics.median(a / b for a, b in pairs)
        verdict = "within" if extra <= 0.5 else "NOT within"
        print(
            f"kernelapprox {name:9s} {ours:6.3f} s, python -c pass {bare:6.3f} s: "
            f"+{extra:.3f} s ({ratio:.1f}x), {verdict} 0.5 s"
        )


if __name__ == "__main__":
    main()
