r"""Deep matrix factorizations :math:`W_{L:1} = W_L \cdots W_1` and their compressed form.

Reference: Yaras, Wang, Balzano, Qu, *Compressible Dynamics in Deep Overparameterized Low-Rank
Learning & Adaptation*, ICML 2024 (arXiv 2406.04112), §2-3; notes ``lowrank_dynamics.md`` §1.1,
§1.3.

* :class:`DeepFactorization` -- ``L`` factors, :math:`W_1 \in \mathbb R^{w\times d_\text{in}}`,
  :math:`W_l \in \mathbb R^{w\times w}`, :math:`W_L \in \mathbb R^{d_\text{out}\times w}`, each
  initialised as :math:`\varepsilon O_l` with :math:`O_l` Haar (semi-)orthogonal.
* :class:`CompressedFactorization` -- :math:`U\,\widetilde W_L\cdots\widetilde W_1\,V^\top` with
  outer factors :math:`U \in \mathbb R^{d_\text{out}\times k}`,
  :math:`V \in \mathbb R^{d_\text{in}\times k}` and inner factors
  :math:`\widetilde W_l(0) = \varepsilon I_k`; :func:`kernelapprox.dynamics.compress` builds it.

Both are ``torch.nn.Module`` whose ``forward()`` returns the end-to-end matrix and whose
:meth:`parameter_groups` gives the optimizer groups (the compressed model trains its outer
factors with the *discrepant* learning rate :math:`\gamma\eta`).
"""

from __future__ import annotations

from typing import Any

import torch

from kernelapprox._validation import (
    check_nonnegative_float,
    check_positive_float,
    check_positive_int,
)
from kernelapprox.dynamics._common import (
    DEFAULT_DTYPE,
    check_dtype,
    torch_generator,
)


def orthogonal_factor(
    rows: int, cols: int, *, eps: float, generator: torch.Generator, dtype: torch.dtype
) -> torch.Tensor:
    r""":math:`\varepsilon O` with :math:`O` Haar-distributed with orthonormal rows or columns.

    Uses ``torch.nn.init.orthogonal_`` (QR of a Gaussian matrix with the sign fix), then
    multiplies by ``eps`` -- the initialization of the reference code (``init_net``).
    """
    factor = torch.empty(rows, cols, dtype=dtype)
    torch.nn.init.orthogonal_(factor, generator=generator)
    return factor.mul_(eps)


def chain_product(factors: list[torch.Tensor] | torch.nn.ParameterList) -> torch.Tensor:
    r""":math:`W_L \cdots W_1` for ``factors = [W_1, ..., W_L]`` (applied right to left)."""
    product = factors[0]
    for factor in factors[1:]:
        product = factor @ product
    return product


class DeepFactorization(torch.nn.Module):
    r"""Deep factorization :math:`W_{L:1} = W_L\cdots W_1` with orthogonal init at scale ``eps``.

    Parameters
    ----------
    out_dim : int
        Rows :math:`d_\text{out}` of the end-to-end matrix.
    in_dim : int, optional
        Columns :math:`d_\text{in}`; defaults to ``out_dim`` (square).
    depth : int
        Number of factors :math:`L \ge 1` (the experiments use 3).
    width : int, optional
        Inner width :math:`w`; defaults to ``max(out_dim, in_dim)`` (full width).
    eps : float
        Init scale: :math:`W_l(0) = \varepsilon O_l`, :math:`O_l` Haar (semi-)orthogonal.
    seed : int, SeedSequence or torch.Generator, optional
        Determines the :math:`O_l`.
    dtype : torch.dtype
        ``torch.float64`` by default.

    Examples
    --------
    >>> import torch
    >>> model = DeepFactorization(4, depth=3, eps=0.1, seed=0)
    >>> bool(torch.allclose(model().T @ model(), 1e-6 * torch.eye(4, dtype=torch.float64)))
    True
    """

    def __init__(
        self,
        out_dim: int,
        in_dim: int | None = None,
        *,
        depth: int = 3,
        width: int | None = None,
        eps: float = 1e-3,
        seed: Any = None,
        dtype: torch.dtype = DEFAULT_DTYPE,
    ) -> None:
        super().__init__()
        self.out_dim = check_positive_int(out_dim, "out_dim")
        self.in_dim = self.out_dim if in_dim is None else check_positive_int(in_dim, "in_dim")
        self.depth = check_positive_int(depth, "depth")
        default_width = max(self.out_dim, self.in_dim)
        self.width = default_width if width is None else check_positive_int(width, "width")
        self.eps = check_positive_float(eps, "eps")
        dtype = check_dtype(dtype)
        gen = torch_generator(seed)
        shapes = self._shapes()
        self.factors = torch.nn.ParameterList(
            [
                torch.nn.Parameter(
                    orthogonal_factor(r, c, eps=self.eps, generator=gen, dtype=dtype)
                )
                for r, c in shapes
            ]
        )

    def _shapes(self) -> list[tuple[int, int]]:
        if self.depth == 1:
            return [(self.out_dim, self.in_dim)]
        return (
            [(self.width, self.in_dim)]
            + [(self.width, self.width)] * (self.depth - 2)
            + [(self.out_dim, self.width)]
        )

    def end_to_end(self) -> torch.Tensor:
        r"""The end-to-end matrix :math:`W_L \cdots W_1`."""
        return chain_product(self.factors)

    def forward(self) -> torch.Tensor:
        return self.end_to_end()

    def parameter_groups(self, lr: float, gamma: float = 1.0) -> list[dict[str, Any]]:
        """One optimizer group holding every factor at learning rate ``lr`` (``gamma`` unused)."""
        return [{"params": list(self.factors), "lr": lr}]

    def __repr__(self) -> str:
        return (
            f"DeepFactorization(out_dim={self.out_dim}, in_dim={self.in_dim}, depth={self.depth}, "
            f"width={self.width}, eps={self.eps:g})"
        )


class CompressedFactorization(torch.nn.Module):
    r"""Compressed factorization :math:`U\,\widetilde W_L \cdots \widetilde W_1\,V^\top`.

    Parameters
    ----------
    left : torch.Tensor, shape (d_out, k)
        :math:`U = U_{L,1}`, orthonormal columns.
    right : torch.Tensor, shape (d_in, k)
        :math:`V = V_{1,1}`, orthonormal columns.
    depth : int
        Number of inner :math:`k\times k` factors, each initialised to :math:`\varepsilon I_k`.
    eps : float
        Inner init scale.

    Notes
    -----
    The reference code stores the list ``[V^T, eps I, ..., eps I, U]`` (``L + 2`` factors,
    law-of-parsimony ``compress_network``). The outer factors are trained with learning rate
    :math:`\gamma\eta` (§1.3 step 6); with :math:`\gamma = 0` they are frozen
    (``requires_grad=False``).
    """

    def __init__(self, left: torch.Tensor, right: torch.Tensor, *, depth: int, eps: float) -> None:
        super().__init__()
        if left.ndim != 2 or right.ndim != 2 or left.shape[1] != right.shape[1]:
            raise ValueError(
                "left and right must be matrices with the same number of columns, got shapes "
                f"{tuple(left.shape)} and {tuple(right.shape)}"
            )
        self.depth = check_positive_int(depth, "depth")
        self.eps = check_positive_float(eps, "eps")
        k = left.shape[1]
        self.out_dim, self.in_dim, self.width = left.shape[0], right.shape[0], k
        self.left = torch.nn.Parameter(left.detach().clone())
        self.right = torch.nn.Parameter(right.detach().clone())
        eye = torch.eye(k, dtype=left.dtype, device=left.device)
        self.factors = torch.nn.ParameterList(
            [torch.nn.Parameter(self.eps * eye.clone()) for _ in range(self.depth)]
        )
        #: ``U_perp V_perp^T`` of the full model at compression time (set by ``compress``):
        #: the full end-to-end map is this model's plus ``rho(t)^L`` times it.
        self.register_buffer("complement", None)

    def inner_product(self) -> torch.Tensor:
        r""":math:`\widetilde W_L \cdots \widetilde W_1`, shape (k, k)."""
        return chain_product(self.factors)

    def end_to_end(self) -> torch.Tensor:
        r""":math:`U\,\widetilde W_{L:1}\,V^\top`, computed as ``(U M) V^T`` in O(d^2 k)."""
        return (self.left @ self.inner_product()) @ self.right.T

    def forward(self) -> torch.Tensor:
        return self.end_to_end()

    def parameter_groups(self, lr: float, gamma: float = 0.0) -> list[dict[str, Any]]:
        r"""Inner factors at ``lr``; outer factors at ``gamma * lr`` (frozen when ``gamma == 0``).

        Freezing sets ``requires_grad=False`` on :math:`U, V`, so no gradient is computed for
        them; a later call with ``gamma > 0`` unfreezes them.
        """
        gamma = check_nonnegative_float(gamma, "gamma")
        outer = [self.left, self.right]
        for p in outer:
            p.requires_grad_(gamma > 0.0)
        groups: list[dict[str, Any]] = [{"params": list(self.factors), "lr": lr}]
        if gamma > 0.0:
            groups.append({"params": outer, "lr": gamma * lr})
        return groups

    def __repr__(self) -> str:
        return (
            f"CompressedFactorization(out_dim={self.out_dim}, in_dim={self.in_dim}, "
            f"width={self.width}, depth={self.depth}, eps={self.eps:g})"
        )
