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

With ``--whole-pass`` it times instead the whole forward and backward pass of
:class:`~kernelapprox.attention.chunked.ChunkProducts` (``Bh`` = 8 slices) with values of
width 64 and 65, in alternating rounds of the same process, in CPU time: the most that
keeping the normaliser out of the value matrix could save on those products, before the
matrix-vector passes it would need instead.

Usage::

    python benchmarks/attention_product_widths.py [--repeats 30] [--format json] [--whole-pass]
"""

from __future__ import annotations

import argparse
import json
from statistics import median

import torch

from kernelapprox.bench.timing import interleaved_times, median_time

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


def whole_pass(chunks: int, chunk: int, features: int, rounds: int, slices: int = 8) -> dict:
    """Median CPU seconds of ChunkProducts forward + backward at value widths 64 and 65, in
    rounds alternating which width goes first (:func:`interleaved_times`)."""
    from kernelapprox.attention.chunked import ChunkProducts

    gen = torch.Generator().manual_seed(0)
    future = torch.ones(chunk, chunk, dtype=torch.bool).triu(1)

    def case(width: int):
        shape = (slices, chunks, chunk)
        q, k = (torch.rand(*shape, features, generator=gen).requires_grad_() for _ in "qk")
        v = torch.randn(*shape, width, generator=gen).requires_grad_()
        weight = torch.rand(*shape, chunk, generator=gen).masked_fill_(future, 0.0)
        scales = [torch.rand(*shape, generator=gen) for _ in "re"]
        decay = torch.rand(slices, chunks, generator=gen)
        s0 = torch.zeros(slices, features, width)

        def step() -> None:
            out, state = ChunkProducts.apply(q, k, v, s0, weight, future, *scales, decay)
            (out.sum() + state.sum()).backward()
            q.grad = k.grad = v.grad = None

        return step

    cpu = interleaved_times({"64": case(64), "65": case(65)}, rounds, cpu=True)
    med = {int(w): median(times) for w, times in cpu.items()}
    return {
        "cpu_s": med,
        "ratio_65_over_64": med[65] / med[64],
        "rounds": rounds,
        "threads": torch.get_num_threads(),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--chunks", type=int, default=64, help="chunks per slice (T / C)")
    p.add_argument("--chunk", type=int, default=64, help="chunk length C")
    p.add_argument("--features", type=int, default=256, help="features F")
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument("--whole-pass", action="store_true", help="ChunkProducts fwd+bwd, 64 vs 65")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.whole_pass:
        result = whole_pass(args.chunks, args.chunk, args.features, max(2, args.repeats // 3))
        if args.format == "json":
            print(json.dumps(result, indent=2))
        else:
            cpu = result["cpu_s"]
            print(
                f"ChunkProducts forward + backward, median CPU s: width 64 {cpu[64]:.4f}, "
                f"width 65 {cpu[65]:.4f}, ratio {result['ratio_65_over_64']:.3f}"
            )
        return
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
