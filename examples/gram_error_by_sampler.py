"""Gram-matrix error of random Fourier features, by sampler.

The relative Frobenius error of the Gram matrix of a Gaussian kernel, estimated with ``sincos``
features whose frequencies come from plain Monte Carlo, orthogonal blocks, Sobol' and Halton
points, on 300 standard-normal points in $d = 8$, for $m = 16$ to $512$ frequencies; the mean
over 5 seeds, with one colour and marker per sampler (the same as in the study figures). A small
version of ``kernelapprox study``, which adds intervals, rates and the MC comparison.
"""

from __future__ import annotations

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from kernelapprox import features, kernels
from kernelapprox.study.report import sampler_style

SAMPLERS = ("mc", "orthogonal", "sobol", "halton")
SIZES = (16, 32, 64, 128, 256, 512)
SEEDS = range(5)

X = np.random.default_rng(0).normal(size=(300, 8))
kernel = kernels.Gaussian(length_scale=3.0)
exact = kernel(X)


def relative_error(sampler: str, m: int, seed: int) -> float:
    """||K_hat - K||_F / ||K||_F for one draw of m frequencies."""
    phi = features.make("sincos", kernel, m, dim=8, sampler=sampler, seed=seed)
    return np.linalg.norm(phi.gram(X) - exact) / np.linalg.norm(exact)


errors = {
    sampler: [np.mean([relative_error(sampler, m, s) for s in SEEDS]) for m in SIZES]
    for sampler in SAMPLERS
}

print("mean relative Frobenius error over 5 seeds")
print("m       " + "".join(f"{s:>12}" for s in SAMPLERS))
for i, m in enumerate(SIZES):
    print(f"{m:<8}" + "".join(f"{errors[s][i]:>12.4f}" for s in SAMPLERS))

fig, ax = plt.subplots(figsize=(6, 4.2))
for sampler in SAMPLERS:
    colour, marker = sampler_style(sampler)
    ax.loglog(SIZES, errors[sampler], color=colour, marker=marker, label=sampler)
guide = errors["mc"][0] * (np.array(SIZES) / SIZES[0]) ** -0.5
ax.loglog(SIZES, guide, color="0.6", ls=":", label=r"$\propto m^{-1/2}$")
ax.set_xlabel("frequencies $m$")
ax.set_ylabel("relative Frobenius error")
ax.set_title(r"Gaussian kernel, 300 $\mathcal{N}(0, I)$ points, $d = 8$, 5 seeds")
ax.set_xticks(SIZES, [str(m) for m in SIZES], minor=False)
ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
ax.legend()
fig.tight_layout()
fig.savefig("gram_error_by_sampler.png", dpi=110)
