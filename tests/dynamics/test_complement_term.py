"""The complement term ``rho^L U_perp V_perp^T`` of a compressed deep factorization.

Under full observation (Yaras et al., ICML 2024; notes ``lowrank_dynamics.md`` §1.3, 1.7)
the full model's end-to-end map is the compressed one plus ``rho(t)^L O_{L:1}(I - V V^T)``.
At initialization ``rho(0) = eps`` and every factor is ``eps O_l``, so the identity
``W_{L:1}(0) = U (eps I)^L V^T + complement_term(c, eps)`` holds exactly (up to rounding) and
needs no training; with ``eps != 1`` it fixes the power of ``rho`` (``rho = 1``, which the
theorem study passes, cannot). References: the full model's own product of factors, the
Frobenius norm ``rho^L sqrt(d - 2 r)`` (``O_{L:1}`` orthogonal, ``I - V V^T`` a projector of
rank ``d - 2 r``), and a few exact GD steps with ``rho(t)`` from its scalar recursion.
"""

from __future__ import annotations

import copy
import math

import pytest
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

D, R = 10, 2
#: float64 products of L + 2 orthogonal-times-eps factors of size 10: rounding of order
#: (L + 2) d u = 6e-15 relative at most (Higham 2002, §3.5); measured <= 2.1e-16.
RTOL = 1e-12


def _setting(depth: int, eps: float):
    target = low_rank_target(D, R, seed=3)
    objective = FullObservation(target)
    model = DeepFactorization(D, depth=depth, eps=eps, seed=5)
    small = compress(copy.deepcopy(model), objective, rank=R)
    return model, small, objective


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.linalg.norm(a - b) / torch.linalg.norm(b))


@pytest.mark.parametrize(("depth", "eps"), [(2, 0.5), (3, 0.3), (4, 2.0)])
def test_full_map_at_init_is_compressed_plus_complement(depth, eps):
    model, small, _ = _setting(depth, eps)
    with torch.no_grad():
        full = model.end_to_end()
        rebuilt = small.end_to_end() + complement_term(small, eps)
    assert _relative(rebuilt, full) < RTOL


@pytest.mark.parametrize("rho", [0.7, 1.0, 1.6])
def test_complement_norm_is_rho_to_the_depth_times_sqrt_of_the_codimension(rho):
    depth = 3
    _, small, _ = _setting(depth, 0.3)
    norm = float(torch.linalg.norm(complement_term(small, rho)))
    assert norm == pytest.approx(rho**depth * math.sqrt(D - 2 * R), rel=RTOL)


def test_full_map_after_gradient_steps_is_compressed_plus_complement():
    """Full and compressed models trained by the same GD: the gap is ``rho(t)^L`` times the
    complement, with ``rho(t)`` from :func:`rho_trajectory` (notes §1.2)."""
    depth, eps, lr, steps = 3, 0.4, 0.2, 6
    model, small, objective = _setting(depth, eps)
    train(model, objective, lr=lr, steps=steps)
    train(small, objective, lr=lr, steps=steps, gamma=0.0)
    rho = rho_trajectory(eps=eps, lr=lr, depth=depth, steps=steps, objective=objective)[-1]
    assert abs(rho - eps) > 1e-3  # the complement moved, so the check sees rho(t), not eps
    with torch.no_grad():
        full = model.end_to_end()
        rebuilt = small.end_to_end() + complement_term(small, float(rho))
    assert _relative(rebuilt, full) < 1e-10
