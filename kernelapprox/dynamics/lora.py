r"""Deep LoRA: a depth-:math:`L` orthogonally initialised low-rank adapter for ``nn.Linear``.

Yaras, Wang, Balzano, Qu, ICML 2024 (arXiv 2406.04112), §4; official code
cjyaras/deep-lora-transformers (notes ``lowrank_dynamics.md`` §1.4). The adapted layer computes

.. math:: y = x W_0^\top + b + x\,\Delta W^\top,\qquad \Delta W = W_L\cdots W_1,

with :math:`W_l(0) = \varepsilon O_l` (Haar (semi-)orthogonal, default :math:`\varepsilon =
10^{-3}`), so :math:`\|\Delta W(0)\|_2 \le \varepsilon^L` and the adapter starts within
:math:`\varepsilon^L\|x\|` of the frozen base layer. The width is ``width`` when given, else
:math:`\max(d_\text{out}, d_\text{in})` (full width). There is no :math:`\alpha/r` scaling.

:meth:`DeepLoRA.compress` replaces the full-width factors by
:math:`U\,\widetilde W_L\cdots\widetilde W_1\,V^\top` of width ``rank`` built from one batch
gradient (§1.3 steps 2-4 with :math:`\hat r` = ``rank / 2``; for a layer with
:math:`d_\text{out} > d_\text{in}` the square end :math:`W_L^\top` plays the role of :math:`W_1`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

from kernelapprox._validation import (
    check_nonnegative_float,
    check_positive_float,
    check_positive_int,
)
from kernelapprox.dynamics._common import torch_generator
from kernelapprox.dynamics.compression import compressed_bases
from kernelapprox.dynamics.factorization import chain_product, orthogonal_factor


class DeepLoRA(torch.nn.Module):
    r"""Deep LoRA adapter around a frozen ``torch.nn.Linear``.

    Parameters
    ----------
    base : torch.nn.Linear
        The pretrained layer :math:`x \mapsto xW_0^\top + b`; its parameters are frozen.
    depth : int
        Number of factors :math:`L` (3 in the paper; 2 with a Gaussian/zero init would be
        vanilla LoRA, which this class does not model).
    eps : float
        Init scale :math:`\varepsilon` of every factor.
    width : int, optional
        Inner width; default :math:`\max(d_\text{out}, d_\text{in})`.
    seed : int, SeedSequence or torch.Generator, optional

    Examples
    --------
    >>> import torch
    >>> layer = DeepLoRA(torch.nn.Linear(8, 4, dtype=torch.float64), eps=1e-3, seed=0)
    >>> x = torch.randn(2, 8, dtype=torch.float64)
    >>> bool((layer(x) - layer.base(x)).norm() <= 1e-9 * x.norm())
    True
    """

    def __init__(
        self,
        base: torch.nn.Linear,
        *,
        depth: int = 3,
        eps: float = 1e-3,
        width: int | None = None,
        seed: Any = None,
    ) -> None:
        super().__init__()
        if not isinstance(base, torch.nn.Linear):
            raise TypeError(f"base must be a torch.nn.Linear, got {type(base).__name__}")
        self.base = base
        for p in base.parameters():
            p.requires_grad_(False)
        self.depth = check_positive_int(depth, "depth")
        self.eps = check_positive_float(eps, "eps")
        d_out, d_in = base.weight.shape
        self.in_features, self.out_features = d_in, d_out
        self.width = max(d_out, d_in) if width is None else check_positive_int(width, "width")
        gen = torch_generator(seed)
        dtype = base.weight.dtype
        if self.depth == 1:
            shapes = [(d_out, d_in)]
        else:
            w = self.width
            shapes = [(w, d_in)] + [(w, w)] * (self.depth - 2) + [(d_out, w)]
        self.factors = torch.nn.ParameterList(
            [
                torch.nn.Parameter(
                    orthogonal_factor(r, c, eps=self.eps, generator=gen, dtype=dtype).to(
                        base.weight.device
                    )
                )
                for r, c in shapes
            ]
        )
        self.left: torch.nn.Parameter | None = None
        self.right: torch.nn.Parameter | None = None

    @property
    def compressed(self) -> bool:
        """Whether :meth:`compress` has replaced the full-width factors."""
        return self.left is not None

    def delta_weight(self) -> torch.Tensor:
        r""":math:`\Delta W` (shape ``(out_features, in_features)``)."""
        inner = chain_product(self.factors)
        if self.left is None:
            return inner
        return (self.left @ inner) @ self.right.T

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = x if self.right is None else x @ self.right
        for factor in self.factors:
            z = z @ factor.T
        if self.left is not None:
            z = z @ self.left.T
        return self.base(x) + z

    def parameter_groups(self, lr: float, gamma: float = 1.0) -> list[dict[str, Any]]:
        r"""Optimizer groups: factors at ``lr``; compressed outer factors at ``gamma * lr``.

        With ``gamma == 0`` the outer factors are frozen (``requires_grad=False``).
        """
        lr = check_positive_float(lr, "lr")
        gamma = check_nonnegative_float(gamma, "gamma")
        groups: list[dict[str, Any]] = [{"params": list(self.factors), "lr": lr}]
        if self.left is not None:
            outer = [self.left, self.right]
            for p in outer:
                p.requires_grad_(gamma > 0.0)
            if gamma > 0.0:
                groups.append({"params": outer, "lr": gamma * lr})
        return groups

    @torch.no_grad()
    def _replace(self, left: torch.Tensor, right: torch.Tensor) -> None:
        k = left.shape[1]
        eye = torch.eye(k, dtype=left.dtype, device=left.device)
        self.factors = torch.nn.ParameterList(
            [torch.nn.Parameter(self.eps * eye.clone()) for _ in range(self.depth)]
        )
        self.left = torch.nn.Parameter(left.clone())
        self.right = torch.nn.Parameter(right.clone())
        self.width = k

    def compress(self, loss_fn: Callable[[DeepLoRA], torch.Tensor], *, rank: int) -> DeepLoRA:
        r"""Compress to width ``rank`` from one batch gradient, in place; returns ``self``.

        ``loss_fn(self)`` must return the scalar loss of one batch (it may involve the rest
        of a network that contains this adapter). Needs the full-width, freshly initialised
        adapter (depth >= 2) and an even ``rank``; the gradient of the square end factor
        gives :math:`\hat r = \mathrm{rank}/2` directions on each side (§1.3).

        When the batch gradient :math:`\partial\ell/\partial\Delta W` has rank at most
        :math:`\hat r` and the layer is square, the first GD step of the compressed adapter
        (outer factors frozen) changes :math:`\Delta W` exactly as the full one does.
        """
        rank = check_positive_int(rank, "rank", minimum=2)
        if rank % 2:
            raise ValueError(f"rank must be even (the compressed width is 2 * r_hat), got {rank}")
        if self.compressed:
            raise ValueError("this adapter is already compressed")
        if self.depth < 2:
            raise ValueError(f"compression needs depth >= 2, got depth={self.depth}")
        d_out, d_in = self.out_features, self.in_features
        if self.width != max(d_out, d_in):
            raise ValueError(
                f"compression needs the full-width adapter (width={max(d_out, d_in)}), "
                f"got width={self.width}"
            )
        if rank > min(d_out, d_in):
            raise ValueError(f"rank must be <= min(out, in) = {min(d_out, d_in)}, got {rank}")
        loss = loss_fn(self)
        if not isinstance(loss, torch.Tensor) or loss.ndim != 0:
            raise TypeError("loss_fn must return a scalar torch.Tensor")
        grads = torch.autograd.grad(loss, [self.factors[0], self.factors[-1]])
        with torch.no_grad():
            delta = self.delta_weight()
            if d_in >= d_out:  # W_1 is square: the construction as written
                left, right = compressed_bases(
                    self.factors[0],
                    grads[0],
                    delta,
                    eps=self.eps,
                    depth=self.depth,
                    rank=rank // 2,
                )
            else:  # W_L is square: transpose, W_L^T plays the role of W_1
                left_t, right_t = compressed_bases(
                    self.factors[-1].T,
                    grads[1].T,
                    delta.T,
                    eps=self.eps,
                    depth=self.depth,
                    rank=rank // 2,
                )
                left, right = right_t, left_t
        self._replace(left, right)
        return self

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"depth={self.depth}, width={self.width}, eps={self.eps:g}, "
            f"compressed={self.compressed}"
        )


def inject_deep_lora(
    model: torch.nn.Module, names: Iterable[str], **options: Any
) -> dict[str, DeepLoRA]:
    """Replace the ``nn.Linear`` submodules whose qualified names are in ``names`` by DeepLoRA.

    Every other parameter of ``model`` is left as is (freeze them yourself if wanted).
    Returns the adapters by name. ``options`` go to :class:`DeepLoRA`.
    """
    adapters = {}
    wanted = list(names)
    modules = dict(model.named_modules())
    for name in wanted:
        if name not in modules or not isinstance(modules[name], torch.nn.Linear):
            raise ValueError(f"names must list nn.Linear submodules of model; {name!r} is not one")
        parent_name, _, child = name.rpartition(".")
        parent = modules[parent_name] if parent_name else model
        adapter = DeepLoRA(modules[name], **options)
        setattr(parent, child, adapter)
        adapters[name] = adapter
    return adapters
