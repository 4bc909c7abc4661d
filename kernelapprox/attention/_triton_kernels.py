"""Triton kernels of positive-feature attention (imported only by :mod:`.triton_kernels`).

Every kernel computes the positive random features (FAVOR+; Choromanski et al., ICLR 2021)

.. math:: \\log \\phi_f(u) = w_f \\cdot u - |u|^2/2 + \\log \\sqrt{\\xi_f}

from the scaled inputs ``u = sqrt(scale) x`` and the frequency matrix ``W`` (F, D) inside the
kernel, so ``phi(q)`` and ``phi(k)`` never reach global memory. ``W u`` is a float32 IEEE
product; the state products use the operands' dtype (float32, or bfloat16/float16 features
and values) with float32 accumulation. Feature, head and token dimensions are padded to
powers of two and masked. Stabilization (see :mod:`kernelapprox.attention.functional`):
a key's log-scale is ``c_j = max_f w_f.u_j - |u_j|^2/2``; the query's cancels.
"""

from __future__ import annotations

import triton
import triton.language as tl

#: Finite "no key yet" log-scale (``kernelapprox.attention.maps.LOG_FLOOR``).
FLOOR: tl.constexpr = tl.constexpr(-1.0e30)


@triton.jit
def _project(x_ptr, row0, n_rows, stride_t, w_ptr, F, D, mult,
             BLOCK_T: tl.constexpr, BLOCK_F: tl.constexpr, BLOCK_D: tl.constexpr):
    """``(W u, |u|^2/2, valid rows)`` for rows ``row0 .. row0 + BLOCK_T`` of ``x``."""
    rows = row0 + tl.arange(0, BLOCK_T)
    dims = tl.arange(0, BLOCK_D)
    feats = tl.arange(0, BLOCK_F)
    valid = rows < n_rows
    u = tl.load(x_ptr + rows[:, None] * stride_t + dims[None, :],
                mask=valid[:, None] & (dims[None, :] < D), other=0.0).to(tl.float32) * mult
    w = tl.load(w_ptr + feats[:, None] * D + dims[None, :],
                mask=(feats[:, None] < F) & (dims[None, :] < D), other=0.0)
    proj = tl.dot(u, tl.trans(w), input_precision="ieee")  # (BLOCK_T, BLOCK_F)
    half_sq = 0.5 * tl.sum(u * u, axis=1)
    return proj, half_sq, valid


@triton.jit
def _key_features(proj, half_sq, valid, feats, F, sqrt_xi):
    """``(phi_tilde (BLOCK_T, BLOCK_F), c (BLOCK_T,))`` with ``phi(k) = exp(c) phi_tilde``."""
    fmask = feats[None, :] < F
    peak = tl.max(tl.where(fmask, proj, FLOOR), axis=1)
    c = tl.where(valid, peak - half_sq, FLOOR)
    keep = fmask & valid[:, None]
    phi = tl.where(keep, tl.exp(proj - peak[:, None]), 0.0) * sqrt_xi[None, :]
    return phi, c


@triton.jit
def _query_features(proj, feats, F, sqrt_xi):
    """Query features up to their (cancelling) log-scale: ``sqrt(xi) exp(W u - max W u)``."""
    fmask = feats[None, :] < F
    peak = tl.max(tl.where(fmask, proj, FLOOR), axis=1)
    return tl.where(fmask, tl.exp(proj - peak[:, None]), 0.0) * sqrt_xi[None, :]


@triton.jit
def _mm(a, b, UPCAST: tl.constexpr):
    """``a @ b`` with ``a`` rounded to ``b``'s dtype and float32 accumulation. ``UPCAST``
    multiplies the rounded operands in float32 (the same products: a bf16 x bf16 product is
    exact in float32), for Triton's interpreter, whose bfloat16 ``tl.dot`` is wrong."""
    a = a.to(b.dtype)
    if UPCAST:
        a = a.to(tl.float32)
        b = b.to(tl.float32)
    return tl.dot(a, b, input_precision="ieee")


@triton.jit
def noncausal_state_kernel(
    k_ptr, v_ptr, w_ptr, xi_ptr, s_ptr, z_ptr, r_ptr,
    T, Hk, F, D, Dv, mult,
    stride_kb, stride_kh, stride_kt, stride_vb, stride_vh, stride_vt,
    BLOCK_T: tl.constexpr, BLOCK_F: tl.constexpr, BLOCK_D: tl.constexpr,
    BLOCK_DV: tl.constexpr, UPCAST: tl.constexpr,
):
    """State ``S = sum_j phi(k_j) v_j^T = exp(R) s``, ``z = exp(R) sum_j phi_tilde...`` of one
    (batch, kv head), ``R = max_j c_j``: an online pass over key blocks that rescales the
    float32 accumulators whenever the running maximum grows (Milakov & Gimelshein 2018)."""
    pid = tl.program_id(0)
    b = pid // Hk
    h = pid % Hk
    k_base = k_ptr + b * stride_kb + h * stride_kh
    v_base = v_ptr + b * stride_vb + h * stride_vh
    feats = tl.arange(0, BLOCK_F)
    cols = tl.arange(0, BLOCK_DV)
    sqrt_xi = tl.load(xi_ptr + feats, mask=feats < F, other=0.0)
    S = tl.zeros((BLOCK_F, BLOCK_DV), dtype=tl.float32)
    z = tl.zeros((BLOCK_F,), dtype=tl.float32)
    R = tl.full((), FLOOR, tl.float32)
    for t0 in range(0, T, BLOCK_T):
        proj, half_sq, valid = _project(k_base, t0, T, stride_kt, w_ptr, F, D, mult,
                                        BLOCK_T, BLOCK_F, BLOCK_D)
        phi, c = _key_features(proj, half_sq, valid, feats, F, sqrt_xi)
        R_new = tl.maximum(R, tl.max(c, axis=0))
        weight = tl.where(valid, tl.exp(c - R_new), 0.0)
        phi = phi * weight[:, None]
        rows = t0 + tl.arange(0, BLOCK_T)
        vals = tl.load(v_base + rows[:, None] * stride_vt + cols[None, :],
                       mask=valid[:, None] & (cols[None, :] < Dv), other=0.0)
        decay = tl.exp(R - R_new)
        S = S * decay + _mm(tl.trans(phi), vals, UPCAST)
        z = z * decay + tl.sum(phi, axis=0)
        R = R_new
    out = pid * F * Dv + feats[:, None] * Dv + cols[None, :]
    tl.store(s_ptr + out, S, mask=(feats[:, None] < F) & (cols[None, :] < Dv))
    tl.store(z_ptr + pid * F + feats, z, mask=feats < F)
    tl.store(r_ptr + pid, R)


@triton.jit
def noncausal_output_kernel(
    q_ptr, w_ptr, xi_ptr, s_ptr, z_ptr, o_ptr,
    T, H, G, F, D, Dv, mult,
    stride_qb, stride_qh, stride_qt, stride_ob, stride_oh, stride_ot,
    BLOCK_T: tl.constexpr, BLOCK_F: tl.constexpr, BLOCK_D: tl.constexpr,
    BLOCK_DV: tl.constexpr,
):
    """``o_i = phi(q_i)^T S / phi(q_i)^T z`` for one (batch, head) and block of queries."""
    pid = tl.program_id(0)
    b = pid // H
    h = pid % H
    state = b * (H // G) + h // G  # query head h reads kv head h // G
    t0 = tl.program_id(1) * BLOCK_T
    feats = tl.arange(0, BLOCK_F)
    cols = tl.arange(0, BLOCK_DV)
    sqrt_xi = tl.load(xi_ptr + feats, mask=feats < F, other=0.0)
    proj, _, valid = _project(q_ptr + b * stride_qb + h * stride_qh, t0, T, stride_qt,
                                    w_ptr, F, D, mult, BLOCK_T, BLOCK_F, BLOCK_D)
    phi = _query_features(proj, feats, F, sqrt_xi)
    smask = (feats[:, None] < F) & (cols[None, :] < Dv)
    S = tl.load(s_ptr + state * F * Dv + feats[:, None] * Dv + cols[None, :], mask=smask,
                other=0.0)
    z = tl.load(z_ptr + state * F + feats, mask=feats < F, other=0.0)
    num = tl.dot(phi, S, input_precision="ieee")
    den = tl.maximum(tl.sum(phi * z[None, :], axis=1), 1.1754943508222875e-38)
    o = num / den[:, None]
    rows = t0 + tl.arange(0, BLOCK_T)
    o_base = o_ptr + b * stride_ob + h * stride_oh
    tl.store(o_base + rows[:, None] * stride_ot + cols[None, :], o.to(o_ptr.dtype.element_ty),
             mask=valid[:, None] & (cols[None, :] < Dv))


@triton.jit
def causal_chunked_kernel(
    q_ptr, k_ptr, v_ptr, w_ptr, xi_ptr, o_ptr, s_ptr, z_ptr, r_ptr,
    T, H, G, F, D, Dv, mult,
    stride_qb, stride_qh, stride_qt, stride_kb, stride_kh, stride_kt,
    stride_vb, stride_vh, stride_vt, stride_ob, stride_oh, stride_ot,
    CHUNK: tl.constexpr, BLOCK_F: tl.constexpr, BLOCK_D: tl.constexpr,
    BLOCK_DV: tl.constexpr, UPCAST: tl.constexpr,
):
    """Chunked causal attention of one (batch, query head) (Yang et al., ICML 2024, Sec. 3.2).

    Per chunk: the masked intra-chunk product ``(phi(Q) phi(K)^T * M) [V, 1]`` with key
    weights ``exp(c_j - M_i)``, ``M_i = max(R, max_{j <= i in chunk} c_j)``, plus the
    inter-chunk read ``exp(R - M_i) phi(Q) [S, z]``; then ``[S, z] <- [S, z] exp(R - R') +
    sum_j exp(c_j - R') phi_tilde(k_j) [v_j, 1]`` with ``R' = max(R, max_chunk c)``. The
    float32 state never leaves registers; the final one is written for head ``h % G == 0``.
    """
    pid = tl.program_id(0)
    b = pid // H
    h = pid % H
    hk = h // G
    q_base = q_ptr + b * stride_qb + h * stride_qh
    k_base = k_ptr + b * stride_kb + hk * stride_kh
    v_base = v_ptr + b * stride_vb + hk * stride_vh
    o_base = o_ptr + b * stride_ob + h * stride_oh
    feats = tl.arange(0, BLOCK_F)
    cols = tl.arange(0, BLOCK_DV)
    pos = tl.arange(0, CHUNK)
    causal = pos[None, :] <= pos[:, None]  # (query i, key j): j <= i
    sqrt_xi = tl.load(xi_ptr + feats, mask=feats < F, other=0.0)
    S = tl.zeros((BLOCK_F, BLOCK_DV), dtype=tl.float32)
    z = tl.zeros((BLOCK_F,), dtype=tl.float32)
    R = tl.full((), FLOOR, tl.float32)
    for t0 in range(0, T, CHUNK):
        rows = t0 + pos
        pk, sk, valid = _project(k_base, t0, T, stride_kt, w_ptr, F, D, mult,
                                 CHUNK, BLOCK_F, BLOCK_D)
        phi_k, c = _key_features(pk, sk, valid, feats, F, sqrt_xi)
        pq, _, _ = _project(q_base, t0, T, stride_qt, w_ptr, F, D, mult,
                            CHUNK, BLOCK_F, BLOCK_D)
        phi_q = _query_features(pq, feats, F, sqrt_xi)
        vals = tl.load(v_base + rows[:, None] * stride_vt + cols[None, :],
                       mask=valid[:, None] & (cols[None, :] < Dv), other=0.0)
        # row references M_i: prefix maximum inside the chunk and the state's reference
        M = tl.maximum(tl.max(tl.where(causal, c[None, :], FLOOR), axis=1), R)
        weight = tl.where(causal, tl.exp(c[None, :] - M[:, None]), 0.0)
        A = tl.dot(phi_q, tl.trans(phi_k), input_precision="ieee") * weight  # (CHUNK, CHUNK)
        row_scale = tl.exp(R - M)
        num = _mm(A, vals, UPCAST)
        num += tl.dot(phi_q, S, input_precision="ieee") * row_scale[:, None]
        den = tl.sum(A, axis=1) + tl.sum(phi_q * z[None, :], axis=1) * row_scale
        o = num / tl.maximum(den, 1.1754943508222875e-38)[:, None]
        tl.store(o_base + rows[:, None] * stride_ot + cols[None, :],
                 o.to(o_ptr.dtype.element_ty), mask=valid[:, None] & (cols[None, :] < Dv))
        R_new = tl.maximum(R, tl.max(c, axis=0))
        kw = phi_k * tl.where(valid, tl.exp(c - R_new), 0.0)[:, None]
        decay = tl.exp(R - R_new)
        S = S * decay + _mm(tl.trans(kw), vals, UPCAST)
        z = z * decay + tl.sum(kw, axis=0)
        R = R_new
    if h % G == 0:
        state = b * (H // G) + hk
        out = state * F * Dv + feats[:, None] * Dv + cols[None, :]
        tl.store(s_ptr + out, S, mask=(feats[:, None] < F) & (cols[None, :] < Dv))
        tl.store(z_ptr + state * F + feats, z, mask=feats < F)
        tl.store(r_ptr + state, R)
