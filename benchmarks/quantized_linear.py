"""Opt-in benchmark: the paths of :class:`QuantizedLinear` against fp32 ``torch.nn.Linear``.

At MiniLM's shapes (``out x in`` = 384x384 attention projections, 1536x384 the MLP's first,
384x1536 its second) and 1, 8 and 128 tokens, in one process, interleaved round by round
(the order rotated each round) so that the machine's drift hits every contender alike:

* ``linear``: fp32 ``torch.nn.Linear`` (the peer every ratio is taken against);
* ``cached``: ``backend="dequantize"``, ``cache=True`` (one dense matmul with the kept weight);
* ``dequantize``: ``cache=False``, unpack the planes and dequantize on every call;
* ``lookup``: the table-lookup path (never forms the weight);
* ``auto``: ``cache=False``, ``backend="auto"`` (the layer's own choice).

Each figure is the median over rounds of ``time(path) / time(linear)`` in the same round.
Codes and tables are random (the speed of these paths does not depend on their values).

Usage::

    PYTHONPATH=. python benchmarks/quantized_linear.py --threads 1 [--bits 3 8] [--json FILE]
    PYTHONPATH=. python benchmarks/quantized_linear.py --tokens 1 2 --paths dequantize lookup

Measured 2026-12-01 (2 shared cores, load average 14-16, ``--threads 1``), median per-round
ratio ``time / time(nn.Linear)``; ``--rounds 11``:

========  ====  ======  ======  ==========  ======
shape     bits  tokens  cached  dequantize  lookup
========  ====  ======  ======  ==========  ======
384x384   3     1       1.13    44.2        50.9
384x384   3     8       0.82    33.1        60.0
384x384   3     128     4.34    11.1        211
384x384   8     1       1.15    95.5        94.0
384x384   8     8       1.16    63.8        566
384x384   8     128     1.14    20.2        608
1536x384  3     1       0.99    73.0        102
1536x384  3     8       0.74    29.0        61.6
1536x384  3     128     1.01    9.4         156
1536x384  8     1       4.19    163         206
1536x384  8     8       0.91    65.5        125
1536x384  8     128     0.30    6.7         102
384x1536  3     1       1.08    57.1        94.5
384x1536  3     8       0.99    31.3        71.0
384x1536  3     128     0.30    3.5         47.3
384x1536  8     1       0.44    70.2        67.7
384x1536  8     8       0.36    27.1        47.1
384x1536  8     128     0.89    12.1        227
========  ====  ======  ======  ==========  ======

(the cached path is ``F.linear`` with the kept weight, i.e. nn.Linear's own work: its 0.3-4.2
spread is this machine's noise.) Paired directly (``--tokens 1 2 --paths dequantize lookup
--rounds 21``), median ``time(lookup) / time(dequantize)`` over the six shape x bits cases:
0.90-1.11 at 1 token, 1.11-1.41 at 2 tokens. Hence the layer's rule: without a cache, lookup
at 1 token (as fast, within the noise, and no dense weight in memory), dequantize from 2
tokens; with a cache, always the kept weight. Without a cache both paths are 40-170x slower
than nn.Linear at 1 token, dominated by unpacking the planes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np
import torch
from torch import nn

from kernelapprox.bench.timing import interleaved_times
from kernelapprox.compression.quantization import NestedQuantization, QuantizedLinear

SHAPES = ((384, 384), (1536, 384), (384, 1536))
TOKENS = (1, 8, 128)
PATHS = ("linear", "cached", "dequantize", "lookup", "auto")


def _layer(out: int, cols: int, bits: int, seed: int) -> QuantizedLinear:
    g = torch.Generator().manual_seed(seed)
    codes = torch.randint(0, 2**bits, (out, cols), generator=g).to(torch.uint8)
    tables = {bits: torch.randn(out, 2**bits, generator=g, dtype=torch.float64)}
    q = NestedQuantization(codes=codes, tables=tables, seed_bits=bits, max_bits=bits)
    return QuantizedLinear(q, torch.randn(out, generator=g), cache=False)


def _contenders(out: int, cols: int, bits: int, x: torch.Tensor) -> dict:
    linear = nn.Linear(cols, out)
    cached = _layer(out, cols, bits, 0)
    cached.cache, cached.backend = True, "dequantize"
    dequantize = _layer(out, cols, bits, 0)
    dequantize.backend = "dequantize"
    lookup = _layer(out, cols, bits, 0)
    lookup.backend = "lookup"
    auto = _layer(out, cols, bits, 0)
    return {
        "linear": lambda: linear(x),
        "cached": lambda: cached(x),
        "dequantize": lambda: dequantize(x),
        "lookup": lambda: lookup(x),
        "auto": lambda: auto(x),
    }, auto


def paired_ratios(fns: dict, rounds: int, min_seconds: float = 2e-3) -> dict:
    """Median seconds per call of each ``fns[name]`` and median per-round ratio to ``linear``."""
    inner = {}
    for name, fn in fns.items():  # a warm-up call, then one timed call sets the count
        once = interleaved_times({name: fn}, 1)[name][0]
        inner[name] = max(1, int(min_seconds / max(once, 1e-7)))
    times = interleaved_times(fns, rounds, calls=inner, warm_up=False)
    base = np.array(times["linear"])
    result = {
        name: {
            "seconds": float(np.median(times[name])),
            "ratio_to_linear": float(np.median(np.array(times[name]) / base)),
            "ratio_min": float(np.min(np.array(times[name]) / base)),
            "ratio_max": float(np.max(np.array(times[name]) / base)),
        }
        for name in fns
    }
    if "lookup" in times and "dequantize" in times:
        pair = np.array(times["lookup"]) / np.array(times["dequantize"])
        result["lookup_over_dequantize"] = {
            "median": float(np.median(pair)),
            "min": float(pair.min()),
            "max": float(pair.max()),
        }
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bits", type=int, nargs="+", default=[3, 8])
    parser.add_argument("--tokens", type=int, nargs="+", default=list(TOKENS))
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--paths", nargs="+", default=list(PATHS[1:]), choices=PATHS[1:])
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = []
    paths = [p for p in PATHS[1:] if p in args.paths]
    header = f"{'shape':>9} {'bits':>4} {'tok':>4} " + " ".join(f"{p:>10}" for p in paths)
    print(
        f"time / time(nn.Linear), median of {args.rounds} paired rounds, "
        f"{args.threads} thread(s), load average {os.getloadavg()[0]:.1f}"
    )
    print(header + f" {'linear_us':>9} {'auto':>10} {'lk/dq':>6}")
    for out, cols in SHAPES:
        for bits in args.bits:
            for tokens in args.tokens:
                x = torch.randn(tokens, cols, generator=torch.Generator().manual_seed(tokens))
                fns, auto = _contenders(out, cols, bits, x)
                fns = {p: f for p, f in fns.items() if p == "linear" or p in paths}
                with torch.no_grad():
                    res = paired_ratios(fns, args.rounds)
                pair = res.get("lookup_over_dequantize", {}).get("median", float("nan"))
                row = {
                    "shape": [out, cols],
                    "bits": bits,
                    "tokens": tokens,
                    "auto_path": auto.path(tokens),
                    **res,
                }
                rows.append(row)
                print(
                    f"{out:>4}x{cols:<4} {bits:>4} {tokens:>4} "
                    + " ".join(f"{res[p]['ratio_to_linear']:>10.2f}" for p in paths)
                    + f" {res['linear']['seconds'] * 1e6:>9.1f} {row['auto_path']:>10}"
                    f" {pair:>6.2f}",
                    flush=True,
                )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"rows": rows, "threads": args.threads, "rounds": args.rounds}, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
