"""Accuracy of the structured samplers against ORF on a Gram and an attention protocol.

Gram: 500 digits (the study's seeded subsample, d = 64), Gaussian kernel with the median
length scale, ``sincos`` map, 1024 frequencies, relative Frobenius error. Attention: 256
``qk_unit`` rows (d = 64), softmax kernel ``exp(q.k / sqrt(d))``, ``positive`` map,
m = 4d = 256 frequencies, error of the row-normalized (attention) matrix. Each sampler gets
10 replications (seeds 1000..1009); the table shows the mean error, its standard error and
the ratio to ORF's mean. Takes about 2 minutes on 2 cores::

    python benchmarks/sampler_moonshot.py
"""

from __future__ import annotations

import warnings

import numpy as np

from kernelapprox import features, kernels
from kernelapprox.estimators.gram import gram_error
from kernelapprox.estimators.replications import mean_and_se
from kernelapprox.kernels import median_pairwise_distance
from kernelapprox.study.data import load_data

REPLICATIONS = 10
GRAM_SAMPLERS = ["orthogonal", "spherical:directions=orthogonal", "simplex", "mub"]
ATTENTION_SAMPLERS = [
    "orthogonal",
    "simplex",
    "mub:antithetic=true",
    "mub:antithetic=true,radii=frame",
]


def errors(map_name, kernel, X, m, sampler, metric):
    K = kernel(X)
    return np.array(
        [
            gram_error(
                features.make(map_name, kernel, m, dim=X.shape[1], sampler=sampler, seed=s).gram(X),
                K,
                metric,
            )
            for s in range(1000, 1000 + REPLICATIONS)
        ]
    )


def table(title, rows):
    print(title)
    base = rows["orthogonal"].mean()
    for name, e in rows.items():
        mean, se = mean_and_se(e)
        print(f"  {name:34s} {mean:.5f} +- {se:.5f}   x ORF {mean / base:.3f}")


def main() -> None:
    warnings.simplefilter("ignore")
    X = load_data("digits", n_points=500, seed=0)
    k = kernels.Gaussian(median_pairwise_distance(X))
    table(
        "Gram, digits n=500 d=64, sincos m=1024, rel_fro",
        {s: errors("sincos", k, X, 1024, s, "rel_fro") for s in GRAM_SAMPLERS},
    )
    Q = load_data("qk_unit", n_points=256, dim=64, seed=0)
    k = kernels.Softmax(scale=1 / 8)
    table(
        "Attention, qk_unit n=256 d=64, positive m=256, rownorm_fro",
        {s: errors("positive", k, Q, 256, s, "rownorm_fro") for s in ATTENTION_SAMPLERS},
    )


if __name__ == "__main__":
    main()
