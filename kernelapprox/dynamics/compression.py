r"""Compression of a deep factorization from its first gradient (Yaras et al., ICML 2024, §3).

Notes ``lowrank_dynamics.md`` §1.3. Given the full-width init :math:`W_l(0) = \varepsilon O_l`
and a rank estimate :math:`\hat r`:

1. :math:`G = \nabla_{W_1}\ell(\Theta(0))` (one backward pass through the full model);
2. :math:`U_g, V_g` = top-:math:`\hat r` left / right singular vectors of :math:`G`;
3. :math:`V_{1,1} = \operatorname{orth}\bigl([\,V_g,\; W_1(0)^\top U_g/\varepsilon\,]\bigr)
   \in \mathbb R^{d\times 2\hat r}`;
4. :math:`U_{L,1} = W_{L:1}(0)\,V_{1,1}/\varepsilon^L` (:math:`= O_{L:1}V_{1,1}`, orthonormal);
5. compressed model :math:`U_{L,1}\,\widetilde W_L\cdots\widetilde W_1\,V_{1,1}^\top`,
   :math:`\widetilde W_l(0) = \varepsilon I_{2\hat r}`.

Step 3 stacks the two bases **side by side** and orthonormalises them. The shortcut of taking
the top :math:`2\hat r` right singular vectors of the stacked matrix :math:`[G;\, G^\top W_1(0)]`
(law-of-parsimony ``compute_factor_v3``) weighs the second block by :math:`\varepsilon` and is
only right when :math:`G` has exact rank :math:`\hat r`; it is deliberately not offered.
"""

from __future__ import annotations

from typing import Any

import torch

from kernelapprox._validation import check_positive_float, check_positive_int
from kernelapprox.dynamics._common import orthonormal_columns
from kernelapprox.dynamics.factorization import CompressedFactorization, DeepFactorization
from kernelapprox.dynamics.objectives import Objective


def first_factor_gradient(model: DeepFactorization, objective: Objective) -> torch.Tensor:
    r""":math:`G = \nabla_{W_1} f(\Theta)` at the model's current parameters (one backward pass)."""
    loss = objective(model())
    (grad,) = torch.autograd.grad(loss, [model.factors[0]])
    return grad.detach()


def compressed_bases(
    first_factor: torch.Tensor,
    gradient: torch.Tensor,
    end_to_end: torch.Tensor,
    *,
    eps: float,
    depth: int,
    rank: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Outer bases :math:`(U_{L,1}, V_{1,1})` of the compressed model (steps 2-4 above).

    Parameters
    ----------
    first_factor : torch.Tensor, shape (w, d_in)
        :math:`W_1(0)`.
    gradient : torch.Tensor, shape (w, d_in)
        :math:`G = \nabla_{W_1}\ell` at initialization.
    end_to_end : torch.Tensor, shape (d_out, d_in)
        :math:`W_{L:1}(0)`.
    eps : float
        Init scale :math:`\varepsilon`.
    depth : int
        :math:`L`.
    rank : int
        :math:`\hat r`; the compressed width is :math:`2\hat r` (must not exceed ``d_in``).

    Returns
    -------
    left : torch.Tensor, shape (d_out, 2 r_hat)
        :math:`U_{L,1} = W_{L:1}(0) V_{1,1}/\varepsilon^L`. For a square full-width
        factorization it is orthonormal already; otherwise (rectangular layers) it is
        re-orthonormalised by QR, which keeps its span.
    right : torch.Tensor, shape (d_in, 2 r_hat)
        :math:`V_{1,1}`, orthonormal.
    """
    eps = check_positive_float(eps, "eps")
    depth = check_positive_int(depth, "depth")
    rank = check_positive_int(rank, "rank")
    d_in = first_factor.shape[1]
    if 2 * rank > min(d_in, end_to_end.shape[0], first_factor.shape[0]):
        raise ValueError(
            f"rank must satisfy 2 * rank <= min(d_out, d_in, width) = "
            f"{min(d_in, end_to_end.shape[0], first_factor.shape[0])}, got rank={rank}"
        )
    if not bool(torch.isfinite(gradient).all()):
        raise ValueError(
            f"the gradient at the initialization is not finite: eps={eps:g} is too large for "
            f"depth {depth} (the factors' product overflows); choose a smaller eps"
        )
    with torch.no_grad():
        u, _, vh = torch.linalg.svd(gradient, full_matrices=False)
        u_g, v_g = u[:, :rank], vh[:rank].T
        right = orthonormal_columns(torch.cat([v_g, first_factor.T @ u_g / eps], dim=1))
        left = end_to_end @ right / eps**depth
        gram = left.T @ left
        eye = torch.eye(gram.shape[0], dtype=gram.dtype, device=gram.device)
        if float(torch.linalg.norm(gram - eye)) > 1e-8:
            left = orthonormal_columns(left)
    return left, right


def compress(
    model: DeepFactorization, objective: Objective, *, rank: int
) -> CompressedFactorization:
    r"""The compressed factorization of ``model`` built from its first gradient on ``objective``.

    ``model`` must be at its orthogonal initialization :math:`W_l(0) = \varepsilon O_l` and
    have full width (``width == in_dim``, so that :math:`W_1` is square). Returns a
    :class:`CompressedFactorization` of width :math:`2\hat r` whose outer factors are
    :math:`U_{L,1}, V_{1,1}` and whose ``depth`` inner factors start at :math:`\varepsilon I`.

    Examples
    --------
    >>> import torch
    >>> from kernelapprox.dynamics import DeepFactorization, FullObservation, compress
    >>> phi = torch.zeros(6, 6, dtype=torch.float64); phi[0, 0] = 1.0
    >>> small = compress(DeepFactorization(6, eps=0.1, seed=1), FullObservation(phi), rank=1)
    >>> small.width
    2
    """
    if not isinstance(model, DeepFactorization):
        raise TypeError(f"model must be a DeepFactorization, got {type(model).__name__}")
    if model.depth < 2 or model.width != model.in_dim:
        raise ValueError(
            "compress needs a full-width factorization (width == in_dim) of depth >= 2; got "
            f"depth={model.depth}, width={model.width}, in_dim={model.in_dim}"
        )
    grad = first_factor_gradient(model, objective)
    with torch.no_grad():
        left, right = compressed_bases(
            model.factors[0].detach(),
            grad,
            model.end_to_end(),
            eps=model.eps,
            depth=model.depth,
            rank=rank,
        )
        o_prod = model.end_to_end() / model.eps**model.depth
        eye = torch.eye(right.shape[0], dtype=right.dtype, device=right.device)
        complement = o_prod @ (eye - right @ right.T)
    compressed = CompressedFactorization(left, right, depth=model.depth, eps=model.eps)
    compressed.complement = complement
    return compressed


def complement_term(compressed: CompressedFactorization, rho: float) -> torch.Tensor:
    r"""The part of the full end-to-end map the compressed model leaves out.

    For full observation (theorem, consequence 4),
    :math:`W_{L:1}(t) = U_{L,1}\widetilde W_{L:1}(t)V_{1,1}^\top + \rho(t)^L\,U_\perp V_\perp^\top`
    with :math:`U_\perp V_\perp^\top = O_{L:1}(I - V_{1,1}V_{1,1}^\top)`. This returns
    :math:`\rho^L U_\perp V_\perp^\top` from the matrix :func:`compress` stored when it built
    ``compressed`` (from the initial factors, so training either model does not change it);
    its Frobenius norm is :math:`\rho^L\sqrt{d - 2\hat r}`.
    """
    if not isinstance(compressed, CompressedFactorization) or compressed.complement is None:
        raise ValueError(
            "compressed must be a CompressedFactorization made by compress(), which records the "
            "complement of the full model at its initialization"
        )
    return rho**compressed.depth * compressed.complement


def parameters_of(model: Any) -> int:
    """Number of trainable scalars of ``model`` (all parameters, frozen ones included)."""
    return sum(p.numel() for p in model.parameters())
