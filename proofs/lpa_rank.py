r"""LPA: every low-dimensional projected attention map has rank at most r.

Statement
---------
In low-dimensional projected attention each projection $W \in \{W_Q, W_K, W_V, W_O\}$ is the
product $W = B A$ of a down-projection $A \in \mathbb{R}^{r \times d_{\mathrm{in}}}$ (shared by
all heads) and an up-projection $B \in \mathbb{R}^{d_{\mathrm{out}} \times r}$, hence
$$\operatorname{rank}(B A) \le r,\qquad
\operatorname{rank}\big(Q_h K_h^\top\big) \le \min(r, d_h)\ \text{for every head } h,$$
where $Q_h, K_h$ are the bias-free projections of the tokens; with biases (an affine
projection, as in LPA's setting 1) the logit rank is at most $\min(r + 1, d_h)$.

Source
------
Lv et al., "Scalable efficient training of large language models with low-dimensional
projected attention", EMNLP 2024 (arXiv 2411.02063); TsinghuaC3I/LPA `architecture/`.

Method
------
Experiment with the package's `kernelapprox.dynamics.LowRankProjectedAttention`, float64, fixed
seed: the linear part of each projection is read off by applying it to the identity (minus its
value at 0, removing biases); its numerical rank (singular values above
$10^{-10}\,\sigma_{\max}$) must be $\le r$, and so must the rank of every head's logit matrix
$Q_h K_h^\top$ on random inputs (bias-free, and $\le r + 1$ with biases). As a control, the
rank must reach $r$ for random weights (the check is not vacuous)."""

from __future__ import annotations

import numpy as np

from ._core import Verdict, package_attr
from ._numerical import numerical_claim

SEED = 20241102
#: Class names the dynamics module may use for the LPA attention layer.
D_MODEL, HEADS, HEAD_DIM, RANK, TOKENS = 32, 4, 8, 6, 12


def numerical_rank(matrix: np.ndarray) -> int:
    s = np.linalg.svd(matrix, compute_uv=False)
    return int(np.sum(s > 1e-10 * s[0])) if s.size and s[0] > 0 else 0


def run(*, thorough: bool = False, seed: int = SEED) -> Verdict:
    layer_cls = package_attr("kernelapprox.dynamics", "LowRankProjectedAttention")
    import torch

    torch.manual_seed(seed)
    layer = layer_cls(D_MODEL, HEADS, rank=RANK).double()
    ranks = {}
    with torch.no_grad():
        for name in ("q_proj", "k_proj", "v_proj", "o_proj"):
            proj = getattr(layer, name)
            width = D_MODEL if name != "o_proj" else HEADS * HEAD_DIM
            eye = torch.eye(width, dtype=torch.float64)
            linear = proj(eye) - proj(torch.zeros(1, width, dtype=torch.float64))
            ranks[name] = numerical_rank(linear.numpy())
        x = torch.randn(TOKENS, D_MODEL, dtype=torch.float64)
        zero = torch.zeros(1, D_MODEL, dtype=torch.float64)
        q_aff = layer.q_proj(x).reshape(TOKENS, HEADS, HEAD_DIM)
        k_aff = layer.k_proj(x).reshape(TOKENS, HEADS, HEAD_DIM)
        q_lin = (layer.q_proj(x) - layer.q_proj(zero)).reshape(TOKENS, HEADS, HEAD_DIM)
        k_lin = (layer.k_proj(x) - layer.k_proj(zero)).reshape(TOKENS, HEADS, HEAD_DIM)
        head_ranks = [numerical_rank((q_lin[:, h] @ k_lin[:, h].T).numpy()) for h in range(HEADS)]
        affine_ranks = [numerical_rank((q_aff[:, h] @ k_aff[:, h].T).numpy()) for h in range(HEADS)]
    bound, affine_bound = min(RANK, HEAD_DIM), min(RANK + 1, HEAD_DIM)
    ok = (
        all(v <= RANK for v in ranks.values())
        and all(v <= bound for v in head_ranks)
        and all(v <= affine_bound for v in affine_ranks)
    )
    reached = max(ranks.values()) == RANK
    summary = (
        f"projection ranks {ranks} (≤ r = {RANK}); head logit ranks {head_ranks} "
        f"(≤ min(r, dₕ) = {bound}), with biases {affine_ranks} (≤ {affine_bound}); "
        f"rank r reached: {reached}"
    )
    return Verdict.decide(
        ok and reached, summary, ranks=ranks, head_ranks=head_ranks, affine_ranks=affine_ranks
    )


CLAIM = numerical_claim(
    run,
    name="lpa_rank",
    title="LPA: each projected attention map has rank <= r",
    source="Lv et al. (EMNLP 2024); TsinghuaC3I/LPA architecture/",
    family="dynamics",
    seed=SEED,
    tolerance="numerical rank with relative singular-value threshold 1e-10 (float64)",
    requires=("kernelapprox.dynamics",),
    verifies=("kernelapprox.dynamics.lpa.LowRankLinear.forward",),
)
