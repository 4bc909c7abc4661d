r"""EST: rescaled random heads and MLP neurons give an unbiased estimate of each sublayer.

Statement
---------
Sample a set $I_H$ of $k_H = \max(1, \lfloor N_H p_H + \tfrac12 \rfloor)$ heads uniformly
without replacement and a set $I_M$ of $k_M$ MLP neurons likewise, and rescale by the exact
ratios $c_H = N_H / k_H$, $c_M = N_M / k_M$. Then, for a fixed input $X$ of the sublayer,
$$\mathbb{E}\Big[c_H \sum_{i \in I_H} \mathrm{softmax}\Big(\tfrac{X W_Q^i (X W_K^i)^\top}
{\sqrt{d_k}} + M\Big) X W_V^i W_O^i\Big] + b_O = \mathrm{MHA}(X),\qquad
\mathbb{E}\Big[c_M\,\sigma(X W_1[:, I_M] + b_1[I_M])\, W_2[I_M, :]\Big] + b_2 = \mathrm{MLP}(X),$$
($M$ the causal mask) because every head (neuron) is included with probability exactly
$k_H / N_H$ ($k_M / N_M$); when $N p$ is not an integer this is not $p$, and $1/p$ would be
biased. At $p = 1$ the estimate is the full sublayer.

Source
------
Li, Chen, Ma, Wu, Zhu & Yu, "Evolving subnetwork training for large language models" (EST),
ICML 2024 (arXiv 2406.06962), Section 3 (sampling of heads and MLP neurons with 1/p scaling).

Method
------
Experiment in float64 on the package code: the attention and MLP sublayers of a block of
`kernelapprox.lm.Decoder`, sliced by `LayerSlice`, and the sizes and scales drawn by
`kernelapprox.dynamics.est.SubnetworkSampler`. The expectation is computed *exactly* by
averaging over all $\binom{N}{k}$ head or neuron subsets (rates 1/2 and 1/4, and 0.3, where
$N p$ is not an integer); it must equal the full sublayer to $10^{-12}$ relative, while the
$1/p$ factor must show its predicted bias $(k/N)/p - 1$. The sampler's own draws (steps
$0..n-1$) must give a Monte Carlo mean with every entry within 5 standard errors of the full
MHA and MLP, and at $p = 1$ the sampler's subnetwork must reproduce the block exactly.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from kernelapprox.estimators.replications import mean_and_se

from ._core import Verdict, package_module
from ._numerical import numerical_claim
from ._torch import single_threaded

SEED = 20240612
TOKENS, D_MODEL, HEADS, NEURONS = 6, 16, 4, 8


def run(*, thorough: bool = False, seed: int = SEED) -> Verdict:
    import torch

    est = package_module("kernelapprox.dynamics.est")
    with torch.no_grad():
        return _experiment(est, torch, thorough, seed)


@single_threaded  # tiny tensors: intra-op threads only add contention
def _experiment(est, torch, thorough: bool, seed: int) -> Verdict:
    from kernelapprox.lm import Decoder, DecoderConfig, LayerSlice

    config = DecoderConfig(
        context=TOKENS, n_layers=1, d_model=D_MODEL, n_heads=HEADS, d_mlp=NEURONS
    )
    model = Decoder(config, seed=seed, dtype=torch.float64)
    gen = torch.Generator().manual_seed(seed)
    for p in model.parameters():  # O(1) weights and biases: clearly non-linear sublayers
        p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype) / math.sqrt(p.shape[-1]))
    block = model.blocks[0]
    x = torch.randn(1, TOKENS, D_MODEL, generator=gen, dtype=torch.float64)
    sublayers = {"heads": (block.attn, HEADS, 0), "neurons": (block.mlp, NEURONS, 1)}
    full = {kind: layer(x) for kind, (layer, _, _) in sublayers.items()}
    exact_gap, naive_bias = {}, {}
    for kind, (layer, n_units, axis) in sublayers.items():
        for rate in (0.5, 0.25, 0.3):
            rates = [1.0, 1.0, 1.0]
            rates[axis] = rate
            part = est.SubnetworkSampler(1, HEADS, NEURONS, seed=seed).sample(0, rates).layers[0]
            kept = part.heads if kind == "heads" else part.neurons
            scale = part.head_scale if kind == "heads" else part.neuron_scale
            subsets = [torch.tensor(s) for s in itertools.combinations(range(n_units), len(kept))]
            mean = sum(layer(x, s, scale) for s in subsets) / len(subsets)
            gap = float((mean - full[kind]).norm() / full[kind].norm())
            exact_gap[f"{kind} p={rate} (k={len(kept)} of {n_units})"] = gap
            # the 1/p factor: sum over kept units scaled by 1/p instead of N/k
            bias = layer.o.bias if kind == "heads" else layer.proj.bias
            units = mean - bias
            naive = (units / scale / rate + bias - full[kind]).norm() / (full[kind] - bias).norm()
            predicted = abs(len(kept) / n_units / rate - 1)
            naive_bias[f"{kind} p={rate}"] = (float(naive), predicted)
    samples = 10000 if thorough else 2000
    sampler = est.SubnetworkSampler(1, HEADS, NEURONS, seed=seed)
    z = {}
    for kind, (layer, _, axis) in sublayers.items():
        rates = [1.0, 1.0, 1.0]
        rates[axis] = 0.5
        draws = []
        for step in range(samples):
            part = sampler.sample(step, rates).layers[0]
            if kind == "heads":
                draws.append(layer(x, part.heads, part.head_scale))
            else:
                draws.append(layer(x, part.neurons, part.neuron_scale))
        mean, se = mean_and_se(torch.stack(draws).numpy(), axis=0)
        z[kind] = float(np.max(np.abs(mean - full[kind].numpy()) / se))
    at_one = sampler.sample(0, (1.0, 1.0, 1.0)).layers[0]
    every = LayerSlice(heads=torch.arange(HEADS), neurons=torch.arange(NEURONS))
    p1_exact = at_one == LayerSlice() and torch.equal(block(x, at_one), block(x))
    p1_exact = p1_exact and torch.equal(block(x, every), block(x))
    naive_ok = all(abs(got - want) <= 1e-9 * max(1.0, want) for got, want in naive_bias.values())
    ok = max(exact_gap.values()) <= 1e-12 and max(z.values()) <= 5 and p1_exact and naive_ok
    summary = (
        f"exact subset averages equal the full MHA/MLP to {max(exact_gap.values()):.1e} "
        f"(p = 1/2, 1/4, 0.3; N/k scaling); 1/p instead shows its predicted bias "
        f"(heads p=0.3: {naive_bias['heads p=0.3'][0]:.3f}); Monte Carlo mean of {samples} "
        f"sampler draws within {max(z.values()):.1f} SE (limit 5); p=1 exact: {p1_exact}"
    )
    return Verdict.decide(
        ok,
        summary,
        exact_relative_gaps=exact_gap,
        one_over_p_bias_measured_vs_predicted=naive_bias,
        monte_carlo_max_z=z,
        monte_carlo_samples=samples,
        p1_exact=p1_exact,
    )


CLAIM = numerical_claim(
    run,
    name="est_unbiased",
    title="EST: N/k-rescaled random heads and neurons are unbiased for each sublayer",
    source="Li et al. (ICML 2024), EST, Sec. 3",
    family="dynamics",
    seed=SEED,
    tolerance="1e-12 relative for the exact subset average; 5 SE for the Monte Carlo mean",
    requires=("kernelapprox.dynamics.est",),
    verifies=(
        "kernelapprox.dynamics.est.SubnetworkSampler.sample",
        "kernelapprox.dynamics.est.kept_count",
        "kernelapprox.lm.model.CausalSelfAttention.forward",
        "kernelapprox.lm.model.MLP.forward",
        "kernelapprox.lm.model.Block.forward",
    ),
)
