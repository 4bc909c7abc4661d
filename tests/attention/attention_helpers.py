"""Helpers shared by the attention tests: inputs, maps and fla-style relative-RMS checks."""

from __future__ import annotations

import torch

from kernelapprox import features, kernels
from kernelapprox.attention import EluPlusOneMap, IdentityMap, relative_rms

#: Relative-RMS tolerances of an output against the fp64 oracle fed the same (rounded)
#: inputs: float64 is exact up to rounding; float32 accumulates ~1e-7 per product; the
#: half types are limited by rounding the output itself (2^-8 bf16, 2^-11 fp16) plus the
#: fp32 accumulation.
TOLERANCE = {torch.float64: 1e-10, torch.float32: 5e-6, torch.bfloat16: 6e-3, torch.float16: 8e-4}


def make_map(name: str, dim: int, m: int, *, sampler: str | None = None, seed: int = 0):
    if name == "identity":
        return IdentityMap(dim)
    if name == "elu":
        return EluPlusOneMap(dim)
    if sampler is None:  # the DCT maps draw only radii, from a one-dimensional point set
        sampler = "mc" if name.startswith("dct") else "orthogonal"
    return features.make(name, kernels.Softmax(), m, dim=dim, sampler=sampler, seed=seed)


def qkv(
    B: int,
    T: int,
    H: int,
    Hk: int,
    D: int,
    Dv: int,
    *,
    seed: int = 0,
    std: float = 1.0,
    dtype: torch.dtype = torch.float64,
    Tk: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(B, T, H, D)`` queries and ``(B, Tk, Hk, D|Dv)`` keys/values in layout bthd."""
    g = torch.Generator().manual_seed(seed)
    Tk = T if Tk is None else Tk
    q = std * torch.randn(B, T, H, D, generator=g, dtype=torch.float64)
    k = std * torch.randn(B, Tk, Hk, D, generator=g, dtype=torch.float64)
    v = torch.randn(B, Tk, Hk, Dv, generator=g, dtype=torch.float64)
    return q.to(dtype), k.to(dtype), v.to(dtype)


def assert_close(actual, expected, tol: float, what: str = "", *, atol: float = 1e-13) -> None:
    """fla-style check ``||a - e|| / ||e|| < tol`` that also fails on NaN/inf.

    A quantity that is exactly zero in exact arithmetic (e.g. ``dq`` with a single key) has
    a reference made of rounding noise; there the RMS difference is compared with ``atol``.
    """
    a = torch.as_tensor(actual).detach().to(torch.float64)
    e = torch.as_tensor(expected).detach().to(torch.float64)
    assert torch.isfinite(a).all(), f"{what}: non-finite values"
    err = relative_rms(a, e)
    rms = float((a - e).square().mean().sqrt())
    assert err < tol or rms < atol, (
        f"{what}: relative RMS error {err:.3g} >= {tol:.3g} (RMS difference {rms:.3g})"
    )
