r"""Triton kernel of the k-bit quantized matmul (imported only by :mod:`._triton`).

Program ``(i, j)`` computes the tile ``y[i*BM:(i+1)*BM, j*BN:(j+1)*BN]`` of
``y = x W_k^T (+ b)`` straight from the bit planes: for each 32-column word ``u`` it loads
word ``u`` of planes ``0..BITS-1`` of its rows, forms the codes by Horner's rule

.. math:: q^{(k)}_{r, 32u+i} = \sum_{p<k} 2^{k-1-p}\, ((\mathrm{plane}_p[r, u] \gg i) \,\&\, 1),

looks up ``T_k[r, q]`` (fp16 table, read as float32) and accumulates ``x_tile @ w_tile^T`` in
float32 (``tl.dot`` with IEEE float32 products). Columns past ``K`` and rows past ``N`` or ``M``
are selected to 0 (``tl.where`` / masked loads), never multiplied away.
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def quantized_linear_kernel(
    x_ptr,
    q_ptr,
    t_ptr,
    b_ptr,
    y_ptr,
    M,
    N,
    K,
    WORDS,
    stride_xm,
    stride_ym,
    BITS: tl.constexpr,
    HAS_BIAS: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    lanes = tl.arange(0, 32)
    row_ok = rn < N
    tok_ok = rm < M
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for u in range(0, WORDS):
        cols = u * 32 + lanes
        col_ok = cols < K
        code = tl.zeros((BLOCK_N, 32), dtype=tl.int32)
        for p in tl.static_range(BITS):
            word = tl.load(q_ptr + (p * N + rn) * WORDS + u, mask=row_ok, other=0)
            code = code * 2 + ((word[:, None] >> lanes[None, :]) & 1)
        w = tl.load(t_ptr + rn[:, None] * (1 << BITS) + code, mask=row_ok[:, None], other=0.0).to(
            tl.float32
        )
        w = tl.where(col_ok[None, :], w, 0.0)
        xt = tl.load(
            x_ptr + rm[:, None] * stride_xm + cols[None, :],
            mask=tok_ok[:, None] & col_ok[None, :],
            other=0.0,
        ).to(tl.float32)
        acc += tl.dot(xt, tl.trans(w), input_precision="ieee")
    if HAS_BIAS:
        acc += tl.load(b_ptr + rn, mask=row_ok, other=0.0).to(tl.float32)[None, :]
    tl.store(
        y_ptr + rm[:, None] * stride_ym + rn[None, :],
        acc.to(y_ptr.dtype.element_ty),
        mask=tok_ok[:, None] & row_ok[None, :],
    )
