"""Any-Precision nested quantization (Park, Hyun, Cho, Sim & Lee, ICML 2024).

One n-bit memory footprint holds every width from the seed width to n: the k-bit code of a
weight is the first k bit-planes of its n-bit code.

* :mod:`.kmeans` -- sensitivity-weighted 1-D k-means per row (Lloyd, vectorized across rows),
  the exact optimum by dynamic programming, and the cluster split of the upscaling step.
"""

from kernelapprox.compression.quantization.kmeans import (
    lloyd_kmeans,
    optimal_kmeans,
    run_bounds,
    split_runs,
    weighted_sse,
)

__all__ = [
    "lloyd_kmeans",
    "optimal_kmeans",
    "run_bounds",
    "split_runs",
    "weighted_sse",
]
