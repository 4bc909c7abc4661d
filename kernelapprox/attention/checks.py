"""Input checks and state handling shared by every implementation of feature attention.

The torch path (:mod:`.functional`, :mod:`.parallel`) and the Triton backend
(:mod:`.triton`) accept the same arguments and check them here, so that both say the same
thing about bad input: tensors and their shapes (:func:`check_qkv`), the key padding mask
(:func:`check_key_padding`), the default scale ``1/sqrt(head_dim)`` (:func:`resolve_scale`)
and an initial :class:`~kernelapprox.attention.AttentionState` with its per-head or
per-feature log-scale (:func:`initial_state_tensors`, :func:`per_head_reference`,
:func:`per_feature_reference`).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from kernelapprox._validation import check_positive_float, renamed_keywords
from kernelapprox.attention.maps import LOG_FLOOR

__all__ = [
    "check_key_padding",
    "check_qkv",
    "check_tensor",
    "dims",
    "initial_state_tensors",
    "per_feature_reference",
    "per_head_reference",
    "resolve_scale",
]


def check_tensor(x: Any, name: str, ndim: int) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point() or x.is_complex():
        raise TypeError(f"{name} must be a real floating-point tensor, got dtype {x.dtype}")
    if x.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {tuple(x.shape)}")
    return x


def dims(x: torch.Tensor, layout: str) -> tuple[int, int, int, int]:
    """``(B, T, H, D)`` of a 4-d tensor in ``layout``."""
    if layout == "bthd":
        B, T, H, D = x.shape
    else:
        B, H, T, D = x.shape
    return B, T, H, D


def check_qkv(
    q: Any, k: Any, v: Any, layout: str, causal: bool
) -> tuple[int, int, int, int, int, int, int]:
    q, k, v = (check_tensor(x, n, 4) for x, n in ((q, "q"), (k, "k"), (v, "v")))
    if not (q.dtype == k.dtype == v.dtype):
        raise TypeError(f"q, k and v must share a dtype, got {q.dtype}, {k.dtype}, {v.dtype}")
    if not (q.device == k.device == v.device):
        raise ValueError("q, k and v must be on the same device")
    B, Tq, H, D = dims(q, layout)
    Bk, Tk, Hk, Dk = dims(k, layout)
    Bv, Tv, Hv, Dv = dims(v, layout)
    if not (B == Bk == Bv):
        raise ValueError(f"q, k, v must share the batch size, got {B}, {Bk}, {Bv}")
    if Dk != D:
        raise ValueError(f"q and k must share the head dimension, got {D} and {Dk}")
    if Tk != Tv or Hk != Hv:
        raise ValueError(
            f"k and v must have the same length and heads ({layout!r}), got {tuple(k.shape)} "
            f"and {tuple(v.shape)}"
        )
    if H % Hk != 0:
        raise ValueError(
            f"the number of query heads ({H}) must be a multiple of the key/value heads ({Hk})"
        )
    if min(B, Tq, Tk, H, D, Dv) < 1:
        raise ValueError(f"q, k, v must be non-empty, got {tuple(q.shape)}, {tuple(k.shape)}")
    if causal and Tq != Tk:
        raise ValueError(f"causal attention needs as many queries as keys, got {Tq} and {Tk}")
    return B, Tq, Tk, H, Hk, D, Dv


def check_key_padding(mask: Any, batch: int, keys: int) -> None:
    """``mask`` is ``None`` or a bool ``(B, T_k)`` tensor (``True`` marks padding)."""
    if mask is None:
        return
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
        raise TypeError("key_padding_mask must be a bool tensor (True marks padding)")
    if tuple(mask.shape) != (batch, keys):
        raise ValueError(
            f"key_padding_mask must have shape (B, T_k) = {(batch, keys)}, got {tuple(mask.shape)}"
        )


def resolve_scale(scale: Any, head_dim: int) -> float:
    return 1.0 / math.sqrt(head_dim) if scale is None else check_positive_float(scale, "scale")


def initial_state_tensors(
    state: Any,
    B: int,
    Hk: int,
    Fd: int,
    Dv: int,
    device: torch.device,
    dtype: torch.dtype,
    name: str = "initial_state",
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(S0 (B, H_kv, F, D_v + 1), R0 (B, H_kv))`` from an :class:`AttentionState` or ``None``
    (``name``: the parameter, for the error messages)."""
    if state is None:
        return (
            torch.zeros(B, Hk, Fd, Dv + 1, device=device, dtype=dtype),
            torch.full((B, Hk), LOG_FLOOR, device=device, dtype=dtype),
        )
    if not isinstance(state, tuple) or len(state) != 3:
        raise TypeError(f"{name} must be an AttentionState (kv, z, log_scale)")
    for part, x in zip(("kv", "z", "log_scale"), state, strict=True):
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise TypeError(
                f"{name} must be an AttentionState of real floating-point tensors "
                f"(kv, z, log_scale); its {part} is {type(x).__name__}"
                + (f" of dtype {x.dtype}" if isinstance(x, torch.Tensor) else "")
            )
    kv, z, r = (x.to(device=device, dtype=dtype) for x in state)
    expected = ((B, Hk, Fd, Dv), (B, Hk, Fd), (B, Hk))
    shapes = (tuple(kv.shape), tuple(z.shape), tuple(r.shape))
    if shapes[:2] != expected[:2] or shapes[2] not in (expected[2], expected[1]):
        raise ValueError(
            f"{name} must have shapes kv {expected[0]}, z {expected[1]}, log_scale "
            f"{expected[2]} or {expected[1]} (per feature); got {shapes[0]}, {shapes[1]}, "
            f"{shapes[2]}"
        )
    return torch.cat((kv, z[..., None]), dim=-1), r.detach()


def per_head_reference(S0: torch.Tensor, R0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A state relative to one reference per head: a per-feature ``R0`` ``(B, H_kv, F)`` is
    folded into ``R = max_f R0_f`` (``S0_f`` times ``exp(R0_f - R) <= 1``; features more than
    the dtype's range below the largest underflow, which the denominator checks then catch)."""
    if R0.ndim == S0.ndim - 2:
        return S0, R0
    R = R0.amax(-1)
    return S0 * torch.exp(R0 - R[..., None])[..., None], R


@renamed_keywords(
    {"n_features": "output_dim"},
    notes={"n_features": "Here it meant the feature width F, not the number of frequencies m."},
)
def per_feature_reference(R0: torch.Tensor, output_dim: int) -> torch.Tensor:
    """``R0`` as ``(B, H_kv, F)`` with ``F = output_dim`` feature columns (a per-head
    reference broadcast over the features)."""
    return R0 if R0.ndim == 3 else R0[..., None].expand(*R0.shape, output_dim)
