r"""Yaras et al.: gradient descent on a deep factorisation keeps an invariant subspace.

Statement
---------
Let $\Phi \in \mathbb{R}^{d \times d}$ have rank $r$ ($d \ge 2r$), $W_l(0) = \varepsilon O_l$
with $O_l$ orthogonal, $l = 1, \dots, L$, and run gradient descent with step $\eta$ (weight decay
$\lambda$) on $\tfrac12\|W_L \cdots W_1 - \Phi\|_F^2$. Then there are bases $U_l$, fixed in time,
with
$$W_l(t) = U_{l+1}\begin{pmatrix}\tilde W_l(t) & 0\\ 0 & \rho(t) I_{d - 2r}\end{pmatrix}U_l^\top,
\qquad \rho(0) = \varepsilon,\quad
\rho(t + 1) = \rho(t)\big(1 - \eta\lambda - \eta\rho(t)^{2(L-1)}\big),$$
so every layer has $d - 2r$ singular values equal to $\rho(t)$, and gradient descent on the
compressed $2r \times 2r$ factors $\tilde W_l$ reproduces the full end-to-end trajectory
(up to the known term $\rho^L U_{L+1,2} U_{1,2}^\top$). Adam does not preserve the subspace
(negative control).

Source
------
Yaras, Wang, Balzano & Qu, "Compressible dynamics in deep overparameterized low-rank learning
and adaptation", ICML 2024 (arXiv 2406.04112), Theorem 1 (invariant subspace) and the
compression of Section 3.

Method
------
Experiment with the package's `kernelapprox.dynamics.verify_invariant_subspace` in float64,
fixed seed: the invariance error (distance of the $d - 2r$ bulk singular values from the $\rho$
recursion), the projection leakage onto the fixed complement and the gap between the full and
the compressed end-to-end trajectories must all be $\le 10^{-10}$ relative; the Adam negative
control must show leakage $> 10^{-2}$."""

from __future__ import annotations

from ._core import Verdict, package_attr
from ._numerical import numerical_claim

SEED = 20240606
TOLERANCE = 1e-10
ADAM_MINIMUM = 1e-2


def run(*, thorough: bool = False, seed: int = SEED) -> Verdict:
    check = package_attr("kernelapprox.dynamics", "verify_invariant_subspace")
    steps = 3000 if thorough else 500
    result = check(dim=30, rank=3, depth=3, eps=1e-2, steps=steps, seed=seed)
    numbers = {
        key: float(result[key])
        for key in ("invariance_error", "trajectory_gap", "leakage", "adam_leakage")
    }
    exact = all(numbers[k] <= TOLERANCE for k in ("invariance_error", "trajectory_gap", "leakage"))
    control = numbers["adam_leakage"] > ADAM_MINIMUM
    summary = (
        f"GD: invariance error {numbers['invariance_error']:.1e}, leakage "
        f"{numbers['leakage']:.1e}, full vs compressed gap {numbers['trajectory_gap']:.1e} "
        f"(each ≤ {TOLERANCE:.0e}); Adam leakage {numbers['adam_leakage']:.2g} "
        f"(> {ADAM_MINIMUM:.0e}); {steps} steps, d=30, r=3, L=3"
    )
    return Verdict.decide(exact and control, summary, steps=steps, **numbers)


CLAIM = numerical_claim(
    run,
    name="invariant_subspace",
    title="Invariant subspace of deep factorisations under gradient descent (Yaras et al.)",
    source="Yaras et al. (ICML 2024) Thm 1, Sec. 3",
    family="dynamics",
    seed=SEED,
    tolerance="1e-10 relative in float64 for GD; Adam control must exceed 1e-2",
    requires=("kernelapprox.dynamics",),
    verifies=(
        "kernelapprox.dynamics.theorem.verify_invariant_subspace",
        "kernelapprox.dynamics.factorization.DeepFactorization.forward",
        "kernelapprox.dynamics.compression.compress",
        "kernelapprox.dynamics.diagnostics.complement_leakage",
    ),
)
