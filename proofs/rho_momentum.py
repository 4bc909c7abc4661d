r"""The complement's singular value under SGD with heavy-ball momentum and weight decay.

Statement
---------
On the invariant complement of a deep factorisation (Yaras et al.) every layer is
$\rho(t) I$, and the loss $\tfrac c2 \|W_L \cdots W_1\|^2$ restricted to it gives each layer the
scalar gradient $c\rho^{2L-1}$. With `torch.optim.SGD` (step $\eta$, momentum $\mu$, weight
decay $\lambda$) the common value follows
$$g_t = c\rho_t^{2L-1} + \lambda\rho_t,\quad b_0 = g_0,\quad b_t = \mu b_{t-1} + g_t,\quad
\rho_{t+1} = \rho_t - \eta b_t,\qquad \rho_0 = \varepsilon,$$
which for $\mu = 0$ is $\rho_{t+1} = \rho_t(1 - \eta\lambda - \eta c \rho_t^{2(L-1)})$.

Source
------
Yaras, Wang, Balzano & Qu, ICML 2024 (arXiv 2406.04112), Theorem 1 (the $\rho$ recursion for
gradient descent); the heavy-ball update of PyTorch's `torch.optim.SGD` documentation
(Sutskever et al., ICML 2013, with the dampening-free convention $b_0 = g_0$).

Method
------
The reference is the optimiser itself: $L$ scalar parameters, all $\varepsilon$, trained by
`torch.optim.SGD` in float64 on $\tfrac c2 (\prod_l \rho_l)^2$. The package's
`rho_trajectory` must match every layer's trajectory to $10^{-12}$ relative, for
$(L, \mu, \lambda) \in \{(2, 0, 0), (3, 0.9, 0.01), (4, 0.5, 0)\}$ over 200 steps (same
operations in another order: rounding of a few ulp per step).
"""

from __future__ import annotations

import numpy as np
import torch

from kernelapprox.dynamics.diagnostics import rho_trajectory

from ._core import Verdict
from ._numerical import Checks, numerical_claim

SEED = 20240607
RTOL = 1e-12
CASES = ((2, 0.0, 0.0), (3, 0.9, 0.01), (4, 0.5, 0.0))


def sgd_reference(
    *, eps: float, lr: float, depth: int, steps: int, momentum: float, weight_decay: float, c: float
) -> np.ndarray:
    """Every layer's scalar value under ``torch.optim.SGD``: shape ``(steps + 1, depth)``."""
    layers = [torch.tensor(eps, dtype=torch.float64, requires_grad=True) for _ in range(depth)]
    optimiser = torch.optim.SGD(layers, lr=lr, momentum=momentum, weight_decay=weight_decay)
    path = [[eps] * depth]
    for _ in range(steps):
        optimiser.zero_grad()
        loss = 0.5 * c * torch.stack(layers).prod() ** 2
        loss.backward()
        optimiser.step()
        path.append([float(p.detach()) for p in layers])
    return np.array(path)


def run(*, thorough: bool = False, seed: int = SEED) -> Verdict:
    checks = Checks()
    rng = np.random.default_rng(seed)
    gaps = {}
    for depth, momentum, weight_decay in CASES:
        eps, lr, c = float(rng.uniform(0.5, 0.9)), float(rng.uniform(0.05, 0.2)), 1.0
        steps = 400 if thorough else 200
        package = rho_trajectory(
            eps=eps, lr=lr, depth=depth, steps=steps, weight_decay=weight_decay,
            loss_scale=c, momentum=momentum,
        )  # fmt: skip
        reference = sgd_reference(
            eps=eps, lr=lr, depth=depth, steps=steps, momentum=momentum,
            weight_decay=weight_decay, c=c,
        )  # fmt: skip
        key = f"L={depth}, momentum={momentum}, weight_decay={weight_decay}"
        gap = float(np.max(np.abs(package[:, None] - reference) / np.abs(reference)))
        gaps[key] = gap
        checks.require(gap <= RTOL, f"{key}: rho_trajectory differs from SGD by {gap:.1e}")
    return checks.verdict(
        f"rho_trajectory equals torch.optim.SGD on the scalar complement to "
        f"{max(gaps.values()):.1e} relative (limit {RTOL:.0e}) in {len(gaps)} settings, "
        "with and without momentum and weight decay",
        gaps=gaps,
    )


CLAIM = numerical_claim(
    run,
    name="rho_momentum",
    title="The complement value rho(t) under SGD with momentum and weight decay",
    source="Yaras et al. (ICML 2024) Thm 1; torch.optim.SGD heavy-ball update",
    family="dynamics",
    seed=SEED,
    tolerance="1e-12 relative to torch.optim.SGD",
    verifies=("kernelapprox.dynamics.diagnostics.rho_trajectory",),
)
