r"""Diagnostics of a training trajectory: spectra, the :math:`\rho(t)` recursion, principal
angles, leakage out of the invariant complement and errors.

Reference: Yaras et al., ICML 2024 (arXiv 2406.04112); notes ``lowrank_dynamics.md`` §1.2, §1.6.
The invariant-subspace theorem says every factor has at least :math:`d - 2r` singular values
*equal* to :math:`\rho(t)`. Some singular values of the :math:`2r` block can fall **below**
:math:`\rho(t)`, so the check used here is "the :math:`d - 2r` singular values *closest* to
:math:`\rho(t)`", never "the smallest :math:`d - 2r`" (notes §1.2, testing pitfall).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from kernelapprox._validation import (
    check_nonnegative_float,
    check_positive_float,
    check_positive_int,
)


def rho_trajectory(
    *,
    eps: float,
    lr: float,
    depth: int,
    steps: int,
    weight_decay: float = 0.0,
    loss_scale: float | None = None,
    momentum: float = 0.0,
    objective: Any = None,
) -> np.ndarray:
    r"""The common singular value :math:`\rho(t)` of the invariant complement, ``t = 0..steps``.

    Plain GD (``momentum = 0``; notes §1.2, with the loss factor :math:`c` of
    :class:`~kernelapprox.dynamics.objectives.Objective`):

    .. math:: \rho(0) = \varepsilon,\qquad
              \rho(t+1) = \rho(t)\,\bigl(1 - \eta\lambda - \eta c\,\rho(t)^{2(L-1)}\bigr).

    Heavy-ball momentum as in ``torch.optim.SGD``: :math:`g_t = c\rho_t^{2L-1} + \lambda\rho_t`,
    :math:`b_0 = g_0`, :math:`b_t = \mu b_{t-1} + g_t`, :math:`\rho_{t+1} = \rho_t - \eta b_t`
    (the complement block :math:`\rho I` sees the scalar gradient :math:`c\rho^{2L-1}`).

    Pass the training ``objective`` (its ``scale`` is :math:`c`, e.g. ``1/d^2`` for the mean
    reduction) or ``loss_scale`` directly; with neither, :math:`c = 1` (the sum reduction).
    """
    if objective is not None:
        if loss_scale is not None and loss_scale != objective.scale:
            raise ValueError(
                f"loss_scale={loss_scale} contradicts objective.scale={objective.scale}; pass one"
            )
        loss_scale = objective.scale
    loss_scale = 1.0 if loss_scale is None else loss_scale
    eps = check_positive_float(eps, "eps")
    lr = check_positive_float(lr, "lr")
    depth = check_positive_int(depth, "depth")
    steps = check_positive_int(steps, "steps", minimum=0)
    weight_decay = check_nonnegative_float(weight_decay, "weight_decay")
    loss_scale = check_positive_float(loss_scale, "loss_scale")
    momentum = check_nonnegative_float(momentum, "momentum")
    rho = np.empty(steps + 1)
    rho[0] = eps
    buf = 0.0
    for t in range(steps):
        r = rho[t]
        grad = loss_scale * r ** (2 * depth - 1) + weight_decay * r
        buf = grad if t == 0 or momentum == 0.0 else momentum * buf + grad
        rho[t + 1] = r - lr * buf
    return rho


def singular_values(matrix: torch.Tensor) -> np.ndarray:
    """Singular values of ``matrix`` in decreasing order, as a float64 numpy array."""
    with torch.no_grad():
        return torch.linalg.svdvals(matrix.detach()).cpu().double().numpy()


def count_equal(values: np.ndarray, rho: float, *, atol: float) -> int:
    r"""How many of ``values`` lie within ``atol`` of ``rho``."""
    return int(np.count_nonzero(np.abs(np.asarray(values) - rho) <= atol))


def invariant_value_error(values: np.ndarray, rho: float, n_invariant: int) -> float:
    r"""The largest distance to :math:`\rho` among the ``n_invariant`` values **closest** to it.

    Zero (to rounding) exactly when at least ``n_invariant`` singular values equal
    :math:`\rho` -- the first consequence of the theorem, with ``n_invariant = d - 2r``.
    """
    dist = np.sort(np.abs(np.asarray(values, dtype=float) - rho))
    if n_invariant <= 0:
        return 0.0
    if n_invariant > dist.size:
        raise ValueError(f"n_invariant must be <= {dist.size}, got {n_invariant}")
    return float(dist[n_invariant - 1])


def principal_angles(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray) -> np.ndarray:
    r"""Principal angles between ``range(a)`` and ``range(b)``, in **increasing** order (radians).

    With orthonormal bases :math:`Q_a, Q_b` (QR), the cosines are the singular values of
    :math:`Q_a^\top Q_b` and the sines the singular values of :math:`Q_b - Q_a Q_a^\top Q_b`
    (for ``dim b <= dim a``). Small angles are taken from the sines, large ones from the cosines,
    which keeps full accuracy near 0 and :math:`\pi/2` (Knyazev & Argentati, SIAM J. Sci.
    Comput. 23, 2002; the same approach as ``scipy.linalg.subspace_angles``, which returns the
    angles in *decreasing* order). There are ``min(dim a, dim b)`` angles.
    """
    qa = _orth(a)
    qb = _orth(b)
    if qa.shape[0] != qb.shape[0]:
        raise ValueError(
            f"a and b must have the same number of rows, got {qa.shape[0]} and {qb.shape[0]}"
        )
    if qb.shape[1] > qa.shape[1]:
        qa, qb = qb, qa
    cross = qa.T @ qb
    cos = torch.linalg.svdvals(cross)  # decreasing cosines <-> increasing angles
    sin = torch.linalg.svdvals(qb - qa @ cross).flip(0)  # increasing sines -> increasing angles
    angles = torch.where(
        cos > math.sqrt(0.5),
        torch.arcsin(sin.clamp(0.0, 1.0)),
        torch.arccos(cos.clamp(0.0, 1.0)),
    )
    return angles.cpu().double().numpy()


def largest_principal_angle(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray) -> float:
    """The **largest** principal angle (radians); 0 iff one subspace contains the other.

    law-of-parsimony ``utils.compute_angle`` reports this one.
    """
    return float(principal_angles(a, b)[-1])


def smallest_principal_angle(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray) -> float:
    """The **smallest** principal angle (radians).

    deep-lora-transformers ``misc_utils.cosine_angle`` reports its cosine.
    """
    return float(principal_angles(a, b)[0])


def _orth(matrix: torch.Tensor | np.ndarray) -> torch.Tensor:
    t = torch.as_tensor(matrix).detach()
    if t.ndim == 1:
        t = t[:, None]
    if t.ndim != 2 or 0 in t.shape:
        raise ValueError(f"subspace bases must be non-empty matrices, got shape {tuple(t.shape)}")
    t = t.to(torch.float64)
    u, s, _ = torch.linalg.svd(t, full_matrices=False)
    keep = s > s[0] * max(t.shape) * torch.finfo(t.dtype).eps if s[0] > 0 else s > 0
    if not bool(keep.any()):
        raise ValueError("a subspace basis must not be the zero matrix")
    return u[:, keep]


def complement_leakage(
    factor: torch.Tensor, in_complement: torch.Tensor, out_complement: torch.Tensor
) -> tuple[float, float]:
    r"""How far a factor moves its invariant complement out of the predicted one.

    With :math:`A = W_l U_{l,2}` and the best scalar :math:`c = \langle A, U_{l+1,2}\rangle /
    (d - 2r)`, returns ``(relative leakage, c)`` where the relative leakage is
    :math:`\|A - c\,U_{l+1,2}\|_F / \|A\|_F` -- zero when :math:`W_l` maps the complement onto
    the next one as a multiple of an isometry (notes §1.6, "projection leakage").
    """
    with torch.no_grad():
        mapped = factor.detach() @ in_complement
        k = in_complement.shape[1]
        if k == 0:
            return 0.0, 0.0
        coef = float((mapped * out_complement).sum()) / k
        num = torch.linalg.norm(mapped - coef * out_complement)
        den = torch.linalg.norm(mapped)
        return (float(num / den) if float(den) > 0 else 0.0), coef


def complement_residual(
    factor: torch.Tensor, in_complement: torch.Tensor, out_complement: torch.Tensor, rho: float
) -> float:
    r""":math:`\|W_l U_{l,2} - \rho\,U_{l+1,2}\|_F` (absolute; notes §1.7 test 1)."""
    with torch.no_grad():
        return float(torch.linalg.norm(factor.detach() @ in_complement - rho * out_complement))


def relative_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    r""":math:`\|a - b\|_F / \|a\|_F`."""
    with torch.no_grad():
        return float(torch.linalg.norm(a - b) / torch.linalg.norm(a))
