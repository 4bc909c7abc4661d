r"""EST: the training FLOPs per token of a subnetwork are what torch counts in its matmuls.

Statement
---------
A forward and backward pass of a decoder subnetwork with $k_L$ kept layers of $k_H$ heads
(width $w = k_H d_h$) and $k_M$ MLP neurons, at sequence length $T$, costs per token
$$3\,\big[k_L\,(8 d\,w + 4 T\,w + 4 d\,k_M) + 2 d V\big]$$
matrix-product FLOPs (a multiply-add counted as 2; the backward pass of every product costs
twice its forward: one product for the input's gradient, one for the weight's; the full
$T \times T$ score matrix counted, the LM head included): exactly the number of floating-point
operations in the matrix products that torch executes for that subnetwork.

Source
------
Li et al. (ICML 2024, arXiv 2406.06962), EST, FLOPs accounting of the 26.7 % saving;
Kaplan et al. (2020), "Scaling laws for neural language models", Sec. 2.1 (training costs
about 3 forward passes: $C \approx 6 N$ per token).

Method
------
Count, not formula: a `kernelapprox.lm.Decoder` (float64, 3 layers, $d = 16$, 4 heads,
24 neurons, $V = 50$, $T = 8$) runs forward and backward on 2 sequences under
`torch.utils.flop_counter.FlopCounterMode`, with attention on torch's math backend (its
$QK^\top$ and $AV$ products are then ordinary batched matmuls that the counter sees; the fused
CPU kernel is invisible to it). Its total divided by the 16 tokens must equal
`kernelapprox.dynamics.est.subnetwork_flops(config, rates, include_head=True)` exactly (integers)
for the full network and for subnetworks drawn by `SubnetworkSampler` at rates where some
dimension is kept whole and some is not (including $N p$ not an integer). The ratio of the
two is also reported: a backward pass counted once (2 x forward) would give 2/3.
"""

from __future__ import annotations

from fractions import Fraction

from ._core import Verdict, package_module
from ._numerical import Checks, numerical_claim
from ._torch import single_threaded

SEED = 20240614
BATCH = 2
RATES = ((1.0, 1.0, 1.0), (0.5, 0.5, 1.0), (0.4, 0.5, 0.7), (0.25, 1.0, 1 / 3), (1.0, 0.3, 0.5))


def run(*, thorough: bool = False, seed: int = SEED) -> Verdict:
    import torch

    est = package_module("kernelapprox.dynamics.est")
    return _experiment(est, torch, thorough, seed)


@single_threaded  # tiny tensors: intra-op threads only add contention
def _experiment(est, torch, thorough: bool, seed: int) -> Verdict:
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    from kernelapprox.lm import Decoder, DecoderConfig

    config = DecoderConfig(vocab_size=50, context=8, n_layers=3, d_model=16, n_heads=4, d_mlp=24)
    model = Decoder(config, seed=seed, dtype=torch.float64)
    gen = torch.Generator().manual_seed(seed)
    sampler = est.SubnetworkSampler.for_config(config, seed=seed)
    tokens = BATCH * config.context
    checks = Checks()
    rows = {}
    steps = 3 if thorough else 1
    for rates in RATES:
        for step in range(steps):
            idx = torch.randint(0, config.vocab_size, (BATCH, config.context), generator=gen)
            sub = sampler.sample(step, rates)
            model.zero_grad(set_to_none=True)
            with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
                model(idx, sub).square().mean().backward()
            counted = Fraction(counter.get_total_flops(), tokens)
            formula = est.subnetwork_flops(config, rates, include_head=True)
            key = f"p={tuple(round(r, 3) for r in rates)} step {step}"
            rows[key] = {"counted_per_token": str(counted), "subnetwork_flops": formula}
            checks.require(
                counted == formula,
                f"{key}: torch counts {counted} FLOPs per token, subnetwork_flops says "
                f"{formula} (ratio {float(formula / counted):.4f})",
            )
    full = est.subnetwork_flops(config, include_head=True)
    return checks.verdict(
        f"{len(rows)} forward+backward passes (full network and EST subnetworks): torch's "
        f"matmul FLOP count per token equals subnetwork_flops exactly (full network {full})",
        passes=rows,
    )


CLAIM = numerical_claim(
    run,
    name="est_training_flops",
    title="EST: subnetwork training FLOPs equal torch's count of forward + backward",
    source="Li et al. (ICML 2024), EST (FLOPs saving); Kaplan et al. (2020), Sec. 2.1",
    family="dynamics",
    seed=SEED,
    tolerance="exact integer equality (FLOPs per token of integer-sized matmuls)",
    requires=("kernelapprox.dynamics.est",),
    verifies=(
        "kernelapprox.dynamics.est.subnetwork_flops",
        "kernelapprox.dynamics.est.layer_forward_flops",
        "kernelapprox.dynamics.est.head_forward_flops",
        "kernelapprox.dynamics.est.SubnetworkSampler.sample",
    ),
)
