"""Feature-map transform throughput against scikit-learn's RBFSampler (opt-in benchmark).

Both sides compute ``n = 20000`` rows of ``d = 64`` inputs into 1024 output features, in the
same process, float32 and float64; the report is the ratio of median wall times (>1 means
kernelapprox is faster). ``cos_offset`` is the same map as ``RBFSampler``; ``sincos`` uses
512 frequencies for the same output width.

    python benchmarks/features_throughput.py [--repeats 7] [--json out.json]

Importing kernelapprox before torch turns on torch's transparent huge pages for large CPU
tensors (``THP_MEM_ALLOC_ENABLE=1``, as numpy does for large arrays); this script imports
torch first, so run it with ``THP_MEM_ALLOC_ENABLE=1`` to measure that configuration.
"""

from __future__ import annotations

import argparse
import json
import os
import platform

import numpy as np
import torch
from sklearn.kernel_approximation import RBFSampler

from kernelapprox import features, kernels
from kernelapprox.bench.timing import median_time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    gamma = 0.5 / args.dim
    kernel = kernels.Gaussian(length_scale=1 / np.sqrt(2 * gamma))
    rows = []
    for dtype in (np.float32, np.float64):
        X = rng.normal(size=(args.n, args.dim)).astype(dtype)
        ref = RBFSampler(gamma=gamma, n_components=args.width, random_state=0).fit(X)
        t_ref = median_time(lambda X=X, ref=ref: ref.transform(X), args.repeats)
        cos_offset = features.CosOffset.from_frequencies(
            kernel, ref.random_weights_.T, offsets=ref.random_offset_
        )
        sincos = features.make("sincos", kernel, args.width // 2, dim=args.dim, seed=0)
        Xt = torch.from_numpy(X)
        for name, fm in (("cos_offset", cos_offset), ("sincos", sincos)):
            t_ours = median_time(lambda fm=fm, Xt=Xt: fm(Xt), args.repeats)
            rows.append({"dtype": np.dtype(dtype).name, "map": name, "sklearn_s": t_ref,
                         "kernelapprox_s": t_ours, "speedup": t_ref / t_ours})  # fmt: skip
    thp = os.environ.get("THP_MEM_ALLOC_ENABLE", "unset")
    print(f"n={args.n} d={args.dim} width={args.width} torch threads={torch.get_num_threads()} "
          f"THP_MEM_ALLOC_ENABLE={thp} "
          f"({platform.processor() or platform.machine()})")  # fmt: skip
    print(f"{'dtype':8s} {'map':11s} {'sklearn [s]':>12s} {'ours [s]':>10s} {'speedup':>8s}")
    for r in rows:
        print(f"{r['dtype']:8s} {r['map']:11s} {r['sklearn_s']:12.4f} {r['kernelapprox_s']:10.4f} "
              f"{r['speedup']:7.2f}x")  # fmt: skip
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=2)


if __name__ == "__main__":
    main()
