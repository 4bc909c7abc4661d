"""DiJiang's cost claim, measured: the DCT map through a fast transform vs a dense product.

The paper says the DCT "reduces O(m) to O(log m)" per feature: computing ``C x`` through an
FFT costs ``O(d log d)`` per row instead of ``O(d^2)`` for a dense ``(d, d)`` product. This
times both paths of ``kernelapprox.features.DCT`` (m = d, float32, n rows) for d = 64 to
4096 in the same run and reports the ratio and the crossover dimension (the smallest d from
which the fast path wins).

    python benchmarks/dct_transform.py [--n 2048] [--repeats 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import json

import torch

from kernelapprox import features, kernels
from kernelapprox.bench.timing import median_time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2048)
    parser.add_argument("--dims", default="64,128,256,512,1024,2048,4096")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json")
    args = parser.parse_args()
    rows = []
    for d in (int(v) for v in args.dims.split(",")):
        X = torch.randn(args.n, d) / d**0.5
        times = {}
        for transform in ("fast", "dense"):
            fm = features.make("dct", kernels.Softmax(), d, dim=d, seed=0, transform=transform)
            times[transform] = median_time(lambda fm=fm, X=X: fm(X), args.repeats)
        rows.append({"dim": d, "fast_s": times["fast"], "dense_s": times["dense"],
                     "dense_over_fast": times["dense"] / times["fast"]})  # fmt: skip
        print(f"d={d:5d}  fast {times['fast'] * 1e3:9.2f} ms  dense {times['dense'] * 1e3:9.2f} ms"
              f"  dense/fast {times['dense'] / times['fast']:6.2f}")  # fmt: skip
    # the smallest measured d from which the fast transform wins at every larger d
    crossover = None
    for r in reversed(rows):
        if r["dense_over_fast"] <= 1:
            break
        crossover = r["dim"]
    print(f"crossover: fast transform wins from d = {crossover}" if crossover else
          "crossover: the dense product wins at every measured d")  # fmt: skip
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"rows": rows, "crossover_dim": crossover}, fh, indent=2)


if __name__ == "__main__":
    main()
