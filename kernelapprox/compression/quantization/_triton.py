"""The Triton backend of :class:`~.layer.QuantizedLinear` (optional; needs ``triton``).

:func:`triton_quantized_linear` computes ``x W_k^T + b`` with the kernel of
:mod:`._triton_kernel`, which reads the first ``k`` bit planes, forms the codes, looks up the
fp16 table and accumulates in float32; the dequantized weight never reaches memory.

Tested only in Triton's CPU interpreter (``TRITON_INTERPRET=1`` set before ``triton`` is
imported, CPU tensors): no GPU was available where this was written, so neither the
compiled kernel's correctness on a GPU nor its speed has been measured, and the tile sizes
are fixed, not tuned. Without the interpreter the tensors must be on a CUDA device. This
module imports without ``triton`` (``HAS_TRITON`` is then ``False`` and the function raises
``ImportError``).
"""

from __future__ import annotations

from typing import Any

import torch

from kernelapprox._triton import triton_available, triton_interpreted

__all__ = ["HAS_TRITON", "triton_quantized_linear"]


#: Whether the ``triton`` package can be imported.
HAS_TRITON = triton_available()
#: Tile of output rows per program; tokens take 16 (or 32 above 16 tokens).
BLOCK_N = 32


def _kernel() -> Any:
    if not triton_available():
        raise ImportError(
            "backend='triton' needs the 'triton' package (pip install triton); use "
            "backend='auto' (torch) without it"
        )
    from kernelapprox.compression.quantization import _triton_kernel

    return _triton_kernel.quantized_linear_kernel


def triton_quantized_linear(
    x: torch.Tensor,
    qweight: torch.Tensor,
    table: torch.Tensor,
    bits: int,
    in_features: int,
    bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """``x W_k^T + b`` (``x``: ``(tokens, in_features)``) from the planes, in ``x.dtype``.

    ``qweight`` ``(n_bits, out, ceil(in/32))`` int32 (the first ``bits`` planes are read),
    ``table`` ``(out, 2**bits)``; float32 accumulation.
    """
    kernel = _kernel()
    if x.device.type != "cuda" and not triton_interpreted():
        raise ValueError(
            "backend='triton' needs CUDA tensors, or TRITON_INTERPRET=1 (set before triton "
            f"is imported) for CPU tensors; x is on {x.device}"
        )
    n_bits, out, words = qweight.shape
    if not 1 <= bits <= n_bits or tuple(table.shape) != (out, 2**bits):
        raise ValueError(f"table must be ({out}, 2**bits) with 1 <= bits <= {n_bits}")
    x = x.contiguous()
    tokens = x.shape[0]
    y = torch.empty(tokens, out, dtype=x.dtype, device=x.device)
    block_m = 16 if tokens <= 16 else 32
    grid = (triton_cdiv(tokens, block_m), triton_cdiv(out, BLOCK_N))
    kernel[grid](
        x,
        qweight.contiguous(),
        table.contiguous(),
        y if bias is None else bias.contiguous(),
        y,
        tokens,
        out,
        in_features,
        words,
        x.stride(0),
        y.stride(0),
        BITS=bits,
        HAS_BIAS=bias is not None,
        BLOCK_M=block_m,
        BLOCK_N=BLOCK_N,
    )
    return y


def triton_cdiv(a: int, b: int) -> int:
    """``ceil(a / b)`` for positive integers."""
    return -(-a // b)
