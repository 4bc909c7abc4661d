"""Triton forward kernels of positive-feature attention (optional; needs the ``triton`` package).

:func:`triton_feature_attention` computes the same quantity as
:func:`kernelapprox.attention.feature_attention` for the ``"positive"`` map (FAVOR+,
``log phi(u) = w.u - |u|^2/2 + log sqrt(xi)``; Choromanski et al., ICLR 2021) with the
features computed inside the kernels from ``q``, ``k`` and the frequency matrix, so
``phi(q)`` and ``phi(k)`` are never written to memory:

* non-causal: a reduction kernel per (batch, kv head) accumulates ``[S, z] = sum_j phi(k_j)
  [v_j, 1]^T`` in float32 over key blocks with an online maximum of the keys' log-scales
  (exact: every output is relative to the global maximum), then an output kernel per
  (batch, head, query block) computes ``o = phi(q) S / phi(q) z``;
* causal: one program per (batch, query head) walks the chunks with the float32 state in
  registers, the stabilization of :mod:`kernelapprox.attention.functional` (prefix maxima).

Forward only (no autograd), no key padding, no initial state. On a machine without a GPU
the kernels run in Triton's interpreter (set ``TRITON_INTERPRET=1`` before importing
``triton``) on CPU tensors. This module imports without ``triton`` (``HAS_TRITON`` is then
``False`` and :func:`triton_feature_attention` raises ``ImportError``).
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any

import torch

from kernelapprox._validation import check_choice, check_positive_int
from kernelapprox.attention.functional import _check_qkv, _resolve_scale
from kernelapprox.attention.maps import AnyMap, check_feature_map, input_multiplier
from kernelapprox.attention.state import AttentionState


def _has_triton() -> bool:
    try:
        return importlib.util.find_spec("triton") is not None
    except (ImportError, ValueError):  # a module set to None in sys.modules
        return False


#: Whether the ``triton`` package can be imported.
HAS_TRITON = _has_triton()
#: Operand dtypes of the kernels (accumulation is always float32).
DTYPES = (torch.float32, torch.bfloat16, torch.float16)


def _kernels() -> Any:
    if not _has_triton():
        raise ImportError(
            "triton_feature_attention needs the 'triton' package (pip install triton); use "
            "kernelapprox.attention.feature_attention without it"
        )
    from kernelapprox.attention import _triton_kernels

    return _triton_kernels


def _interpreted() -> bool:
    """Whether Triton runs kernels in its CPU interpreter (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on")


def _block(n: int, minimum: int = 16) -> int:
    """Next power of two ``>= max(n, minimum)`` (``tl.dot`` needs sides of at least 16)."""
    return max(minimum, 1 << (n - 1).bit_length())


def _strides(x: torch.Tensor, layout: str) -> tuple[int, int, int]:
    """``(batch, head, token)`` strides of a tensor in ``layout`` (unit stride on the last dim)."""
    if layout == "bthd":
        return x.stride(0), x.stride(2), x.stride(1)
    return x.stride(0), x.stride(1), x.stride(2)


def triton_feature_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    feature_map: AnyMap,
    *,
    causal: bool,
    scale: float | None = None,
    layout: str = "bthd",
    chunk_size: int = 32,
    block_size: int = 32,
    output_final_state: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, AttentionState]:
    """Positive-feature attention with the features computed inside Triton kernels.

    Same inputs and result as :func:`kernelapprox.attention.feature_attention` (layouts
    ``"bthd"``/``"bhtd"``, grouped-query attention) for a ``"positive"`` map; operands
    ``float32``, ``bfloat16`` or ``float16``, float32 accumulation, output in ``q``'s dtype.

    Parameters
    ----------
    chunk_size : int
        Tokens per chunk of the causal kernel (rounded up to a power of two, at least 16).
    block_size : int
        Keys/queries per block of the non-causal kernels (power of two, at least 16).
    output_final_state : bool
        Also return the :class:`AttentionState` after the last key (float32; the log-scale
        convention differs from ``feature_attention``'s by a constant, the state
        ``exp(log_scale) kv`` is the same).
    """
    check_choice(layout, "layout", ("bthd", "bhtd"))
    B, Tq, Tk, H, Hk, D, Dv = _check_qkv(q, k, v, layout, causal)
    fm = check_feature_map(feature_map, D)
    if fm.name != "positive":
        raise ValueError(
            f"triton_feature_attention supports the 'positive' map only, got {fm.name!r}"
        )
    if q.dtype not in DTYPES:
        raise TypeError(
            f"triton_feature_attention needs float32, bfloat16 or float16 inputs, got {q.dtype}"
        )
    chunk = _block(check_positive_int(chunk_size, "chunk_size"))
    block = _block(check_positive_int(block_size, "block_size"))
    kern = _kernels()
    mult = input_multiplier(fm, _resolve_scale(scale, D))
    t = fm.tensors(q.device, torch.float32)
    W, sqrt_xi = t["W"].contiguous(), t["sqrt_xi"].contiguous()
    Fd = W.shape[0]
    q, k, v = (x if x.stride(-1) == 1 else x.contiguous() for x in (q, k, v))
    o = torch.empty((*q.shape[:-1], Dv), device=q.device, dtype=q.dtype)
    S = torch.zeros(B, Hk, Fd, Dv, device=q.device, dtype=torch.float32)
    z = torch.zeros(B, Hk, Fd, device=q.device, dtype=torch.float32)
    R = torch.empty(B, Hk, device=q.device, dtype=torch.float32)
    sizes = {"BLOCK_F": _block(Fd), "BLOCK_D": _block(D), "BLOCK_DV": _block(Dv)}
    G = H // Hk
    upcast = q.dtype == torch.bfloat16 and _interpreted()
    if causal:
        kern.causal_chunked_kernel[(B * H,)](
            q, k, v, W, sqrt_xi, o, S, z, R, Tq, H, G, Fd, D, Dv, mult,
            *_strides(q, layout), *_strides(k, layout), *_strides(v, layout),
            *_strides(o, layout), CHUNK=chunk, UPCAST=upcast, **sizes,
        )
    else:
        kern.noncausal_state_kernel[(B * Hk,)](
            k, v, W, sqrt_xi, S, z, R, Tk, Hk, Fd, D, Dv, mult,
            *_strides(k, layout), *_strides(v, layout), BLOCK_T=block, UPCAST=upcast,
            **sizes,
        )
        kern.noncausal_output_kernel[(B * H, -(-Tq // block))](
            q, W, sqrt_xi, S, z, o, Tq, H, G, Fd, D, Dv, mult,
            *_strides(q, layout), *_strides(o, layout), BLOCK_T=block, **sizes,
        )
    if output_final_state:
        return o, AttentionState(S, z, R)
    return o
