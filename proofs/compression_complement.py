r"""The full end-to-end map is the compressed one plus $\rho(t)^L$ times the fixed complement.

Statement
---------
For a deep factorisation $W_l(0) = \varepsilon O_l$ under full observation of a rank-$r$
target, compressed to its $2r$-dimensional invariant subspace, gradient descent on the full and
on the compressed factors (same step) keeps
$$W_{L:1}(t) = U\,\widetilde W_{L:1}(t)\,V^\top + \rho(t)^L\, U_\perp V_\perp^\top,\qquad
\|U_\perp V_\perp^\top\|_F = \sqrt{d - 2r},$$
with $\rho(t)$ the scalar recursion $\rho(0) = \varepsilon$,
$\rho(t+1) = \rho(t)(1 - \eta c \rho(t)^{2(L-1)})$.

Source
------
Yaras, Wang, Balzano & Qu, "Compressible dynamics in deep overparameterized low-rank learning
and adaptation", ICML 2024 (arXiv 2406.04112), Theorem 1 and its consequence for the
end-to-end map (Section 3).

Method
------
The package's `DeepFactorization`, `compress`, `train`, `rho_trajectory` and
`complement_term` in float64 ($d = 10$, $r = 2$): at initialisation ($t = 0$, $\varepsilon \ne 1$
so that the power of $\rho$ matters) and after 6 gradient steps, the full model's own product of
factors must equal the compressed product plus `complement_term` at $\rho(t)$ to $10^{-10}$
relative (products of $L + 2$ factors: rounding of order $(L + 2) d u \approx 10^{-14}$), and
$\|$`complement_term`$(\rho)\|_F = \rho^L \sqrt{d - 2r}$ to $10^{-12}$ relative.
"""

from __future__ import annotations

import copy
import math

import torch

from kernelapprox.dynamics import (
    DeepFactorization,
    FullObservation,
    complement_term,
    compress,
    low_rank_target,
    rho_trajectory,
)
from kernelapprox.dynamics.training import train

from ._core import Verdict
from ._numerical import Checks, numerical_claim

SEED = 20240608
D, R = 10, 2
RTOL = 1e-10


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.linalg.norm(a - b) / torch.linalg.norm(b))


def run(*, thorough: bool = False, seed: int = SEED) -> Verdict:
    checks = Checks()
    gaps = {}
    for depth, eps, steps in ((2, 0.5, 0), (3, 0.4, 6), (4, 1.5, 0)):
        target = low_rank_target(D, R, seed=seed)
        objective = FullObservation(target)
        model = DeepFactorization(D, depth=depth, eps=eps, seed=seed + 1)
        small = compress(copy.deepcopy(model), objective, rank=R)
        lr = 0.2
        if steps:
            train(model, objective, lr=lr, steps=steps)
            train(small, objective, lr=lr, steps=steps, gamma=0.0)
        rho = float(
            rho_trajectory(eps=eps, lr=lr, depth=depth, steps=steps, objective=objective)[-1]
        )
        with torch.no_grad():
            full = model.end_to_end()
            term = complement_term(small, rho)
            rebuilt = small.end_to_end() + term
        key = f"L={depth}, ε={eps}, t={steps}"
        gaps[f"{key} map"] = _relative(rebuilt, full)
        norm = float(torch.linalg.norm(term))
        gaps[f"{key} norm"] = abs(norm - rho**depth * math.sqrt(D - 2 * R)) / (
            rho**depth * math.sqrt(D - 2 * R)
        )
        checks.require(
            gaps[f"{key} map"] <= RTOL, f"{key}: full map differs by {gaps[f'{key} map']:.1e}"
        )
        checks.require(
            gaps[f"{key} norm"] <= 1e-12, f"{key}: complement norm off by {gaps[f'{key} norm']:.1e}"
        )
    return checks.verdict(
        f"full map = compressed + ρᴸ complement to {max(gaps.values()):.1e} relative in "
        f"{len(gaps) // 2} settings (at init and after 6 GD steps), norm ρᴸ √(d - 2r)",
        gaps=gaps,
    )


CLAIM = numerical_claim(
    run,
    name="compression_complement",
    title="Full map = compressed map + rho(t)^L times the fixed complement",
    source="Yaras et al. (ICML 2024) Thm 1 and Sec. 3",
    family="dynamics",
    seed=SEED,
    tolerance="1e-10 relative (map), 1e-12 (norm)",
    verifies=(
        "kernelapprox.dynamics.compression.complement_term",
        "kernelapprox.dynamics.compression.compress",
        "kernelapprox.dynamics.diagnostics.rho_trajectory",
    ),
)
