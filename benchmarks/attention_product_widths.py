"""Opt-in benchmark: the chunk products of causal feature attention at several value widths.

:class:`kernelapprox.attention.chunked.ChunkProducts` runs its products as batched matrix
products over the chunks of one (batch, head) slice, at shapes fixed by the chunk length
``C``, the number of features ``F`` and the value width ``D_v + 1`` (the values carry a
column of ones for the normaliser, so ``d = 64`` gives 65 columns). This script times the
three shapes of those products, one thread, in the slice layout of a T = 4096 run (``N`` =
64 chunks per batch):

* ``state update``: ``K_n^T V_n``, ``(N, F, C) @ (N, C, D_v + 1)`` (``K`` stored as
  ``(N, C, F)``, read transposed, as the code does);
* ``state read``: ``Q_n P_n``, ``(N, C, F) @ (N, F, D_v + 1)``;
* ``state-gradient term``: ``dQ_n += dO_n P_n^T``, ``(N, C, D_v + 1) @ (N, D_v + 1, F)``
  accumulated into an existing output,

each into a preallocated output (the product's arithmetic, with its operands in cache after
the warm-up), at the widths 64, 65, 72 and 80, against a plain ``(B H T, d) @ (d, F)``
projection matmul of the same run. It measures what the value width costs, not the
attention step: inside a step the operands come from memory and a fresh output block is
page-faulted in (see ``docs/results/benchmarks.md``).

Usage::

    python benchmarks/attention_product_widths.py [--repeats 30] [--format json]
"""

from __future__ import annotations

import argparse
import json

import torch

from kernelapprox.bench.timing import median_time

WIDTHS = (64, 65, 72, 80)


def _width_times(
    gen: torch.Generator, width: int, chunks: int, chunk: int, features: int, repeats: int
) -> dict[str, float]:
    """Median seconds of the three products at one value width."""
    K = torch.randn(chunks, chunk, features, generator=gen)
    V = torch.randn(chunks, chunk, width, generator=gen)
    P = torch.randn(chunks, features, width, generator=gen)
    dO = torch.randn(chunks, chunk, width, generator=gen)
    state = torch.empty(chunks, features, width)
    read = torch.empty(chunks, chunk, width)
    dQ = torch.zeros(chunks, chunk, features)
    return {
        "state update": median_time(lambda: torch.bmm(K.transpose(1, 2), V, out=state), repeats),
        "state read": median_time(lambda: torch.bmm(K, P, out=read), repeats),
        "state-gradient term": median_time(lambda: dQ.baddbmm_(dO, P.transpose(1, 2)), repeats),
    }


def measure(chunks: int, chunk: int, features: int, repeats: int) -> dict:
    gen = torch.Generator().manual_seed(0)
    rows = []
    for width in WIDTHS:
        flop = 2.0 * chunks * chunk * features * width
        for name, seconds in _width_times(gen, width, chunks, chunk, features, repeats).items():
            rows.append(
                {
                    "product": name,
                    "width": width,
                    "ms": seconds * 1e3,
                    "gflops": flop / seconds / 1e9,
                }
            )
    a = torch.randn(8 * chunks * chunk, 64, generator=gen)
    b = torch.randn(64, features, generator=gen)
    out = torch.empty(a.shape[0], features)
    seconds = median_time(lambda: torch.matmul(a, b, out=out), max(3, repeats // 3))
    peer = 2.0 * a.shape[0] * 64 * features / seconds / 1e9
    return {"rows": rows, "matmul_gflops": peer, "threads": torch.get_num_threads()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--chunks", type=int, default=64, help="chunks per slice (T / C)")
    p.add_argument("--chunk", type=int, default=64, help="chunk length C")
    p.add_argument("--features", type=int, default=256, help="features F")
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--format", choices=("text", "json"), default="text")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    result = measure(args.chunks, args.chunk, args.features, args.repeats)
    if args.format == "json":
        print(json.dumps(result, indent=2))
        return
    peer = result["matmul_gflops"]
    print(f"plain projection matmul into a preallocated output: {peer:.0f} GFLOP/s")
    print(f"{'product':<22}{'width':>6}{'ms':>8}{'GFLOP/s':>9}")
    for r in result["rows"]:
        print(f"{r['product']:<22}{r['width']:>6}{r['ms']:>8.2f}{r['gflops']:>9.0f}")


if __name__ == "__main__":
    main()
