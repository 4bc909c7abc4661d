r"""Losses of a deep factorization, all of the form :math:`\tfrac12 c\,\|A(W) - b\|_F^2`.

The factor :math:`c` is fixed by ``reduction``: ``"sum"`` gives :math:`c = 1`, ``"mean"`` gives
:math:`c = 1/N` with :math:`N` the number of entries of the residual (for the masked loss all
:math:`d_\text{out} d_\text{in}` entries, observed or not, as in the official code of Yaras et al.,
ICML 2024). A mean-loss step size :math:`\eta` therefore equals a sum-loss step size
:math:`\eta/N`.

Three objectives are provided (reference notes ``lowrank_dynamics.md`` §1.1, §1.5):

* :class:`FullObservation` -- :math:`\tfrac12 c\|W - \Phi\|_F^2`;
* :class:`WhitenedRegression` -- :math:`\tfrac12 c\|W X - Y\|_F^2` with :math:`XX^\top = I`,
  :math:`Y = \Phi X` (its gradient equals the full-observation one);
* :class:`MaskedObservation` -- matrix completion, :math:`\tfrac12 c\|P_\Omega(W - \Phi)\|_F^2`.
"""

from __future__ import annotations

from typing import Any

import torch

from kernelapprox._validation import check_choice, check_positive_int
from kernelapprox.dynamics._common import DEFAULT_DTYPE, torch_generator

REDUCTIONS = ("mean", "sum")


def _as_matrix(value: Any, name: str, dtype: torch.dtype | None = None) -> torch.Tensor:
    tensor = torch.as_tensor(value, dtype=dtype)
    if tensor.ndim != 2 or 0 in tensor.shape:
        raise ValueError(f"{name} must be a non-empty 2-D matrix, got shape {tuple(tensor.shape)}")
    if not torch.is_floating_point(tensor):
        tensor = tensor.to(DEFAULT_DTYPE)
    if not bool(torch.isfinite(tensor).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
    return tensor


class Objective:
    r"""Base class: a loss of the end-to-end matrix :math:`W = W_L \cdots W_1`.

    Attributes
    ----------
    target : torch.Tensor
        The matrix :math:`\Phi` to be recovered.
    reduction : {"mean", "sum"}
        How the squared residual is reduced; see the module docstring.
    scale : float
        The factor :math:`c` in front of :math:`\tfrac12\|\cdot\|_F^2`.
    """

    target: torch.Tensor
    reduction: str
    scale: float

    def __call__(self, end_to_end: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def relative_error(self, end_to_end: torch.Tensor) -> float:
        r""":math:`\|W - \Phi\|_F / \|\Phi\|_F` over all entries."""
        with torch.no_grad():
            return float(
                torch.linalg.norm(end_to_end - self.target) / torch.linalg.norm(self.target)
            )

    def __repr__(self) -> str:
        shape = tuple(self.target.shape)
        return f"{type(self).__name__}(shape={shape}, reduction={self.reduction!r})"


class FullObservation(Objective):
    r"""Fully observed factorization loss :math:`f(W) = \tfrac12 c\,\|W - \Phi\|_F^2`.

    Parameters
    ----------
    target : array_like, shape (d_out, d_in)
        :math:`\Phi`.
    reduction : {"sum", "mean"}
        ``"mean"`` divides by ``d_out * d_in``.
    """

    def __init__(self, target: Any, *, reduction: str = "sum") -> None:
        self.target = _as_matrix(target, "target")
        self.reduction = check_choice(reduction, "reduction", REDUCTIONS)
        self.scale = 1.0 if reduction == "sum" else 1.0 / self.target.numel()

    def __call__(self, end_to_end: torch.Tensor) -> torch.Tensor:
        return 0.5 * self.scale * (end_to_end - self.target).square().sum()


class WhitenedRegression(Objective):
    r"""Whitened regression :math:`f(W) = \tfrac12 c\,\|W X - Y\|_F^2` with :math:`XX^\top = I`.

    Because :math:`XX^\top = I`, :math:`\nabla_W f = c\,(WX - Y)X^\top = c\,(W - \Phi)` with
    :math:`\Phi = YX^\top`: the dynamics are those of :class:`FullObservation` with the same
    ``scale`` (Yaras et al., arXiv 2306.01154, the precursor of the ICML 2024 paper).

    Parameters
    ----------
    inputs : array_like, shape (d_in, n)
        :math:`X`, with orthonormal rows (checked to 1e-8).
    outputs : array_like, shape (d_out, n)
        :math:`Y`.
    reduction : {"sum", "mean"}
        ``"mean"`` divides by ``d_out * n``.
    """

    def __init__(self, inputs: Any, outputs: Any, *, reduction: str = "sum") -> None:
        x = _as_matrix(inputs, "inputs")
        y = _as_matrix(outputs, "outputs", dtype=x.dtype)
        if x.shape[1] != y.shape[1]:
            raise ValueError(
                f"inputs and outputs must have the same number of samples (columns), got "
                f"{x.shape[1]} and {y.shape[1]}"
            )
        gram = x @ x.T
        eye = torch.eye(x.shape[0], dtype=x.dtype)
        if float(torch.linalg.norm(gram - eye)) > 1e-8 * x.shape[0]:
            raise ValueError("inputs must be whitened: inputs @ inputs.T must equal the identity")
        self.inputs, self.outputs = x, y
        self.target = y @ x.T
        self.reduction = check_choice(reduction, "reduction", REDUCTIONS)
        self.scale = 1.0 if reduction == "sum" else 1.0 / y.numel()

    def __call__(self, end_to_end: torch.Tensor) -> torch.Tensor:
        return 0.5 * self.scale * (end_to_end @ self.inputs - self.outputs).square().sum()


def whitened_regression(
    target: Any, *, n_samples: int, reduction: str = "sum", seed: Any = None
) -> WhitenedRegression:
    r"""A :class:`WhitenedRegression` problem with :math:`Y = \Phi X` and Haar-random whitened X.

    ``X`` is the first ``d_in`` rows of a Haar orthogonal ``n_samples x n_samples`` matrix, so
    :math:`XX^\top = I`; ``n_samples >= d_in`` is required.
    """
    phi = _as_matrix(target, "target")
    n = check_positive_int(n_samples, "n_samples")
    if n < phi.shape[1]:
        raise ValueError(f"n_samples must be >= the input dimension {phi.shape[1]}, got {n}")
    basis = torch.empty(n, n, dtype=phi.dtype)
    torch.nn.init.orthogonal_(basis, generator=torch_generator(seed))
    inputs = basis[: phi.shape[1]]
    return WhitenedRegression(inputs, phi @ inputs, reduction=reduction)


class MaskedObservation(Objective):
    r"""Matrix completion loss :math:`f(W) = \tfrac12 c\,\|P_\Omega(W - \Phi)\|_F^2`.

    Parameters
    ----------
    target : array_like, shape (d_out, d_in)
        :math:`\Phi`.
    mask : array_like of bool or {0, 1}, same shape
        :math:`\Omega`, the observed entries.
    reduction : {"mean", "sum"}
        ``"mean"`` divides by the number of **all** entries ``d_out * d_in`` (official code).
    """

    def __init__(self, target: Any, mask: Any, *, reduction: str = "mean") -> None:
        self.target = _as_matrix(target, "target")
        mask = torch.as_tensor(mask)
        if mask.shape != self.target.shape:
            raise ValueError(
                f"mask must have the shape of target {tuple(self.target.shape)}, got "
                f"{tuple(mask.shape)}"
            )
        if mask.dtype != torch.bool:
            if not bool(((mask == 0) | (mask == 1)).all()):
                raise ValueError("mask must be boolean or contain only 0 and 1")
            mask = mask.bool()
        if not bool(mask.any()):
            raise ValueError("mask must observe at least one entry")
        self.mask = mask
        self.weights = mask.to(self.target.dtype)
        self.reduction = check_choice(reduction, "reduction", REDUCTIONS)
        self.scale = 1.0 if reduction == "sum" else 1.0 / self.target.numel()

    def __call__(self, end_to_end: torch.Tensor) -> torch.Tensor:
        return 0.5 * self.scale * ((end_to_end - self.target) * self.weights).square().sum()

    def relative_recovery_error(self, end_to_end: torch.Tensor) -> float:
        r"""Relative error on the unobserved entries, :math:`\|P_{\Omega^c}(W - \Phi)\|_F /
        \|P_{\Omega^c}\Phi\|_F` (``nan``-free: returns 0/0 -> 0 when everything is observed)."""
        with torch.no_grad():
            hidden = 1.0 - self.weights
            den = torch.linalg.norm(self.target * hidden)
            if float(den) == 0.0:
                return 0.0
            return float(torch.linalg.norm((end_to_end - self.target) * hidden) / den)

    def recovery_error(self, end_to_end: torch.Tensor) -> float:
        r"""The official "recovery error" :math:`\tfrac12\,\mathrm{mean}((1-M)\odot(W-\Phi)^2)`
        over all ``d_out * d_in`` entries (law-of-parsimony ``loss.py``)."""
        with torch.no_grad():
            hidden = 1.0 - self.weights
            return float(0.5 * ((end_to_end - self.target) * hidden).square().mean())
