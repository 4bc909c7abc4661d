r"""APT: the top half of the adapters by salience grow by the factor that meets the budget.

Statement
---------
With adapters $i = 1..n$ of ranks $r_i$, $N_i = n^\mathrm{in}_i + n^\mathrm{out}_i$ parameters
per unit of rank, current total $N = \sum_i r_i N_i$ and a target $N^\star > N$, APT grows the
$\lceil n / 2 \rceil$ adapters of highest salience, those among them below $r_\max$, to
$$r_i' = \min\big(r_\max, \lfloor r_i \rho \rfloor\big), \qquad
\rho = \frac{N^\star - N}{\sum_{i \in \mathrm{top}} r_i N_i} + 1,$$
and leaves the others. Without the floor and the cap the new total would be exactly $N^\star$
($\sum_{\mathrm{top}} r_i \rho N_i + \sum_{\mathrm{rest}} r_i N_i = N^\star$); with them it
never exceeds $N^\star$ and, when no rank is capped, falls short of it by less than
$\sum_{\mathrm{top}} N_i$. A target at or below $N$ changes nothing.

Source
------
Zhao, Hajishirzi & Cao (ICML 2024), APT, Sec. 4.3 and the official code's adaptive adapters
(`shared/reference/model_compression.md` §2: "the top half below r_max = 64 grow r' = r rho
with rho = (target - current) / sum(top params) + 1").

Method
------
Exact rational arithmetic (`fractions.Fraction`) as the reference: for 300 seeded cases (1 to 9
adapters, so odd counts where "half" must round up, distinct random saliences, ranks 1-64,
$N_i$ 2-200, targets from below $N$ to $5 N$, $r_\max \in \{64, 16\}$),
`kernelapprox.compression.pruning.adapters.allocate_ranks` must return the reference ranks
exactly; every result must satisfy the budget: total $\le N^\star$, and when nothing is capped,
$N^\star - \text{total} < \sum_{\mathrm{top}} N_i$. Cases where $r_i \rho$ lies within
$10^{-9}$ of an integer (where a float product may round to either side of the floor) are
counted and judged only by the budget.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from ._core import Verdict
from ._numerical import Checks, numerical_claim

SEED = 20240719


def top_half_ranks(
    salience: list[float], ranks: list[int], ppr: list[int], target: int, r_max: int
) -> tuple[list[int], list[int], Fraction | None]:
    """The reference rule in exact rationals: new ranks, the growing adapters, and rho."""
    current = sum(r * p for r, p in zip(ranks, ppr, strict=True))
    order = sorted(range(len(salience)), key=lambda i: salience[i], reverse=True)
    half = (len(salience) + 1) // 2  # ceil(n / 2)
    top = [i for i in order[:half] if ranks[i] < r_max]
    if target <= current or not top:
        return list(ranks), [], None
    rho = Fraction(target - current, sum(ranks[i] * ppr[i] for i in top)) + 1
    new = list(ranks)
    for i in top:
        new[i] = max(ranks[i], min(r_max, math.floor(ranks[i] * rho)))
    return new, top, rho


def run(*, thorough: bool = False, seed: int = SEED) -> Verdict:
    from kernelapprox.compression.pruning.adapters import allocate_ranks

    rng = np.random.default_rng(seed)
    checks = Checks()
    cases = 1000 if thorough else 300
    wrong, over_budget, short, near_integer, grown_cases, odd_cases = [], [], [], 0, 0, 0
    for case in range(cases):
        n = int(rng.integers(1, 10))
        salience = [float(v) for v in rng.permutation(n) + rng.random(n)]  # distinct
        r_max = 64 if case % 3 else 16
        ranks = [int(v) for v in rng.integers(1, 65, size=n)]
        ppr = [int(v) for v in rng.integers(2, 201, size=n)]
        current = sum(r * p for r, p in zip(ranks, ppr, strict=True))
        target = int(current * rng.uniform(0.8, 5.0))
        got = allocate_ranks(salience, ranks, ppr, target, r_max=r_max)
        want, top, rho = top_half_ranks(salience, ranks, ppr, target, r_max)
        total = sum(r * p for r, p in zip(got, ppr, strict=True))
        if rho is not None:
            grown_cases += 1
            odd_cases += n % 2
            if total > target:
                over_budget.append(f"case {case}: total {total} > target {target}")
            capped = any(want[i] == r_max and ranks[i] * rho > r_max for i in top)
            if not capped and target - total >= sum(ppr[i] for i in top):
                short.append(f"case {case}: {target - total} short of {target}")
            close = any(abs(ranks[i] * rho - round(ranks[i] * rho)) < 1e-9 for i in top)
            if close:
                near_integer += 1
                continue
        if got != want:
            wrong.append(f"case {case} (n={n}, r_max={r_max}): {got}, want {want}")
    checks.require(not wrong, f"ranks differ from the top-half rule in {len(wrong)} cases: "
                   + "; ".join(wrong[:3]))  # fmt: skip
    checks.require(not over_budget, "over the target: " + "; ".join(over_budget[:3]))
    checks.require(not short, "more than one rank per grown adapter short: " + "; ".join(short[:3]))
    checks.require(grown_cases > cases // 2 and odd_cases > 0, "too few growing cases drawn")
    example = allocate_ranks([0.9, 0.1, 0.5, 0.3], [8, 8, 8, 8], [10, 10, 10, 10], 480)
    checks.require(example == [16, 8, 16, 8], f"the docstring's example gives {example}")
    return checks.verdict(
        f"{cases} cases ({grown_cases} growing, {odd_cases} of them with an odd count of "
        f"adapters): allocate_ranks equals the exact top-half rule and stays within one rank "
        f"per grown adapter below the target, never above ({near_integer} cases with r ρ "
        f"within 1e-9 of an integer judged by the budget only)",
        cases=cases,
        growing_cases=grown_cases,
        odd_growing_cases=odd_cases,
        near_integer_cases=near_integer,
        mismatches=wrong[:10],
    )


CLAIM = numerical_claim(
    run,
    name="apt_rank_allocation",
    title="APT: the top half of the adapters grow by the factor that meets the budget",
    source="Zhao, Hajishirzi & Cao (ICML 2024), APT, Sec. 4.3 (adaptive adapters)",
    family="compression",
    seed=SEED,
    tolerance="exact integer equality with the rule in rationals (r ρ within 1e-9 of an "
    "integer judged by the budget only); budget: total ≤ target, shortfall < sum of Nᵢ",
    requires=("kernelapprox.compression.pruning",),
    verifies=("kernelapprox.compression.pruning.adapters.allocate_ranks",),
)
