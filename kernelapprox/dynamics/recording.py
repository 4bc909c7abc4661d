r"""A recorder of training trajectories: what :func:`~kernelapprox.dynamics.train` passes to
``recorder(t, model, end_to_end)`` at each of its ``record_steps``, kept for analysis.

At every recorded step :class:`TrajectoryRecorder` keeps the step, the singular values of
every factor and the end-to-end matrix; given the invariant bases
:math:`U_1, \dots, U_{L+1}` of the invariant-subspace theorem (Yaras et al., ICML 2024;
:func:`~kernelapprox.dynamics.invariant_bases`) and the block width :math:`k = 2r`, also

* the *leakage* of each factor out of the invariant complement,
  :math:`\|A - cU_{l+1,2}\|_F/\|A\|_F` with :math:`A = W_l U_{l,2}`
  (:func:`~kernelapprox.dynamics.complement_leakage`), and the fitted :math:`c`, which the
  theorem says is :math:`\rho(t)`;
* the largest principal angle between :math:`W_l U_{l,2}` and :math:`U_{l+1,2}` (complement)
  and between :math:`W_l U_{l,1}` and :math:`U_{l+1,1}` (block);

and, given a target basis (e.g. the target's top-:math:`r` left singular vectors), the
principal angles between it and the top-:math:`r` left singular subspace of the end-to-end
matrix (smallest first, as ``scipy.linalg.subspace_angles`` reversed).
"""

from __future__ import annotations

import numpy as np
import torch

from kernelapprox._validation import check_bool
from kernelapprox.dynamics.diagnostics import (
    complement_leakage,
    largest_principal_angle,
    principal_angles,
    singular_values,
)

__all__ = ["TrajectoryRecorder"]


class TrajectoryRecorder:
    """Callable ``recorder(t, model, end_to_end)`` for :func:`~kernelapprox.dynamics.train`.

    Parameters
    ----------
    bases : list of Tensor, optional
        Orthogonal bases :math:`U_1..U_{L+1}` (``(d, d)`` each) whose first ``n_block``
        columns span the moving block; enables leakage and angle records.
    n_block : int, optional
        The block width :math:`k = 2r` (needed with ``bases``).
    target_basis : Tensor ``(d, r)``, optional
        Enables the angles between the learned and the target column spaces.
    keep_factors : bool
        Also keep a copy of every factor at every recorded step (memory ``L d^2`` per step).

    Attributes
    ----------
    steps, spectra, end_to_end, leakage, coef, block_angle, complement_angle,
    target_angles, factors : lists, one entry per recorded step (per-layer lists inside).
    """

    def __init__(
        self,
        bases: list[torch.Tensor] | None = None,
        n_block: int | None = None,
        target_basis: torch.Tensor | None = None,
        *,
        keep_factors: bool = False,
    ) -> None:
        keep_factors = check_bool(keep_factors, "keep_factors")
        if (bases is None) != (n_block is None):
            raise ValueError("pass bases and n_block together (or neither)")
        if n_block is not None and (not isinstance(n_block, int) or n_block < 0):
            raise ValueError(f"n_block must be a non-negative int, got {n_block!r}")
        self.bases = bases
        self.k = n_block
        self.target_basis = target_basis
        self.keep_factors = bool(keep_factors)
        self.steps: list[int] = []
        self.spectra: list[list[np.ndarray]] = []
        self.end_to_end: list[torch.Tensor] = []
        self.leakage: list[list[float]] = []
        self.coef: list[list[float]] = []
        self.block_angle: list[list[float]] = []
        self.complement_angle: list[list[float]] = []
        self.target_angles: list[np.ndarray] = []
        self.factors: list[list[torch.Tensor]] = []

    def __call__(self, step: int, model: torch.nn.Module, end_to_end: torch.Tensor) -> None:
        self.steps.append(int(step))
        weights = [factor.detach() for factor in model.factors]
        self.spectra.append([singular_values(w) for w in weights])
        self.end_to_end.append(end_to_end.detach().clone())
        if self.keep_factors:
            self.factors.append([w.clone() for w in weights])
        if self.bases is not None:
            self._record_subspaces(weights)
        if self.target_basis is not None:
            r = self.target_basis.shape[1]
            learned = torch.linalg.svd(end_to_end.detach())[0][:, :r]
            self.target_angles.append(principal_angles(learned, self.target_basis))

    def _record_subspaces(self, weights: list[torch.Tensor]) -> None:
        k = self.k
        leak, coef, block, comp = [], [], [], []
        for l, w in enumerate(weights):
            u_in, u_out = self.bases[l], self.bases[l + 1]
            value, c = complement_leakage(w, u_in[:, k:], u_out[:, k:])
            leak.append(value)
            coef.append(c)
            if k < w.shape[0]:
                comp.append(largest_principal_angle(w @ u_in[:, k:], u_out[:, k:]))
            if k > 0:
                block.append(largest_principal_angle(w @ u_in[:, :k], u_out[:, :k]))
        self.leakage.append(leak)
        self.coef.append(coef)
        self.block_angle.append(block)
        self.complement_angle.append(comp)

    def spectra_array(self) -> np.ndarray:
        """Singular values as one array ``(recorded steps, layers, d)`` (descending)."""
        return np.asarray(self.spectra)
