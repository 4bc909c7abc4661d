"""Positive and hyperbolic random features (FAVOR+; Choromanski et al., ICLR 2021).

For the unit softmax kernel ``exp(u.v)`` with ``w ~ N(0, I_d)``:

* ``positive``: ``g_i(u) = exp(w_i.u - |u|^2/2)``, since
  ``E[exp(w.(u + v))] = exp(|u + v|^2 / 2)`` (Lemma 1);
* ``hyperbolic``: ``g_i(u) = exp(-|u|^2/2) [exp(w_i.u), exp(-w_i.u)] / sqrt(2)``, the
  antithetic pair, i.e. ``t_i = exp(-(|u|^2+|v|^2)/2) cosh(w_i.(u + v))`` (Lemma 1, Eq. 7).

Both are unbiased and strictly positive. For the Gaussian kernel the log-features get the
extra ``-|u|^2/2`` of :func:`kernelapprox.kernels.gaussian_softmax_log_factor`, so the
Gaussian positive map is ``exp(w.u - |u|^2)``: DiJiang's PFF prefactor ``e^{-|x|^2}``
(Chen et al., ICML 2024, Eq. 9). Everything is computed in log space.
"""

from __future__ import annotations

import math

import torch

from kernelapprox.features._base import FeatureMap, _may_overwrite, add
from kernelapprox.kernels import gaussian_softmax_log_factor


class _Exponential(FeatureMap):
    exponential = True
    supported_kernels = ("softmax", "gaussian")

    def log_row_scale(self, u: torch.Tensor, t: dict[str, torch.Tensor]) -> torch.Tensor | None:
        """``-|u|^2/2`` (softmax target) or ``-|u|^2`` (Gaussian target): shape ``u.shape[:-1]``.

        The log-features are ``log g_i(u) = r(u) + h_i(u)`` with ``h_i`` linear in ``u``
        (:meth:`_log_blocks`); attention adds ``r`` to its per-token log-scale instead of to
        every log-feature, which keeps ``|h_i| ~ |w_i| |u|`` (not ``|u|^2``) in the rounding.
        """
        half = gaussian_softmax_log_factor(u)
        return half if self.kernel.unit == "softmax" else 2.0 * half

    def _projection(self, u: torch.Tensor, t: dict[str, torch.Tensor]) -> torch.Tensor:
        """``w_i . u`` for every frequency: ``(..., m)``."""
        return u @ t["W"].T

    def _log_blocks(self, u: torch.Tensor, t: dict[str, torch.Tensor]) -> torch.Tensor:
        """``log g_i(u) - r(u)``: ``(..., m, components)``."""
        return self._projection(u, t)[..., None]

    def log_per_frequency(
        self, u: torch.Tensor, t: dict[str, torch.Tensor], *, row_scale: bool = True
    ) -> torch.Tensor:
        logs = self._log_blocks(u, t)
        if not row_scale:
            return logs
        return add(logs, self.log_row_scale(u, t)[..., None, None], _may_overwrite(u, t))


class Positive(_Exponential, register=True):
    """``exp(w.u - |u|^2/2)``: positive random features (FAVOR+)."""

    name = "positive"
    variance_family = "positive"
    heavy_tailed = True

    def positive_form(self, t: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor] | None:
        """FAVOR+ is the positive form itself: the map's ``W`` and ``sqrt_xi``."""
        return t["W"], t["sqrt_xi"]


class Hyperbolic(_Exponential, register=True):
    """``exp(-|u|^2/2) [exp(w.u), exp(-w.u)] / sqrt(2)``: hyperbolic (antithetic) features."""

    name = "hyperbolic"
    variance_family = "hyperbolic"
    heavy_tailed = True
    components = 2

    def positive_form(self, t: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor] | None:
        """``[e^{w.u}, e^{-w.u}] e^{-|u|^2/2} / sqrt(2)``, component-major, is the positive
        form with ``W' = [W; -W]`` and ``sqrt_xi' = [sqrt_xi; sqrt_xi] / sqrt(2)``."""
        W, sqrt_xi = t["W"], t["sqrt_xi"]
        return torch.cat((W, -W)), torch.cat((sqrt_xi, sqrt_xi)) * math.sqrt(0.5)

    def log_row_scale(self, u: torch.Tensor, t: dict[str, torch.Tensor]) -> torch.Tensor | None:
        """``-|u|^2/2 - log(2)/2`` (softmax target; ``-|u|^2 - log(2)/2`` Gaussian)."""
        return super().log_row_scale(u, t) - 0.5 * math.log(2.0)

    def _log_blocks(self, u: torch.Tensor, t: dict[str, torch.Tensor]) -> torch.Tensor:
        z = self._projection(u, t)
        return torch.stack((z, -z), dim=-2).transpose(-1, -2)  # see FeatureMap.flatten
