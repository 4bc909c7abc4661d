r"""Feature attention against exact softmax attention, by number of features.

Causal attention of one head ($T = 256$ tokens, head dimension $d = 16$) computed exactly with
``torch.nn.functional.scaled_dot_product_attention`` and with positive random features
(``feature_attention``, FAVOR+) from Monte Carlo and orthogonal frequencies, for $m = 16$ to
$1024$ features; the relative RMS error of the output, median over 5 seeds. Queries and keys are
$\mathcal{N}(0, \sigma^2 I)$ with $\sigma = 0.5$ and $\sigma = 1$: the error of positive features
grows fast with the norms of $q$ and $k$ (see the softmax notebook). At $\sigma = 0.5$ it falls
steadily with $m$; at $\sigma = 1$ it stays large even with $m = 1024$ features, and orthogonal
frequencies change little.
"""

from __future__ import annotations

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F

from kernelapprox import features, kernels
from kernelapprox.attention import feature_attention
from kernelapprox.study.report import sampler_style

T, D = 256, 16
SIZES = (16, 64, 256, 1024)
SEEDS = range(5)
SIGMAS = (0.5, 1.0)

generator = torch.Generator().manual_seed(0)
v = torch.randn(1, T, 1, D, generator=generator, dtype=torch.float64)
shape = (1, T, 1, D)  # layout (batch, time, heads, head dimension)
noise_q = torch.randn(shape, generator=generator, dtype=torch.float64)
noise_k = torch.randn(shape, generator=generator, dtype=torch.float64)


def relative_error(q: torch.Tensor, k: torch.Tensor, exact: torch.Tensor, fm) -> float:
    """||o_hat - o|| / ||o|| of feature attention with the map ``fm``."""
    out = feature_attention(q, k, v, fm, causal=True)
    return float(torch.linalg.norm(out - exact) / torch.linalg.norm(exact))


errors: dict[tuple[float, str], list[float]] = {}
for sigma in SIGMAS:
    q, k = sigma * noise_q, sigma * noise_k
    heads_first = (x.transpose(1, 2) for x in (q, k, v))  # SDPA takes (batch, heads, time, d)
    exact = F.scaled_dot_product_attention(*heads_first, is_causal=True).transpose(1, 2)
    for sampler in ("mc", "orthogonal"):
        # feature_attention applies attention's scale 1/sqrt(d) itself: the map is made for
        # the kernel exp(u.v) (scale 1)
        maps = {
            m: [
                features.make("positive", kernels.Softmax(), m, dim=D, sampler=sampler, seed=s)
                for s in SEEDS
            ]
            for m in SIZES
        }
        errors[sigma, sampler] = [
            float(np.median([relative_error(q, k, exact, fm) for fm in maps[m]])) for m in SIZES
        ]

print("relative RMS error of the output, median over 5 seeds")
print("sigma  sampler     " + "".join(f"{'m=' + str(m):>10}" for m in SIZES))
for (sigma, sampler), row in errors.items():
    print(f"{sigma:<6} {sampler:<11} " + "".join(f"{e:>10.4f}" for e in row))

fig, ax = plt.subplots(figsize=(6, 4.2))
for (sigma, sampler), row in errors.items():
    colour, marker = sampler_style(sampler)
    style = "-" if sigma == 1.0 else "--"
    label = rf"{sampler}, $\sigma = {sigma:g}$"
    ax.loglog(SIZES, row, color=colour, marker=marker, ls=style, label=label)
guide = errors[0.5, "mc"][0] * (np.array(SIZES) / SIZES[0]) ** -0.5
ax.loglog(SIZES, guide, color="0.6", ls=":", label=r"$\propto m^{-1/2}$")
ax.set_xlabel("positive features $m$")
ax.set_ylabel("relative RMS error of the output")
ax.set_title(f"causal softmax attention, $T = {T}$, $d = {D}$, 5 seeds")
ax.set_xticks(SIZES, [str(m) for m in SIZES], minor=False)
ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
ax.legend(fontsize=8)
fig.tight_layout()
fig.savefig("attention_error_by_features.png", dpi=110)
