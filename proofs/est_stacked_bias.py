r"""EST: a stack of rescaled sampled blocks is not an unbiased estimate of the full network.

Statement
---------
Claim tested (the natural reading of EST's "the 1/p scaling keeps the expected output", which
holds for each sublayer, claim `est_unbiased`): for a pre-LN decoder whose blocks each draw
their own MLP neurons $I_M^{(\ell)}$ at rate $p_M$ with scale $N_M / k_M$,
$$\mathbb{E}_{I_M^{(1)}, \dots, I_M^{(L)}}\big[f_{\mathrm{sub}}(X)\big] \overset{?}{=} f(X)$$
for the residual stream $f$ after the last block. Refuted for $L \ge 2$: block $\ell + 1$ is
non-linear (layer norm, softmax, GELU) in the sampled output of block $\ell$, so
$\mathbb{E}[g(Y)] \ne g(\mathbb{E}[Y])$. For $L = 1$ the identity holds (control). Layer
sampling is biased too, with either `layer_scale`: `"inverse"` trades a smaller bias for a
larger spread than `"none"`.

Source
------
Li et al. (ICML 2024, arXiv 2406.06962), Sec. 3 and its "training dynamics" argument that the
loss does not jump when the subnetwork grows; `shared/reference/model_compression.md` §1
(numpy toy: 10 % end-to-end bias at $p_M = 0.5$ against a 1.1 % standard error).

Method
------
Experiment in float64 on the package code (`kernelapprox.lm.Decoder` with weights of scale
$1/\sqrt{\text{fan-in}}$, subnetworks from `kernelapprox.dynamics.est.SubnetworkSampler`).
(1) Exact: with $L = 2$ blocks and $N_M = 8$, $p_M = 1/2$, the mean over all $70^2$ pairs of
neuron sets differs from the full network by far more than round-off ($> 10^{-6}$ relative),
while for $L = 1$ the mean over the 70 sets equals the block to $10^{-12}$. (2) Monte Carlo:
$L = 4$ blocks at $p_M = 1/2$, $n$ sampler draws; the norm of the mean's error is compared with
its standard error $\sqrt{\sum_j \widehat{\mathrm{Var}}_j / n}$ (its size under unbiasedness);
refuted when it is more than 5 times larger. (3) Layer sampling at $p_L = 1/2$ over all
$\binom{6}{3}$ layer sets, both `layer_scale` choices: bias and spread reported.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from kernelapprox.estimators.replications import mean_and_se

from ._core import Verdict, package_module
from ._numerical import numerical_claim
from ._torch import single_threaded

SEED = 20240613
TOKENS, D_MODEL, HEADS, NEURONS = 6, 16, 4, 8


def _model(torch, n_layers: int, seed: int):
    from kernelapprox.lm import Decoder, DecoderConfig

    config = DecoderConfig(
        context=TOKENS, n_layers=n_layers, d_model=D_MODEL, n_heads=HEADS, d_mlp=NEURONS
    )
    model = Decoder(config, seed=seed, dtype=torch.float64)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".ln" in name or name.startswith("ln_"):
                continue
            p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype) / math.sqrt(p.shape[-1]))
    x = torch.randn(1, TOKENS, D_MODEL, generator=gen, dtype=torch.float64)
    return model, x


def run(*, thorough: bool = False, seed: int = SEED) -> Verdict:
    import torch

    est = package_module("kernelapprox.dynamics.est")
    with torch.no_grad():
        return _experiment(est, torch, thorough, seed)


def _rel(torch, a, b) -> float:
    return float((a - b).norm() / b.norm())


@single_threaded  # tiny tensors: intra-op threads only add contention
def _experiment(est, torch, thorough: bool, seed: int) -> Verdict:
    from kernelapprox.lm import LayerSlice

    subsets = [torch.tensor(s) for s in itertools.combinations(range(NEURONS), NEURONS // 2)]
    scale = NEURONS / (NEURONS // 2)
    # (1) exact enumeration: one block (control) and two stacked blocks
    one, x1 = _model(torch, 1, seed)
    single = sum(one.run_blocks(x1, [LayerSlice(neurons=s, neuron_scale=scale)]) for s in subsets)
    control_gap = _rel(torch, single / len(subsets), one.run_blocks(x1))
    two, x2 = _model(torch, 2, seed + 1)
    b1, b2 = two.blocks
    first = torch.cat([b1(x2, LayerSlice(neurons=s, neuron_scale=scale)) for s in subsets])
    stacked = sum(b2(first, LayerSlice(neurons=s, neuron_scale=scale)).mean(0) for s in subsets)
    exact_bias = _rel(torch, stacked / len(subsets), two.run_blocks(x2)[0])
    # (2) Monte Carlo through the sampler, four blocks
    samples = 8000 if thorough else 1500
    four, x4 = _model(torch, 4, seed + 2)
    sampler = est.SubnetworkSampler(4, HEADS, NEURONS, seed=seed)
    full = four.run_blocks(x4)
    draws = torch.stack(
        [four.run_blocks(x4, sampler.sample(t, (1.0, 0.5, 1.0))) for t in range(samples)]
    )
    mean, se = mean_and_se(draws.numpy(), axis=0)
    error = float(np.linalg.norm(mean - full.numpy()))
    stderr = float(np.linalg.norm(se))  # the SE of the error's norm: sqrt(sum of SE^2)
    mc_ratio = error / stderr
    mc_bias, mc_se = error / float(full.norm()), stderr / float(full.norm())
    # (3) layer sampling at p_L = 1/2 over all 20 layer sets of a 6-block stack
    six, x6 = _model(torch, 6, seed + 3)
    full6 = six.run_blocks(x6)
    layers: dict[str, dict[str, float]] = {}
    for choice, s in (("inverse", 2.0), ("none", 1.0)):
        outs = torch.stack(
            [
                six.run_blocks(
                    x6, [LayerSlice(layer_scale=s) if i in kept else None for i in range(6)]
                )
                for kept in itertools.combinations(range(6), 3)
            ]
        )
        spread = float((outs - outs.mean(0)).pow(2).sum(dim=(1, 2, 3)).mean().sqrt())
        layers[choice] = {
            "relative_bias": _rel(torch, outs.mean(0), full6),
            "relative_spread": spread / float(full6.norm()),
        }
    refuted = exact_bias > 1e-6 and mc_ratio > 5
    control_ok = control_gap <= 1e-12
    summary = (
        f"stacked blocks are biased: exact 2-block bias {100 * exact_bias:.2f} % (1-block "
        f"control {control_gap:.1e}); 4 blocks at p_M=1/2: bias {100 * mc_bias:.2f} % vs "
        f"standard error {100 * mc_se:.2f} % ({mc_ratio:.1f} SE, {samples} draws); layers "
        f"p_L=1/2: inverse bias {100 * layers['inverse']['relative_bias']:.0f} % spread "
        f"{100 * layers['inverse']['relative_spread']:.0f} %, none bias "
        f"{100 * layers['none']['relative_bias']:.0f} % spread "
        f"{100 * layers['none']['relative_spread']:.0f} %"
    )
    status = "refuted" if refuted and control_ok else "fails"
    if status == "fails":
        summary = (
            f"no clear bias or a broken control: exact bias {exact_bias:.2e}, Monte Carlo "
            f"{mc_ratio:.2f} SE, 1-block control {control_gap:.1e}"
        )
    return Verdict(
        status,
        summary,
        {
            "exact_two_block_relative_bias": exact_bias,
            "exact_one_block_control_gap": control_gap,
            "monte_carlo_relative_bias": mc_bias,
            "monte_carlo_relative_stderr": mc_se,
            "monte_carlo_bias_over_stderr": mc_ratio,
            "monte_carlo_samples": samples,
            "layer_sampling": layers,
        },
    )


CLAIM = numerical_claim(
    run,
    name="est_stacked_bias",
    title="EST: stacked sampled blocks are not unbiased for the full network",
    source="Li et al. (ICML 2024), EST, Sec. 3 (1/p scaling, loss continuity)",
    expected="refuted",
    family="dynamics",
    seed=SEED,
    tolerance="exact bias > 1e-6 relative (round-off 1e-15); Monte Carlo error > 5 SE",
    requires=("kernelapprox.dynamics.est",),
    verifies=(
        "kernelapprox.dynamics.est.SubnetworkSampler.sample",
        "kernelapprox.lm.model.Decoder.run_blocks",
        "kernelapprox.lm.model.Block.forward",
    ),
)
