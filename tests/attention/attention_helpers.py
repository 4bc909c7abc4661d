"""Helpers shared by the attention tests: inputs, maps and fla-style relative-RMS checks."""

from __future__ import annotations

import torch

from kernelapprox import features, kernels
from kernelapprox.attention import EluPlusOneMap, IdentityMap, relative_rms
from kernelapprox.testing.attention import TOLERANCES

#: Relative-RMS tolerances of an output against the fp64 oracle fed the same (rounded)
#: inputs: the ``oracle`` column of the one tolerance table,
#: :data:`kernelapprox.testing.attention.TOLERANCES` (where each value is derived).
TOLERANCE = {dtype: tol.oracle for dtype, tol in TOLERANCES.items()}


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
