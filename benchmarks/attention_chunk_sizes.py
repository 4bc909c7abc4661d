"""Opt-in benchmark: the causal CPU path of feature attention at several chunk lengths.

The chunked causal algorithm (:func:`kernelapprox.attention.functional.feature_attention`,
``chunk_size`` ``C``, default 64) does ``2 N C^2 (F + d_v + 1)`` FLOPs of intra-chunk
products (``N = T / C`` chunks, the masked half of each block included) and ``4 T F (d_v +
1)`` of state reads and updates whatever ``C`` is: a longer chunk does more arithmetic in
larger, faster products and walks fewer states. Which ``C`` is fastest is a question of time,
not of the roofline ratio, whose FLOP count (``kernelapprox.bench.attention.algorithm_flops``)
grows with ``C``: this script times the bench's case (B 1, H 8, d 64, m 256 positive
orthogonal features, fp32, causal) at each chunk length in interleaved rounds of one process,
so that the lengths share the machine's drift, and reports per length the median time, its
ratio to the default length in the same rounds (median of the per-round ratios, with the
range) and the FLOP count with the rate it implies.

Usage::

    python benchmarks/attention_chunk_sizes.py [--lengths 4096] [--chunks 32,64,128]
        [--modes fwd,fwdbwd] [--threads 1] [--rounds 12] [--wall] [--out FILE]

Times are process CPU seconds (all threads) unless ``--wall``: on a shared machine CPU time
leaves out the time spent waiting for a core. The script imports torch before kernelapprox, so
torch's huge pages for CPU tensors are off unless ``THP_MEM_ALLOC_ENABLE=1`` is set (the
bench's processes have them on); the JSON records which (``environment``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
from collections.abc import Callable
from statistics import median

import torch

from kernelapprox._io import atomic_write, json_text
from kernelapprox.attention import feature_attention
from kernelapprox.attention.functional import DEFAULT_CHUNK
from kernelapprox.bench.attention import (
    Case,
    _feature_map,
    algorithm_flops,
    environment,
    make_inputs,
)
from kernelapprox.bench.timing import interleaved_times
from kernelapprox.cli._common import comma_list, positive_int


def step(case: Case, chunk: int) -> Callable[[], None]:
    """One forward (``case.mode == "fwd"``, without gradients) or forward and backward pass
    of ``case`` at chunk length ``chunk``."""
    fm = _feature_map(case)
    q, k, v = make_inputs(case)
    if case.mode == "fwd":

        def forward() -> None:
            with torch.no_grad():
                feature_attention(q, k, v, fm, causal=True, layout="bhtd", chunk_size=chunk)

        return forward
    q, k, v = (x.requires_grad_() for x in (q, k, v))
    grad = torch.randn(q.shape, generator=torch.Generator().manual_seed(1))

    def forward_backward() -> None:
        o = feature_attention(q, k, v, fm, causal=True, layout="bhtd", chunk_size=chunk)
        o.backward(grad)
        for x in (q, k, v):
            x.grad = None

    return forward_backward


def counting_faults(fn: Callable[[], None], faults: list[int]) -> Callable[[], None]:
    """``fn``, appending to ``faults`` the minor page faults of the process during each call
    (on CPU, a fresh block over glibc's 32 MiB ``mmap`` limit is faulted in on first touch)."""

    def counted() -> None:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        fn()
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)

    return counted


def compare(case: Case, chunks: list[int], rounds: int, *, cpu: bool) -> list[dict]:
    """Rows of one (mode, T): per chunk length the median seconds, the per-round ratio to
    the default length (median, min, max), the median page faults per call and the FLOPs."""
    faults: dict[int, list[int]] = {c: [] for c in chunks}
    fns = {c: counting_faults(step(case, c), faults[c]) for c in chunks}
    times = interleaved_times(fns, rounds, cpu=cpu)
    base = DEFAULT_CHUNK if DEFAULT_CHUNK in chunks else chunks[0]
    rows = []
    for c in chunks:
        ratios = [t / b for t, b in zip(times[c], times[base], strict=True)]
        flops = algorithm_flops(case, chunk=c)["total"]
        seconds = median(times[c])
        rows.append(
            {
                "mode": case.mode,
                "T": case.T,
                "chunk": c,
                "ms": 1e3 * seconds,
                "ms_all": [1e3 * t for t in times[c]],
                f"ratio_to_{base}": median(ratios),
                "ratio_range": [min(ratios), max(ratios)],
                "page_faults": median(faults[c][1:]),  # the first call is the warm-up
                "gflop": flops / 1e9,
                "gflops_per_s": flops / seconds / 1e9,
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--lengths", type=comma_list(positive_int, "lengths"), default=[4096])
    p.add_argument(
        "--chunks", type=comma_list(positive_int, "chunk lengths"), default=[32, 64, 128]
    )
    p.add_argument(
        "--modes",
        type=comma_list(str, "modes", choices=("fwd", "fwdbwd")),
        default=["fwd", "fwdbwd"],
    )
    p.add_argument("--threads", type=positive_int, default=1)
    p.add_argument("--rounds", type=positive_int, default=12)
    p.add_argument("--wall", action="store_true", help="wall-clock time instead of CPU time")
    p.add_argument("--out", help="JSON file for the rows and the command line")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    rows = []
    for mode in args.modes:
        for T in args.lengths:
            case = Case(impl="ours", mode=mode, T=T, head_dim=64, n_features=256)
            for row in compare(case, args.chunks, args.rounds, cpu=not args.wall):
                rows.append(row)
                shown = {k: v for k, v in row.items() if k != "ms_all"}
                print(json.dumps(shown), flush=True)
    if args.out:
        record = {
            "command": " ".join([os.path.basename(sys.argv[0]), *(argv or sys.argv[1:])]),
            "clock": "wall" if args.wall else "process CPU",
            "threads": args.threads,
            "load_average_before": load_before,
            "environment": environment(),
            "rows": rows,
        }
        atomic_write(args.out, json_text(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
