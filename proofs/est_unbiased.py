r"""EST: rescaled random heads and MLP neurons give an unbiased estimate of the full block.

Statement
---------
Sample a set $I_H$ of $N_H p_H$ heads uniformly without replacement and a set $I_M$ of
$N_M p_M$ MLP neurons likewise. Then
$$\mathbb{E}\Big[\tfrac1{p_H}\sum_{i \in I_H} \mathrm{softmax}\Big(\tfrac{X W_Q^i (X W_K^i)^\top}
{\sqrt{d_k}}\Big) X W_V^i W_O^i\Big] = \mathrm{MHA}(X),\qquad
\mathbb{E}\Big[\tfrac1{p_M}\,\sigma(X W_1[:, I_M])\, W_2[I_M, :]\Big] = \mathrm{MLP}(X),$$
because every head (neuron) is included with probability exactly $p_H$ ($p_M$); at $p = 1$ the
estimate is the full block.

Source
------
Li, Chen, Ma, Wu, Zhu & Yu, "Evolving subnetwork training for large language models" (EST),
ICML 2024 (arXiv 2406.06962), Section 3 (sampling of heads and MLP neurons with 1/p scaling).

Method
------
Experiment in plain torch, float64, fixed seed (the package has no EST sampler yet; switch to
it once `kernelapprox.dynamics` provides one). The expectation is computed *exactly* by
averaging over all $\binom{N_H}{N_H p_H}$ head subsets and all $\binom{N_M}{N_M p_M}$ neuron
subsets; it must equal the full block to $10^{-12}$ relative. A Monte Carlo run with
`torch.Generator` sampling (as in training) must have every entry of its mean within 5 standard
errors of the full block, and at $p = 1$ the estimate must equal the block exactly.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import torch

from proofs._core import Claim, Verdict, docstring_section

SEED = 20240612
TOKENS, D_MODEL, HEADS, HEAD_DIM, NEURONS = 6, 16, 4, 4, 8


def _weights(gen: torch.Generator) -> dict[str, torch.Tensor]:
    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=gen, dtype=torch.float64) / math.sqrt(shape[-2])

    return {
        "q": randn(HEADS, D_MODEL, HEAD_DIM),
        "k": randn(HEADS, D_MODEL, HEAD_DIM),
        "v": randn(HEADS, D_MODEL, HEAD_DIM),
        "o": randn(HEADS, HEAD_DIM, D_MODEL),
        "w1": randn(D_MODEL, NEURONS),
        "w2": randn(NEURONS, D_MODEL),
    }


def head_outputs(
    x: torch.Tensor, w: dict[str, torch.Tensor], heads: list[int] | None = None
) -> torch.Tensor:
    """Contributions of ``heads`` (default all), shape (len(heads), tokens, d_model)."""
    idx = list(range(HEADS)) if heads is None else heads
    q = torch.einsum("td,hde->hte", x, w["q"][idx])
    k = torch.einsum("td,hde->hte", x, w["k"][idx])
    v = torch.einsum("td,hde->hte", x, w["v"][idx])
    attn = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(HEAD_DIM), dim=-1)
    return (attn @ v) @ w["o"][idx]


def mha_subnetwork(x: torch.Tensor, w: dict[str, torch.Tensor], heads: list[int]) -> torch.Tensor:
    """EST attention: only the sampled heads are computed, then rescaled by 1/p_H."""
    p = len(heads) / HEADS
    return head_outputs(x, w, heads).sum(dim=0) / p


def mlp_subnetwork(x: torch.Tensor, w: dict[str, torch.Tensor], neurons: list[int]) -> torch.Tensor:
    """EST MLP with the sampled neurons and the 1/p_M rescaling."""
    p = len(neurons) / NEURONS
    return torch.nn.functional.gelu(x @ w["w1"][:, neurons]) @ w["w2"][neurons, :] / p


def run(*, thorough: bool = False) -> Verdict:
    # Tiny tensors: intra-op threads only add contention (10-100x slower on a busy machine).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _experiment(thorough)
    finally:
        torch.set_num_threads(threads)


def _experiment(thorough: bool) -> Verdict:
    gen = torch.Generator().manual_seed(SEED)
    w = _weights(gen)
    x = torch.randn(TOKENS, D_MODEL, generator=gen, dtype=torch.float64)
    full_mha = mha_subnetwork(x, w, list(range(HEADS)))
    full_mlp = mlp_subnetwork(x, w, list(range(NEURONS)))
    reference_mha = head_outputs(x, w).sum(dim=0)
    exact_gap = {}
    for label, block, n_units, kept, full in (
        ("heads p=1/2", mha_subnetwork, HEADS, HEADS // 2, full_mha),
        ("heads p=1/4", mha_subnetwork, HEADS, 1, full_mha),
        ("neurons p=1/4", mlp_subnetwork, NEURONS, NEURONS // 4, full_mlp),
        ("neurons p=1/2", mlp_subnetwork, NEURONS, NEURONS // 2, full_mlp),
    ):
        subsets = list(itertools.combinations(range(n_units), kept))
        mean = sum(block(x, w, list(s)) for s in subsets) / len(subsets)
        exact_gap[label] = float((mean - full).norm() / full.norm())
    samples = 10000 if thorough else 2000
    draws = torch.stack(
        [
            mha_subnetwork(x, w, torch.randperm(HEADS, generator=gen)[: HEADS // 2].tolist())
            for _ in range(samples)
        ]
    )
    z = ((draws.mean(0) - full_mha) / (draws.std(0) / math.sqrt(samples))).abs().max().item()
    at_one = float((full_mha - reference_mha).abs().max())
    ok = max(exact_gap.values()) <= 1e-12 and z <= 5 and at_one == 0.0
    summary = (
        f"exact subset averages equal the full block to {max(exact_gap.values()):.1e} "
        f"(heads p=1/2, 1/4; neurons p=1/4, 1/2); Monte Carlo mean of {samples} sampled "
        f"head sets within {z:.1f} SE of the full MHA (limit 5); p=1 gap {at_one:.1e}"
    )
    return Verdict.decide(
        ok,
        summary,
        exact_relative_gaps=exact_gap,
        monte_carlo_max_z=z,
        monte_carlo_samples=samples,
        p1_gap=at_one,
        draws_std_mean=float(np.mean(draws.std(0).numpy())),
    )


CLAIM = Claim(
    name="est_unbiased",
    title="EST: 1/p-rescaled random heads and neurons are unbiased",
    statement=docstring_section(__doc__, "Statement"),
    source="Li et al. (ICML 2024), EST, Sec. 3",
    method="numerical",
    expected="holds",
    family="dynamics",
    run=run,
    module=__name__,
    seed=SEED,
    tolerance="1e-12 relative for the exact subset average; 5 SE for the Monte Carlo mean",
    verifies=("kernelapprox.dynamics",),
)
