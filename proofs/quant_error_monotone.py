r"""Any-Precision: the sensitivity-weighted error never increases with the bit width.

Statement
---------
With $T_k$ the $k$-bit tables and $q^{(k)}$ the codes of the nested quantization,
$$E_k = \sum_{r, j} F_{rj}\,\big(W_{rj} - T_k[r, q^{(k)}_{rj}]\big)^2
\quad\text{satisfies}\quad E_{k+1} \le E_k \quad (k = b_0, \dots, n - 1):$$
each upscaling step splits a cluster into two halves whose weighted means are at least as
good for them as the parent centroid. Moreover the split of each sorted run is the exact
optimal weighted 2-means of that run, and the exact optimal $2^k$-means (dynamic
programming) lower-bounds every width: $E^\star_k \le E_k$.

Source
------
Park, Hyun, Cho, Sim & Lee (ICML 2024), Any-Precision LLM, Sec. 3 (incremental upscaling by
splitting clusters); `shared/reference/model_compression.md` §3.

Method
------
Experiment in float64 on the package code: 30 seeded matrices (4 rows of 40-400 Gaussian
weights, squared-Gaussian sensitivities, a third with ties and zero sensitivities),
$b_0 = 3$, $n = 8$; every $E_{k+1} - E_k$ is compared with the round-off of a weighted
mean, $10^{-13} \sum F W^2$. For rows of 40 weights the optimum of `optimal_kmeans` at
$k \le 4$ is compared with $E_k$ (it must not exceed it beyond round-off).
"""

from __future__ import annotations

import itertools

from ._core import Verdict, package_module
from ._numerical import numerical_claim
from ._torch import single_threaded

SEED = 20240722


def run(*, thorough: bool = False, seed: int = SEED) -> Verdict:
    import torch

    quant = package_module("kernelapprox.compression.quantization")
    return _experiment(quant, torch, thorough, seed)


@single_threaded  # tiny tensors: intra-op threads only add contention
def _experiment(quant, torch, thorough: bool, seed: int) -> Verdict:
    offset = seed - SEED  # 0 at the recorded seed
    gen = torch.Generator().manual_seed(seed)
    cases = 100 if thorough else 30
    worst_increase = -float("inf")
    worst_gap = -float("inf")
    steps = bound_checks = 0
    ratios = []
    for case in range(cases):
        cols = int(torch.randint(40, 401, (1,), generator=gen)) if case % 5 else 40
        w = torch.randn(4, cols, generator=gen, dtype=torch.float64)
        f = torch.randn(4, cols, generator=gen, dtype=torch.float64) ** 2
        if case % 3 == 0:
            w = torch.round(4 * w) / 4
            f[:, ::3] = 0.0
        scale = float((f * w**2).sum())
        q = quant.nested_quantize(w, f, seed_bits=3, max_bits=8, iterations=20, seed=case + offset)
        errors = [q.sse(w, f, k) for k in q.widths]
        for a, b in itertools.pairwise(errors):
            worst_increase = max(worst_increase, (b - a) / scale)
            steps += 1
        ratios.append(errors[-1] / errors[0] if errors[0] > 0 else 0.0)
        if cols == 40:
            for k in (3, 4):
                codes, table = quant.optimal_kmeans(w, f, 2**k)
                opt = float(quant.weighted_sse(w, f, codes, table).sum())
                worst_gap = max(worst_gap, (opt - errors[k - 3]) / scale)
                bound_checks += 1
    ok = worst_increase <= 1e-13 and worst_gap <= 1e-12
    summary = (
        f"{steps} upscaling steps: largest (Eₖ₊₁ - Eₖ) / Σ F W² = {worst_increase:.2e} "
        f"(≤ 1e-13); {bound_checks} optimum checks: largest (E*ₖ - Eₖ) / Σ F W² = "
        f"{worst_gap:.2e} (≤ 1e-12); median E₈ / E₃ = {sorted(ratios)[len(ratios) // 2]:.2e}"
    )
    return Verdict.decide(
        ok,
        summary,
        steps=steps,
        worst_increase=worst_increase,
        worst_gap=worst_gap,
        bound_checks=bound_checks,
    )


CLAIM = numerical_claim(
    run,
    name="quant_error_monotone",
    title="Any-Precision: the weighted error never increases with bits",
    source="Park et al. (ICML 2024), Any-Precision LLM, Sec. 3 (upscaling)",
    family="compression",
    seed=SEED,
    tolerance="increase ≤ 1e-13 and optimum excess ≤ 1e-12 of Σ F W² (float64 round-off)",
    requires=("kernelapprox.compression.quantization",),
    verifies=(
        "kernelapprox.compression.quantization.kmeans._split_sorted",
        "kernelapprox.compression.quantization.kmeans.optimal_kmeans",
        "kernelapprox.compression.quantization.nested.nested_quantize",
    ),
)
