"""DiJiang's DCT feature maps (Chen et al., "DiJiang: Efficient Large Language Models through
Compact Kernelization", ICML 2024, arXiv 2403.19928), as the paper defines them and as the
released code computes them.

``dct`` (paper, Eq. 9 with the DCT directions of Eq. 11-12): frequencies ``w_i = t_i c_i``
with ``c_i`` the rows of the orthonormal DCT-II matrix ``C[k, n] = s_k cos(pi k (2n+1) / (2d))``
(``s_0 = sqrt(1/d)``, ``s_k = sqrt(2/d)``), radii ``t_i = F^{-1}(u_i)`` from a (quasi-)random
one-dimensional point set, per-frequency weights ``D`` (the "W" of WDCF, uniform by default),
and the positive-feature form

.. math:: \\phi(x) = \\bigl[\\sqrt{\\xi_i}\\, e^{t_i c_i \\cdot u - |u|^2}\\bigr]_i
          \\quad\\text{(Gaussian target; } -|u|^2/2 \\text{ for the softmax target).}

Theorem 3.2 needs ``F = chi_d`` (``radial="chi"``, the default) *and* directions uniformly
distributed on the sphere. The ``d`` DCT rows are fixed orthonormal directions, so for a
finite ``m`` the map is **biased**: ``E_t[k_hat] = (1/m) sum_i E_r[exp(r c_i.(u+v))] e^{...}``
is a spherical quadrature of the true integral, exact only in the limit of equidistributed
directions. ``unbiased`` is therefore ``False``; ``proofs/`` measures the finite-m bias.
For ``m > d`` (the paper uses ``m = d``) further blocks use the DCT basis with independent
Rademacher sign flips of the input coordinates (``C diag(s_b)``), which are again
orthonormal directions and keep the ``O(d log d)`` transform; the paper only says "different
boundary conditions" without specifying them. ``transform="fast"`` computes ``C u`` through
an FFT in ``O(d log d)``; ``transform="dense"`` multiplies by the ``(m, d)`` matrix.

``dct_released`` (YuchuanTian/DiJiang, ``modeling_gpt_neox_dijiang.py``): the frozen
projection ``P = C diag(t)`` with ``t_i = Phi^{-1}(u_i)`` standard-normal (not ``chi_d``)
and the map ``phi(x) = softmax(x P)`` over the feature axis. Since ``x P = diag(t) C^T x``,
the directions are the *columns* of ``C`` (an inverse DCT, DCT-III). Its Gram matrix is not
an estimate of ``exp(q.k)``: without the softmax normalization,
``E_t[sum_j exp(t_j (a_j + b_j))] = sum_j exp((a_j + b_j)^2 / 2)`` with ``a = C^T q``,
``b = C^T k``, an *additive* kernel; the softmax divides by per-token normalizers. It is
kept as a different estimator, compared against the softmax kernel it replaces in attention
(row-normalized, as attention uses it).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from kernelapprox._validation import check_choice, spawn
from kernelapprox.features._base import require_point_sampler
from kernelapprox.features.exponential import _Exponential
from kernelapprox.kernels import NORMAL
from kernelapprox.sampling.orthogonal import stacked_blocks


def dct_matrix(d: int) -> np.ndarray:
    """Orthonormal DCT-II matrix ``C[k, n] = s_k cos(pi k (2n + 1) / (2d))``, rows = frequency."""
    k = np.arange(d)[:, None]
    n = np.arange(d)[None, :]
    C = np.sqrt(2.0 / d) * np.cos(np.pi * k * (2 * n + 1) / (2 * d))
    C[0] /= np.sqrt(2.0)
    return C


def _half_sample_twiddle(N: int, like: torch.Tensor, sign: float) -> torch.Tensor:
    k = torch.arange(N, dtype=like.real.dtype, device=like.device)
    return torch.polar(torch.ones_like(k), sign * math.pi * k / (2 * N))


def _ortho_scale(N: int, like: torch.Tensor) -> torch.Tensor:
    scale = torch.full((N,), math.sqrt(1.0 / (2 * N)), dtype=like.dtype, device=like.device)
    scale[0] = math.sqrt(1.0 / (4 * N))
    return scale


def dct2_ortho(x: torch.Tensor) -> torch.Tensor:
    """Orthonormal DCT-II along the last axis, ``C x``, in ``O(d log d)`` (Makhoul, 1980).

    Equals ``scipy.fft.dct(x, norm="ortho")``.
    """
    N = x.shape[-1]
    v = torch.cat((x[..., ::2], x[..., 1::2].flip(-1)), dim=-1)
    V = torch.fft.fft(v, dim=-1)
    return 2.0 * (V * _half_sample_twiddle(N, x, -1.0)).real * _ortho_scale(N, x)


def dct3_ortho(y: torch.Tensor) -> torch.Tensor:
    """Orthonormal DCT-III along the last axis, ``C^T y`` (the inverse of :func:`dct2_ortho`).

    Equals ``scipy.fft.idct(y, norm="ortho")``.
    """
    N = y.shape[-1]
    z = y / _ortho_scale(N, y)
    shifted = torch.cat((torch.zeros_like(z[..., :1]), z[..., 1:].flip(-1)), dim=-1)
    V = torch.complex(z, -shifted) * _half_sample_twiddle(N, y, 1.0) / 2.0
    v = torch.fft.ifft(V, dim=-1).real
    half = (N + 1) // 2
    x = torch.empty_like(y)
    x[..., ::2] = v[..., :half]
    x[..., 1::2] = v[..., half:].flip(-1)
    return x


class _DCTBase(_Exponential):
    """Shared machinery: DCT directions in sign-flipped blocks, radii from a 1-D point set."""

    unbiased = False
    needs_point_set = True
    half_precision = False  # the fast transform's FFT has no half-precision CPU kernel
    #: ``"chi"``: ``t = F_{chi_d}^{-1}(u)``; ``"normal"``: ``t = Phi^{-1}(u)``.
    radial: str = "chi"
    #: Whether the directions are rows (``C``, paper) or columns (``C^T``, released code).
    transposed: bool = False

    def __init__(self, kernel: Any, n_features: int, *, transform: str = "fast", **kwargs: Any):
        self.transform = check_choice(transform, "transform", ("fast", "dense"))
        self.half_precision = self.transform == "dense"
        super().__init__(kernel, n_features, **kwargs)

    def _draw(self, seed: np.random.SeedSequence) -> np.ndarray:
        sampler = require_point_sampler(self.sampler, self.name)
        radius_seed, sign_seed = spawn(seed, 2)
        u = sampler.points(self.n_features, 1, radius_seed)[:, 0]
        if self.radial == "chi":
            self.radii = NORMAL.radial_ppf(u, self.dim)
        else:
            self.radii = NORMAL.ppf(u)
        n_blocks = stacked_blocks(self.n_features, self.dim)
        signs = np.random.default_rng(sign_seed).choice([-1.0, 1.0], size=(n_blocks, self.dim))
        signs[0] = 1.0
        self.signs = signs
        return self.radii[:, None] * self.directions()

    def directions(self) -> np.ndarray:
        """The unit directions ``(m, d)``: DCT rows (``C``, paper) or columns (``C^T``, code)
        in sign-flipped blocks, so that the frequencies are ``radii[:, None] * directions``."""
        basis = dct_matrix(self.dim)
        basis = basis.T if self.transposed else basis
        return np.concatenate([basis * s for s in self.signs])[: self.n_features]

    def _set_extra(self, **extra: Any) -> None:
        super()._set_extra(**extra)
        self.transform = "dense"  # arbitrary frequencies have no fast transform

    def _extra_tensors(self) -> dict[str, np.ndarray]:
        if self.transform == "dense":
            return {}
        return {"radii": self.radii, "signs": self.signs}

    def _projection(self, u: torch.Tensor, t: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.transform == "dense":
            return u @ t["W"].T
        transform = dct3_ortho if self.transposed else dct2_ortho
        blocks = transform(u[..., None, :] * t["signs"])  # (..., n_blocks, d)
        z = blocks.reshape(*blocks.shape[:-2], -1)[..., : self.n_features]
        return z * t["radii"]


class DCT(_DCTBase, register=True):
    """DiJiang's weighted DCT map as the paper defines it (biased for finite ``m``; see module doc).

    Parameters
    ----------
    radial : {"chi", "normal"}
        Radius law: ``chi_d`` as Theorem 3.2 needs (default) or standard normal as the
        released code uses.

    Other Parameters
    ----------------
    transform : {"fast", "dense"}
        FFT-based ``O(d log d)`` DCT or a dense ``O(m d)`` product (same values).
    """

    name = "dct"

    def __init__(self, kernel: Any, n_features: int, *, radial: str = "chi", **kwargs: Any):
        self.radial = check_choice(radial, "radial", ("chi", "normal"))
        super().__init__(kernel, n_features, **kwargs)

    def positive_form(self, t: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The paper's map for the softmax kernel, ``log phi_f = t_f c_f . u - |u|^2/2 + log
        sqrt(xi_f)``, is the positive form with ``w_f = t_f c_f``; when ``t`` holds the radii
        (the fast-transform map, possibly learnable) ``W = radii[:, None] * directions``, so
        that gradients reach the radii."""
        W = t["W"]
        if "radii" in t:
            directions = torch.as_tensor(self.directions(), dtype=W.dtype, device=W.device)
            W = t["radii"].to(W.dtype)[:, None] * directions
        return W, t["sqrt_xi"]


class DCTReleased(_DCTBase, register=True):
    """What DiJiang's released code computes: ``softmax(x C diag(t))`` over the feature axis.

    Targets the softmax kernel only in the row-normalized (attention) sense; see module doc.
    With uniform weights the features are exactly ``softmax(z)``, ``z = t * (C^T u)``.
    """

    name = "dct_released"
    radial = "normal"
    transposed = True
    supported_kernels = ("softmax",)

    def log_row_scale(self, u: torch.Tensor, t: dict[str, torch.Tensor]) -> torch.Tensor | None:
        """``None``: the softmax normalizer depends on the frequencies, not on ``|u|`` alone,
        and keeps ``log phi <= log sqrt(m)`` already."""
        return None

    def log_per_frequency(
        self, u: torch.Tensor, t: dict[str, torch.Tensor], *, row_scale: bool = True
    ) -> torch.Tensor:
        z = self._projection(u, t)
        log_softmax = z - torch.logsumexp(z, dim=-1, keepdim=True)
        return (log_softmax + 0.5 * math.log(self.n_features))[..., None]
