r"""Low-rank dynamics: the invariant singular values of a deep linear network.

Gradient descent on a linear network of depth $L = 3$ and width $d = 30$, fitting a target of
rank $r = 3$ from an orthogonal initialization of scale $\varepsilon = 0.01$ (Yaras et al., ICML
2024, Theorem 1): the $d - 2r = 24$ singular values of every layer that the theorem says stay at
$\rho(t)$ stay there to machine precision, and a compressed network of width $2r$ follows the
full one. Runs ``verify_invariant_subspace`` (the ``kernelapprox dynamics theorem`` command
without its negative controls) and draws its figures with ``plot_theorem``.
"""

from __future__ import annotations

from pathlib import Path

from kernelapprox.dynamics.plots import plot_theorem
from kernelapprox.dynamics.theorem import verify_invariant_subspace

setting = dict(dim=30, rank=3, depth=3, eps=1e-2, lr=0.3, steps=500)
result = verify_invariant_subspace(**setting, negative_controls=False, keep_history=True)
for key in ("n_invariant", "invariance_error", "leakage", "trajectory_gap", "final_relative_fit"):
    value = result[key]
    print(f"{key:<20} {value:.3e}" if isinstance(value, float) else f"{key:<20} {value}")
plot_theorem(result, Path("."))
