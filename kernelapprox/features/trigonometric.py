"""Trigonometric random features for shift-invariant kernels (and the softmax kernel).

For a shift-invariant unit kernel ``k(u - v) = E_w cos(w.(u - v))`` (Bochner):

* ``sincos``: ``g_i(u) = [cos(w_i.u), sin(w_i.u)]``; ``t_i = cos(w_i.(u - v))``
  (Rahimi & Recht, NIPS 2007; Sutherland & Schneider, UAI 2015 show it never has larger
  variance than ``cos_offset`` for the Gaussian kernel at equal output width);
* ``cos_offset``: ``g_i(u) = sqrt(2) cos(w_i.u + b_i)``, ``b_i ~ U[0, 2 pi)``:
  scikit-learn's ``RBFSampler`` convention;
* ``fourier``: ``g_i(u) = exp(-i w_i.u)`` (complex; Avron et al., JMLR 2016; DiJiang Eq. 7).

All three are unbiased. For the softmax kernel ``exp(u.v)`` they are multiplied by
``exp(|u|^2 / 2)`` (the Gaussian relation,
:func:`kernelapprox.kernels.gaussian_softmax_log_factor`), which keeps them unbiased but
with variance growing like ``exp(|u|^2 + |v|^2)`` (Choromanski et al., ICLR 2021, Lemma 2).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from kernelapprox.features._base import FeatureMap, _may_overwrite
from kernelapprox.kernels import gaussian_softmax_log_factor


class _Trigonometric(FeatureMap):
    supported_kernels = ("gaussian", "laplacian", "softmax")

    def _phase(self, u: torch.Tensor, t: dict[str, torch.Tensor]) -> torch.Tensor:
        return u @ t["W"].T

    def log_row_scale(self, u: torch.Tensor, t: dict[str, torch.Tensor]) -> torch.Tensor | None:
        """``r(u) = |u|^2/2`` when the target is the softmax kernel (the Gaussian relation
        ``exp(u.v) = exp(|u|^2/2) exp(|v|^2/2) exp(-|u - v|^2/2)``), else ``None``.

        In log space: ``exp(r)`` overflows float32 once ``|u|^2 > 177``; attention adds
        ``r`` to its log-scale instead of forming it (see :meth:`FeatureMap.log_row_scale`).
        """
        if self.kernel.unit != "softmax":
            return None
        return -gaussian_softmax_log_factor(u)

    def per_frequency(
        self,
        u: torch.Tensor,
        t: dict[str, torch.Tensor],
        *,
        weighted: bool = False,
        row_scale: bool = True,
    ) -> torch.Tensor:
        inplace = _may_overwrite(u, t)
        g = self._trig_blocks(self._phase(u, t), t, inplace)
        r = self.log_row_scale(u, t) if row_scale else None
        for factor in (
            t["sqrt_xi"][:, None] if weighted else None,
            None if r is None else torch.exp(r)[..., None, None],
        ):
            if factor is not None:
                g = g.mul_(factor) if inplace else g * factor
        return g

    def _trig_blocks(
        self, phase: torch.Tensor, t: dict[str, torch.Tensor], inplace: bool
    ) -> torch.Tensor:
        raise NotImplementedError


class SinCos(_Trigonometric, register=True):
    """``[cos(w.u), sin(w.u)]`` per frequency: output width ``2 m``."""

    name = "sincos"
    variance_family = "sincos"
    components = 2

    def _trig_blocks(
        self, phase: torch.Tensor, t: dict[str, torch.Tensor], inplace: bool
    ) -> torch.Tensor:
        # (..., 2, m) in memory, seen as (..., m, 2): see FeatureMap.flatten
        if not inplace:
            return torch.stack((torch.cos(phase), torch.sin(phase)), dim=-2).transpose(-1, -2)
        out = phase.new_empty((*phase.shape[:-1], 2, phase.shape[-1]))
        torch.cos(phase, out=out[..., 0, :])
        torch.sin(phase, out=out[..., 1, :])
        return out.transpose(-1, -2)


class CosOffset(_Trigonometric, register=True):
    """``sqrt(2) cos(w.u + b)`` with ``b ~ U[0, 2 pi)``: scikit-learn's ``RBFSampler`` map.

    Given the same frequencies and offsets it reproduces ``RBFSampler.transform``:
    ``RBFSampler(gamma=g)`` is ``Gaussian(length_scale=1/sqrt(2 g))`` with
    ``frequencies = random_weights_.T`` and ``offsets = random_offset_``.
    """

    name = "cos_offset"
    variance_family = "cos_offset"

    def _draw_extra(self, seed: np.random.SeedSequence) -> None:
        self.offsets = np.random.default_rng(seed).uniform(0.0, 2.0 * math.pi, self.n_features)

    def _set_extra(self, *, offsets: Any) -> None:
        offsets = np.asarray(offsets, dtype=np.float64)
        if offsets.shape != (self.n_features,) or not np.all(np.isfinite(offsets)):
            raise ValueError(f"offsets must be a finite array of shape ({self.n_features},)")
        self.offsets = offsets

    def _extra_tensors(self) -> dict[str, np.ndarray]:
        return {"b": self.offsets}

    def _phase(self, u: torch.Tensor, t: dict[str, torch.Tensor]) -> torch.Tensor:
        if u.ndim == 2:
            return torch.addmm(t["b"], u, t["W"].T)
        return u @ t["W"].T + t["b"]

    def _trig_blocks(
        self, phase: torch.Tensor, t: dict[str, torch.Tensor], inplace: bool
    ) -> torch.Tensor:
        g = phase.cos_() if inplace else torch.cos(phase)
        g = g.mul_(math.sqrt(2.0)) if inplace else g * math.sqrt(2.0)
        return g[..., None]


class Fourier(_Trigonometric, register=True):
    """Complex exponentials ``exp(-i w.u)``: ``m`` complex features."""

    name = "fourier"
    variance_family = "sincos"
    complex_valued = True
    half_precision = False

    def _trig_blocks(
        self, phase: torch.Tensor, t: dict[str, torch.Tensor], inplace: bool
    ) -> torch.Tensor:
        return torch.polar(torch.ones_like(phase), -phase)[..., None]
