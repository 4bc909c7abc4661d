r"""APT: the budget search keeps at most the budget and is within one block of it.

Statement
---------
With blocks sorted by density $s_i / p_i$ (largest first, order $\pi$) and
$k^\star = \max\{k : \sum_{r \le k} p_{\pi(r)} \le B\}$ found by binary search, the kept
parameters $P^\star = \sum_{r \le k^\star} p_{\pi(r)}$ satisfy
$$P^\star \le B \quad\text{and}\quad B - P^\star < p_{\pi(k^\star + 1)} \le \max_i p_i$$
unless every block is kept; $k^\star$ is the length a linear scan of the prefixes finds.

Source
------
Zhao, Hajishirzi & Cao (ICML 2024), APT, Sec. 4.2 (blocks of all kinds ranked together by
salience density; binary search over the kept prefix under the parameter constraint).

Method
------
Numerical: `kernelapprox.compression.pruning.select_blocks` on seeded random problems (1 to
60 blocks, parameter counts 1 to 100, saliences of either sign, budgets from 0 to above the
total) against a linear scan over every prefix of the same order; then on the sites of a
`kernelapprox.lm.Decoder` (heads of $4 d d_h + 3 d_h$, neurons of $2d + 1$ parameters) at
the kept fractions of APT's cubic schedule. Every case must satisfy both inequalities and
match the scan exactly.
"""

from __future__ import annotations

from ._core import Verdict, package_module
from ._numerical import numerical_claim

SEED = 20240718


def _scan(order, params, budget) -> int:
    total, k = 0, 0
    for i in order:
        total += params[i]
        if total > budget:
            break
        k += 1
    return k


def run(*, thorough: bool = False, seed: int = SEED) -> Verdict:
    import numpy as np
    import torch

    pruning = package_module("kernelapprox.compression.pruning")
    rng = np.random.default_rng(seed)
    failures, cases, tightest = [], 0, 0.0
    problems = []
    for _ in range(400 if thorough else 120):
        n = int(rng.integers(1, 61))
        salience = rng.normal(size=n) * 10.0 ** rng.integers(-3, 4)
        params = rng.integers(1, 101, size=n)
        problems.append((salience, params, float(rng.uniform(0, 1.1) * params.sum())))
    from kernelapprox.lm import Decoder, DecoderConfig

    config = DecoderConfig(context=4, n_layers=3, d_model=16, n_heads=4, d_mlp=24)
    sites = pruning.decoder_sites(Decoder(config, seed=seed))
    sal = np.concatenate([rng.random(s.n_groups) for s in sites])
    par = np.concatenate([np.full(s.n_groups, s.params_per_group) for s in sites])
    for step in pruning.pruning_steps(0, 100):
        gamma = pruning.cubic_keep_fraction(step, t_warm=0, t_end=100, gamma_final=0.4)
        problems.append((sal, par, gamma * float(par.sum())))
    for salience, params, budget in problems:
        sel = pruning.select_blocks(torch.from_numpy(salience), torch.from_numpy(params), budget)
        order = sel.order.tolist()
        kept = sel.kept_params
        ok = kept <= budget and sel.n_kept == _scan(order, params, budget)
        ok = ok and kept == int(params[sel.keep.numpy()].sum())
        if sel.n_kept < len(params):
            nxt = int(params[order[sel.n_kept]])
            ok = ok and budget - kept < nxt <= int(params.max())
            tightest = max(tightest, (budget - kept) / nxt)
        if not ok:
            failures.append({"n": len(params), "budget": budget, "kept": kept})
        cases += 1
    summary = (
        f"{cases} problems ({len(problems) - 11} random, 11 schedule steps on a decoder's "
        f"heads and neurons): kept ≤ budget, budget - kept < next block, equal to the linear "
        f"scan in all but {len(failures)}; largest (budget - kept) / next block {tightest:.3f}"
    )
    return Verdict.decide(
        not failures, summary, cases=cases, failures=failures[:5], tightest_gap=tightest
    )


CLAIM = numerical_claim(
    run,
    name="apt_budget_search",
    title="APT: the budget search keeps at most the budget, within one block of it",
    source="Zhao, Hajishirzi & Cao (ICML 2024), APT, Sec. 4.2 (parameter-constrained search)",
    family="compression",
    seed=SEED,
    tolerance="exact (integer parameter counts)",
    requires=("kernelapprox.compression.pruning",),
    verifies=("kernelapprox.compression.pruning.selection.select_blocks",),
)
