"""Triton kernels of positive-feature attention (imported only by :mod:`.attention`).

Features
--------
Every kernel computes the positive random features (FAVOR+; Choromanski et al., ICLR 2021)

.. math:: \\log \\phi_f(u) = w_f \\cdot u - |u|^2/2 + \\log \\sqrt{\\xi_f}

from the scaled inputs ``u = sqrt(scale) x`` and the frequency matrix ``W`` (F, D) inside the
kernel, so ``phi(q)`` and ``phi(k)`` never reach global memory (neither in the forward nor in
the backward pass, which recomputes them). ``W u`` is a float32 IEEE product; the products
with values and output gradients use the operands' dtype (float32, or bfloat16/float16) with
float32 accumulation. Feature, head and token dimensions are padded to powers of two and
masked.

Stabilization (see :mod:`kernelapprox.attention.functional`): a key's features are
``phi(k_j) = exp(c_j) pk_j`` with ``c_j = max_f w_f.u_j - |u_j|^2/2`` and ``max_f pk_jf /
sqrt(xi_f) = 1``; a query's are ``exp(c_i^q) pq_i``, and ``c_i^q`` cancels. Row ``i`` is
computed relative to ``M_i = max(R_0, max_{j <= i} c_j)`` (causal; non-causal: one ``M`` for
every row), with the key weights ``e_ij = exp(c_j - M_i) <= 1``. In these units (``V' = [V,
1]``, ``pk``, ``pq`` as above)

.. math:: n_i = \\sum_j e_{ij} (pq_i \\cdot pk_j) v'_j, \\qquad o_i = n_i[:D_v] / n_i[D_v],

and ``den_i = n_i[D_v]``. A padded key has ``pk_j = 0`` and ``c_j = FLOOR``.

Masking selects (``tl.where``), never multiplies by zero (``0 * nan = nan``): scores and
score gradients of later keys, padded keys and values, rows past the end. Loaded ``q``,
``k``, ``v`` are selected to finite numbers (``_finite_rows``) in every kernel, forward and
backward; the forward kernels set an output row to nan when its query or a key or value it
sees was non-finite, and report per (batch, kv head) whether any key or value was (the
state is then nan). Gradients at non-finite input entries are 0.

Backward (derivation)
---------------------
Let ``g_i = dL/do_i``. Since ``o_i = num_i / den_i``, ``dL/dnum_i = g_i / den_i`` and
``dL/dden_i = -(g_i . o_i) / den_i``: with the augmented vector

.. math:: dn_i = [g_i, -\\delta_i] / den_i, \\qquad \\delta_i = g_i \\cdot o_i,

the gradient of a score ``a_ij = phi(q_i) . phi(k_j)`` is ``dL/da_ij = dn_i . v'_j`` (in
stabilized units; the true ``den`` carries the factor ``exp(c^q_i + M_i)``, which is where the
weights ``e_ij`` come from below).

*Queries.* ``o_i`` is invariant to a positive factor on ``phi(q_i)``, so ``dL/dphi(q_i) .
phi(q_i) = 0`` (Euler) and the ``-|u|^2/2`` term and ``c^q_i`` drop out: with
``Gq_i = pq_i * dpq_i``, ``dpq_i = sum_j e_ij (dn_i . v'_j) pk_j``,

.. math:: dL/du_i = W^\\top Gq_i.

``dpq_i`` is the forward recurrence with ``v'_j`` replaced by ``dn_i . v'_j``: inside a chunk
the masked ``(dn V'^T * E) pk``, across chunks ``exp(R - M_i) [S, z] dn_i``.

*Keys.* ``d log phi_f(u)/du = w_f - u``, so with ``Gk_j = phi(k_j) * dL/dphi(k_j)``

.. math:: dL/du_j = W^\\top Gk_j - u_j \\sum_f Gk_{jf}, \\qquad
          Gk_j = pk_j * \\sum_{i \\ge j} e_{ij} (dn_i . v'_j)\\, pq_i,

and ``dL/dv_j = sum_{i >= j} e_ij (pq_i . pk_j) dn_i[:D_v]``. Across chunks this is a reverse
scan of ``dS = sum_{i later} exp(P - M_i) pq_i dn_i^T`` (F, D_v + 1) kept relative to
``P = M`` of the first later row: ``M`` is non-decreasing in ``i``, so ``P`` only shrinks going
backward and every factor ``exp(P' - P)``, ``exp(P - M_i)`` and ``exp(c_j - P)`` is ``<= 1``.
A gradient ``dS_T`` of the returned final state (relative to ``R_T = M_{T-1}``) is the scan's
start; the gradient of the initial state is ``exp(R_0 - P) dS`` at the end.

*Frequencies.* ``dL/dW = sum_i Gq_i u_i^T + sum_j Gk_j u_j^T`` and ``dL/d sqrt(xi_f) =
sum_rows unit_f dphi_f`` with ``unit = phi / sqrt(xi)`` the features before the weights,
computed as such (``G_f / sqrt(xi_f)`` would be 0/0 at a zero weight, which fitted NNLS
weights have); per-program partial sums, added in torch.

The causal backward is two kernels: a forward chunk scan (per query head) that recomputes
the outputs in float32, writes ``dq`` and the per-row statistics ``M_i``, ``1/den_i`` and
``delta_i`` (O(T) floats), then a reverse chunk scan (per key/value head, summing its query
heads) for ``dk``, ``dv``. The non-causal backward is three: ``dq`` (and the statistics) per
block of queries, the reduction ``dS``, then ``dk``, ``dv`` per block of keys.
"""

from __future__ import annotations

import triton
import triton.language as tl

#: Finite "no key yet" log-scale (``kernelapprox.attention.maps.LOG_FLOOR``).
FLOOR: tl.constexpr = tl.constexpr(-1.0e30)
#: Reference of rows past the end (every weight ``exp(c - CEIL)`` is 0).
CEIL: tl.constexpr = tl.constexpr(1.0e30)
#: Smallest normal float32 (the denominator guard of ``_safe_denominator``).
TINY: tl.constexpr = tl.constexpr(1.1754943508222875e-38)
#: The output of a row that sees a non-finite input (``_finite_rows``).
NAN: tl.constexpr = tl.constexpr(float("nan"))
INF: tl.constexpr = tl.constexpr(float("inf"))


# --------------------------------------------------------------------------- loads
@triton.jit
def _load_rows(x_ptr, row0, end, stride_t, n_cols, BLOCK_T: tl.constexpr, BLOCK_C: tl.constexpr):
    """``(x[row0 : row0 + BLOCK_T, :n_cols], valid)`` with rows ``>= end`` zeroed."""
    rows = row0 + tl.arange(0, BLOCK_T)
    cols = tl.arange(0, BLOCK_C)
    valid = rows < end
    x = tl.load(
        x_ptr + rows[:, None] * stride_t + cols[None, :],
        mask=valid[:, None] & (cols[None, :] < n_cols),
        other=0.0,
    )
    return x, valid


@triton.jit
def _unpadded(pad_ptr, row0, valid, BLOCK_T: tl.constexpr, HAS_PAD: tl.constexpr):
    """``valid`` without the keys that ``key_padding_mask`` marks (True = padding)."""
    if HAS_PAD:
        rows = row0 + tl.arange(0, BLOCK_T)
        padded = tl.load(pad_ptr + rows, mask=valid, other=1)
        valid = valid & (padded == 0)
    return valid


@triton.jit
def _finite_rows(x, valid):
    """``(x', bad, ok)``: ``x`` with the rows that are not ``valid`` (padding, past the end)
    and every non-finite entry selected to 0 (never multiplied by 0: ``0 * nan = nan``);
    ``bad_r = 1`` for a valid row with a non-finite entry, else 0; ``ok`` marks the finite
    entries. The kernels run
    on finite numbers and set the outputs that see a ``bad`` row to nan, as
    :func:`kernelapprox.attention.functional._finite_rows` does."""
    ok = (x == x) & (tl.abs(x) < INF)  # comparisons only: no inf - inf
    bad = tl.where(valid, tl.max(tl.where(ok, 0.0, 1.0), axis=1), 0.0)
    return tl.where(ok & valid[:, None], x, 0.0), bad, ok


@triton.jit
def _load_w(w_ptr, F, D, BLOCK_F: tl.constexpr, BLOCK_D: tl.constexpr):
    """The frequency matrix ``W`` (BLOCK_F, BLOCK_D), zero-padded, float32."""
    feats = tl.arange(0, BLOCK_F)
    dims = tl.arange(0, BLOCK_D)
    return tl.load(
        w_ptr + feats[:, None] * D + dims[None, :],
        mask=(feats[:, None] < F) & (dims[None, :] < D),
        other=0.0,
    )


@triton.jit
def _load_state(
    kv_ptr,
    z_ptr,
    r_ptr,
    state,
    F,
    Dv,
    BLOCK_F: tl.constexpr,
    BLOCK_DV: tl.constexpr,
    HAS_INIT: tl.constexpr,
):
    """``(S (F, Dv), z (F), R)`` of an incoming state, or the empty state (0, 0, FLOOR)."""
    feats = tl.arange(0, BLOCK_F)
    cols = tl.arange(0, BLOCK_DV)
    if HAS_INIT:
        S = tl.load(
            kv_ptr + state * F * Dv + feats[:, None] * Dv + cols[None, :],
            mask=(feats[:, None] < F) & (cols[None, :] < Dv),
            other=0.0,
        )
        z = tl.load(z_ptr + state * F + feats, mask=feats < F, other=0.0)
        R = tl.load(r_ptr + state)
    else:
        S = tl.zeros((BLOCK_F, BLOCK_DV), dtype=tl.float32)
        z = tl.zeros((BLOCK_F,), dtype=tl.float32)
        R = tl.full((), FLOOR, tl.float32)
    return S, z, R


@triton.jit
def _store_state(kv_ptr, z_ptr, state, S, z, F, Dv, BLOCK_F: tl.constexpr, BLOCK_DV: tl.constexpr):
    feats = tl.arange(0, BLOCK_F)
    cols = tl.arange(0, BLOCK_DV)
    tl.store(
        kv_ptr + state * F * Dv + feats[:, None] * Dv + cols[None, :],
        S,
        mask=(feats[:, None] < F) & (cols[None, :] < Dv),
    )
    tl.store(z_ptr + state * F + feats, z, mask=feats < F)


@triton.jit
def _store_rows(
    x_ptr, row0, valid, stride_t, x, n_cols, BLOCK_T: tl.constexpr, BLOCK_C: tl.constexpr
):
    rows = row0 + tl.arange(0, BLOCK_T)
    cols = tl.arange(0, BLOCK_C)
    tl.store(
        x_ptr + rows[:, None] * stride_t + cols[None, :],
        x.to(x_ptr.dtype.element_ty),
        mask=valid[:, None] & (cols[None, :] < n_cols),
    )


@triton.jit
def _store_partial(
    dw_ptr, dxi_ptr, part, dW, dxi, F, D, BLOCK_F: tl.constexpr, BLOCK_D: tl.constexpr
):
    """One program's ``sum G u^T`` (F, D) and ``sum G`` (F) into its slot ``part``."""
    feats = tl.arange(0, BLOCK_F)
    dims = tl.arange(0, BLOCK_D)
    tl.store(
        dw_ptr + part * F * D + feats[:, None] * D + dims[None, :],
        dW,
        mask=(feats[:, None] < F) & (dims[None, :] < D),
    )
    tl.store(dxi_ptr + part * F + feats, dxi, mask=feats < F)


# --------------------------------------------------------------------------- formulas
@triton.jit
def _project(u, w):
    """``u W^T`` (rows, BLOCK_F) in float32 IEEE arithmetic."""
    return tl.dot(u, tl.trans(w), input_precision="ieee")


@triton.jit
def _unit_key_features(proj, half_sq, valid, feats, F):
    """``(uk (BLOCK_T, BLOCK_F), c (BLOCK_T,))``, the key features before the weights:
    ``phi(k) = exp(c) sqrt(xi) uk`` with ``c = max_f w_f.u - |u|^2/2``,
    ``uk_f = exp(w_f.u - max_f w_f.u)`` (0 for a padded key)."""
    fmask = feats[None, :] < F
    peak = tl.max(tl.where(fmask, proj, FLOOR), axis=1)
    c = tl.where(valid, peak - half_sq, FLOOR)
    keep = fmask & valid[:, None]
    return tl.where(keep, tl.exp(proj - peak[:, None]), 0.0), c


@triton.jit
def _key_features(proj, half_sq, valid, feats, F, sqrt_xi):
    """``(pk, c)`` with ``phi(k) = exp(c) pk``, ``pk = sqrt(xi) uk`` (see above)."""
    unit, c = _unit_key_features(proj, half_sq, valid, feats, F)
    return unit * sqrt_xi[None, :], c


@triton.jit
def _unit_query_features(proj, feats, F):
    """Query features before the weights, up to their (cancelling) log-scale:
    ``exp(W u - max W u)``."""
    fmask = feats[None, :] < F
    peak = tl.max(tl.where(fmask, proj, FLOOR), axis=1)
    return tl.where(fmask, tl.exp(proj - peak[:, None]), 0.0)


@triton.jit
def _query_features(proj, feats, F, sqrt_xi):
    """Query features up to their (cancelling) log-scale: ``sqrt(xi) exp(W u - max W u)``."""
    return _unit_query_features(proj, feats, F) * sqrt_xi[None, :]


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
def _row_references(c, R, causal):
    """``M_i = max(R, max_{j <= i} c_j)`` for the rows of a chunk (``causal[i, j] = j <= i``)."""
    return tl.maximum(tl.max(tl.where(causal, c[None, :], FLOOR), axis=1), R)


@triton.jit
def _key_weights(c, M, causal):
    """``e_ij = exp(c_j - M_i)`` for ``j <= i``, else 0 (every weight is ``<= 1``; the
    exponent is clamped at 0 so the discarded ``j > i`` entries cannot overflow)."""
    return tl.where(causal, tl.exp(tl.minimum(c[None, :] - M[:, None], 0.0)), 0.0)


@triton.jit
def _masked(x, E, causal):
    """``x_ij e_ij`` for ``j <= i``, selected to 0 otherwise (a score of a later key may be
    nan, and ``nan * 0 = nan``)."""
    return tl.where(causal, x * E, 0.0)


@triton.jit
def _output_row_grads(g, o, den):
    """``(dn (rows, Dv), dn_z (rows,), delta, 1/den)``: ``dn = g / den``, ``dn_z = -delta / den``
    with ``delta = g . o``; 0 for a row that sees no key (``den = 0``, output 0)."""
    delta = tl.sum(g * o, axis=1)
    inv = tl.where(den > 0.0, 1.0 / tl.maximum(den, TINY), 0.0)
    return g * inv[:, None], -delta * inv, delta, inv


@triton.jit
def _score_grads(g, vals, delta, inv, UPCAST: tl.constexpr):
    """``dn_i . v'_j = (g_i . v_j - delta_i) / den_i`` (rows, keys)."""
    gv = _mm(g, tl.trans(vals), UPCAST)
    return (gv - delta[:, None]) * inv[:, None]


@triton.jit
def _query_input_grad(G, w):
    """``dL/du = G W`` (the query's log-scale and ``|u|^2`` term cancel)."""
    return tl.dot(G, w, input_precision="ieee")


@triton.jit
def _key_input_grad(G, u, w):
    """``dL/du = G W - u sum_f G_f`` (``d log phi_f / du = w_f - u``)."""
    return tl.dot(G, w, input_precision="ieee") - u * tl.sum(G, axis=1)[:, None]


@triton.jit
def _frequency_grads(dW, dxi, G, unit_grad, u, NEED_DW: tl.constexpr):
    """Accumulate ``dW += G^T u`` and ``d sqrt(xi) += sum_rows unit * dphi`` (``unit_grad``:
    the features before the weights times ``dL/dphi``; not ``G / sqrt(xi)``, which a zero
    weight would turn into 0 / 0)."""
    if NEED_DW:
        dW += tl.dot(tl.trans(G), u, input_precision="ieee")
        dxi += tl.sum(unit_grad, axis=0)
    return dW, dxi


# --------------------------------------------------------------------------- forward
@triton.jit
def noncausal_state_kernel(
    k_ptr,
    v_ptr,
    w_ptr,
    xi_ptr,
    pad_ptr,
    kv0_ptr,
    z0_ptr,
    r0_ptr,
    s_ptr,
    z_ptr,
    r_ptr,
    bad_ptr,
    T,
    T_BUCKET,
    Hk,
    F,
    D,
    Dv,
    mult,
    stride_kb,
    stride_kh,
    stride_kt,
    stride_vb,
    stride_vh,
    stride_vt,
    stride_pb,
    BLOCK_T: tl.constexpr,
    BLOCK_F: tl.constexpr,
    BLOCK_D: tl.constexpr,
    BLOCK_DV: tl.constexpr,
    UPCAST: tl.constexpr,
    HAS_PAD: tl.constexpr,
    HAS_INIT: tl.constexpr,
):
    """State ``[S, z] = exp(-R) (S_0 e^{R_0} + sum_j phi(k_j) [v_j, 1]^T)`` of one (batch, kv
    head), ``R = max(R_0, max_j c_j)``: an online pass over key blocks that rescales the
    float32 accumulators whenever the running maximum grows (Milakov & Gimelshein 2018).
    ``bad = 1`` when a (non-padded) key or value was non-finite (the state is then nan)."""
    pid = tl.program_id(0)
    b = pid // Hk
    h = pid % Hk
    k_base = k_ptr + b * stride_kb + h * stride_kh
    v_base = v_ptr + b * stride_vb + h * stride_vh
    feats = tl.arange(0, BLOCK_F)
    sqrt_xi = tl.load(xi_ptr + feats, mask=feats < F, other=0.0)
    w = _load_w(w_ptr, F, D, BLOCK_F, BLOCK_D)
    S, z, R = _load_state(kv0_ptr, z0_ptr, r0_ptr, pid, F, Dv, BLOCK_F, BLOCK_DV, HAS_INIT)
    seen = tl.full((), 0.0, tl.float32)  # 1 once a key or value was non-finite
    for t0 in range(0, T, BLOCK_T):
        x, valid = _load_rows(k_base, t0, T, stride_kt, D, BLOCK_T, BLOCK_D)
        valid = _unpadded(pad_ptr + b * stride_pb, t0, valid, BLOCK_T, HAS_PAD)
        x, bad, _ = _finite_rows(x, valid)
        u = x.to(tl.float32) * mult
        phi, c = _key_features(
            _project(u, w), 0.5 * tl.sum(u * u, axis=1), valid, feats, F, sqrt_xi
        )
        R_new = tl.maximum(R, tl.max(c, axis=0))
        phi = phi * tl.where(valid, tl.exp(c - R_new), 0.0)[:, None]
        vals, _ = _load_rows(v_base, t0, T, stride_vt, Dv, BLOCK_T, BLOCK_DV)
        vals, vbad, _ = _finite_rows(vals, valid)
        seen = tl.maximum(seen, tl.max(tl.maximum(bad, vbad), axis=0))
        decay = tl.exp(R - R_new)
        S = S * decay + _mm(tl.trans(phi), vals, UPCAST)
        z = z * decay + tl.sum(phi, axis=0)
        R = R_new
    _store_state(s_ptr, z_ptr, pid, S, z, F, Dv, BLOCK_F, BLOCK_DV)
    tl.store(r_ptr + pid, R)
    tl.store(bad_ptr + pid, seen)


@triton.jit
def noncausal_output_kernel(
    q_ptr,
    w_ptr,
    xi_ptr,
    s_ptr,
    z_ptr,
    bad_ptr,
    o_ptr,
    den_ptr,
    T,
    T_BUCKET,
    H,
    G,
    F,
    D,
    Dv,
    mult,
    stride_qb,
    stride_qh,
    stride_qt,
    stride_ob,
    stride_oh,
    stride_ot,
    BLOCK_T: tl.constexpr,
    BLOCK_F: tl.constexpr,
    BLOCK_D: tl.constexpr,
    BLOCK_DV: tl.constexpr,
):
    """``o_i = pq_i^T S / pq_i^T z`` for one (batch, head) and block of queries (nan when
    ``q_i`` or any key or value is non-finite); ``den_i = pq_i^T z`` (stabilized units, nan
    where ``o_i`` is) goes to ``den_ptr`` ``(B, H, T)`` for the caller's range check."""
    pid = tl.program_id(0)
    b = pid // H
    h = pid % H
    state = b * (H // G) + h // G  # query head h reads kv head h // G
    t0 = tl.program_id(1) * BLOCK_T
    feats = tl.arange(0, BLOCK_F)
    sqrt_xi = tl.load(xi_ptr + feats, mask=feats < F, other=0.0)
    w = _load_w(w_ptr, F, D, BLOCK_F, BLOCK_D)
    x, valid = _load_rows(
        q_ptr + b * stride_qb + h * stride_qh, t0, T, stride_qt, D, BLOCK_T, BLOCK_D
    )
    x, bad, _ = _finite_rows(x, valid)
    phi = _query_features(_project(x.to(tl.float32) * mult, w), feats, F, sqrt_xi)
    S, z, _ = _load_state(s_ptr, z_ptr, s_ptr, state, F, Dv, BLOCK_F, BLOCK_DV, True)
    num = tl.dot(phi, S, input_precision="ieee")
    den = tl.sum(phi * z[None, :], axis=1)
    poisoned = tl.maximum(bad, tl.load(bad_ptr + state)) > 0.0
    o = tl.where(poisoned[:, None], NAN, num / tl.maximum(den, TINY)[:, None])
    _store_rows(
        o_ptr + b * stride_ob + h * stride_oh, t0, valid, stride_ot, o, Dv, BLOCK_T, BLOCK_DV
    )
    rows = t0 + tl.arange(0, BLOCK_T)
    tl.store(den_ptr + pid * T + rows, tl.where(poisoned, NAN, den), mask=valid)


@triton.jit
def causal_chunked_kernel(
    q_ptr,
    k_ptr,
    v_ptr,
    w_ptr,
    xi_ptr,
    pad_ptr,
    kv0_ptr,
    z0_ptr,
    r0_ptr,
    o_ptr,
    den_ptr,
    s_ptr,
    z_ptr,
    r_ptr,
    bad_ptr,
    T,
    T_BUCKET,
    H,
    G,
    F,
    D,
    Dv,
    mult,
    stride_qb,
    stride_qh,
    stride_qt,
    stride_kb,
    stride_kh,
    stride_kt,
    stride_vb,
    stride_vh,
    stride_vt,
    stride_ob,
    stride_oh,
    stride_ot,
    stride_pb,
    CHUNK: tl.constexpr,
    BLOCK_F: tl.constexpr,
    BLOCK_D: tl.constexpr,
    BLOCK_DV: tl.constexpr,
    UPCAST: tl.constexpr,
    HAS_PAD: tl.constexpr,
    HAS_INIT: tl.constexpr,
):
    """Chunked causal attention of one (batch, query head) (Yang et al., ICML 2024, Sec. 3.2).

    Per chunk: the masked intra-chunk product ``(pq pk^T * E) [V, 1]`` with key weights
    ``e_ij = exp(c_j - M_i)``, plus the inter-chunk read ``exp(R - M_i) pq [S, z]``; then
    ``[S, z] <- [S, z] exp(R - R') + sum_j exp(c_j - R') pk_j [v_j, 1]`` with ``R' = max(R,
    max_chunk c)``. The float32 state (starting from the incoming one) never leaves
    registers; the final one is written for head ``h % G == 0``. Each row's denominator (in
    stabilized units, nan where the output is) goes to ``den_ptr`` ``(B, H, T)`` for the
    caller's range check. Inputs are selected to
    finite numbers (``_finite_rows``); row ``i`` is nan when ``q_i`` or a key or value
    ``j <= i`` was not (``seen`` carries that across chunks; ``bad`` is its final value).
    """
    pid = tl.program_id(0)
    b = pid // H
    h = pid % H
    hk = h // G
    state = b * (H // G) + hk
    q_base = q_ptr + b * stride_qb + h * stride_qh
    k_base = k_ptr + b * stride_kb + hk * stride_kh
    v_base = v_ptr + b * stride_vb + hk * stride_vh
    o_base = o_ptr + b * stride_ob + h * stride_oh
    feats = tl.arange(0, BLOCK_F)
    pos = tl.arange(0, CHUNK)
    causal = pos[None, :] <= pos[:, None]  # (query i, key j): j <= i
    sqrt_xi = tl.load(xi_ptr + feats, mask=feats < F, other=0.0)
    w = _load_w(w_ptr, F, D, BLOCK_F, BLOCK_D)
    S, z, R = _load_state(kv0_ptr, z0_ptr, r0_ptr, state, F, Dv, BLOCK_F, BLOCK_DV, HAS_INIT)
    seen = tl.full((), 0.0, tl.float32)
    for t0 in range(0, T, CHUNK):
        xk, rows_ok = _load_rows(k_base, t0, T, stride_kt, D, CHUNK, BLOCK_D)
        valid = _unpadded(pad_ptr + b * stride_pb, t0, rows_ok, CHUNK, HAS_PAD)
        xk, kbad, _ = _finite_rows(xk, valid)
        uk = xk.to(tl.float32) * mult
        phi_k, c = _key_features(
            _project(uk, w), 0.5 * tl.sum(uk * uk, axis=1), valid, feats, F, sqrt_xi
        )
        xq, _ = _load_rows(q_base, t0, T, stride_qt, D, CHUNK, BLOCK_D)
        xq, qbad, _ = _finite_rows(xq, rows_ok)
        phi_q = _query_features(_project(xq.to(tl.float32) * mult, w), feats, F, sqrt_xi)
        vals, _ = _load_rows(v_base, t0, T, stride_vt, Dv, CHUNK, BLOCK_DV)
        vals, vbad, _ = _finite_rows(vals, valid)
        M = _row_references(c, R, causal)
        A = _masked(
            tl.dot(phi_q, tl.trans(phi_k), input_precision="ieee"),
            _key_weights(c, M, causal),
            causal,
        )
        row_scale = tl.exp(R - M)
        num = _mm(A, vals, UPCAST) + tl.dot(phi_q, S, input_precision="ieee") * row_scale[:, None]
        den = tl.sum(A, axis=1) + tl.sum(phi_q * z[None, :], axis=1) * row_scale
        kvbad = tl.maximum(kbad, vbad)
        sees = tl.maximum(tl.max(tl.where(causal, kvbad[None, :], 0.0), axis=1), seen)
        poisoned = tl.maximum(sees, qbad) > 0.0
        o = tl.where(poisoned[:, None], NAN, num / tl.maximum(den, TINY)[:, None])
        _store_rows(o_base, t0, rows_ok, stride_ot, o, Dv, CHUNK, BLOCK_DV)
        tl.store(den_ptr + pid * T + t0 + pos, tl.where(poisoned, NAN, den), mask=rows_ok)
        seen = tl.maximum(seen, tl.max(kvbad, axis=0))
        R_new = tl.maximum(R, tl.max(c, axis=0))
        kw = phi_k * tl.where(valid, tl.exp(c - R_new), 0.0)[:, None]
        decay = tl.exp(R - R_new)
        S = S * decay + _mm(tl.trans(kw), vals, UPCAST)
        z = z * decay + tl.sum(kw, axis=0)
        R = R_new
    if h % G == 0:
        _store_state(s_ptr, z_ptr, state, S, z, F, Dv, BLOCK_F, BLOCK_DV)
        tl.store(r_ptr + state, R)
        tl.store(bad_ptr + state, seen)


# --------------------------------------------------------------------------- causal backward
@triton.jit
def causal_dq_kernel(
    q_ptr,
    k_ptr,
    v_ptr,
    w_ptr,
    xi_ptr,
    pad_ptr,
    kv0_ptr,
    z0_ptr,
    r0_ptr,
    do_ptr,
    dq_ptr,
    m_ptr,
    inv_ptr,
    delta_ptr,
    dw_ptr,
    dxi_ptr,
    T,
    T_BUCKET,
    H,
    G,
    F,
    D,
    Dv,
    mult,
    stride_qb,
    stride_qh,
    stride_qt,
    stride_kb,
    stride_kh,
    stride_kt,
    stride_vb,
    stride_vh,
    stride_vt,
    stride_gb,
    stride_gh,
    stride_gt,
    stride_dqb,
    stride_dqh,
    stride_dqt,
    stride_pb,
    CHUNK: tl.constexpr,
    BLOCK_F: tl.constexpr,
    BLOCK_D: tl.constexpr,
    BLOCK_DV: tl.constexpr,
    UPCAST: tl.constexpr,
    HAS_PAD: tl.constexpr,
    HAS_INIT: tl.constexpr,
    NEED_DW: tl.constexpr,
):
    """Forward chunk scan of one (batch, query head) for ``dq`` (see the module docstring).

    Recomputes the forward in float32 (``o``, ``den``, the state), then per chunk
    ``dpq = (dn V'^T * E) pk + exp(R - M_i) [S, z] dn`` and ``dq = mult W^T (pq * dpq)``.
    Writes the row statistics ``M_i`` (kv head, from ``h % G == 0``), ``1/den_i`` and
    ``delta_i`` for :func:`causal_dkv_kernel`, and this program's ``dW`` partial sums.
    """
    pid = tl.program_id(0)
    b = pid // H
    h = pid % H
    hk = h // G
    state = b * (H // G) + hk
    q_base = q_ptr + b * stride_qb + h * stride_qh
    k_base = k_ptr + b * stride_kb + hk * stride_kh
    v_base = v_ptr + b * stride_vb + hk * stride_vh
    g_base = do_ptr + b * stride_gb + h * stride_gh
    feats = tl.arange(0, BLOCK_F)
    pos = tl.arange(0, CHUNK)
    causal = pos[None, :] <= pos[:, None]
    sqrt_xi = tl.load(xi_ptr + feats, mask=feats < F, other=0.0)
    w = _load_w(w_ptr, F, D, BLOCK_F, BLOCK_D)
    dW = tl.zeros((BLOCK_F, BLOCK_D), dtype=tl.float32)
    dxi = tl.zeros((BLOCK_F,), dtype=tl.float32)
    S, z, R = _load_state(kv0_ptr, z0_ptr, r0_ptr, state, F, Dv, BLOCK_F, BLOCK_DV, HAS_INIT)
    for t0 in range(0, T, CHUNK):
        rows = t0 + pos
        xk, rows_ok = _load_rows(k_base, t0, T, stride_kt, D, CHUNK, BLOCK_D)
        valid = _unpadded(pad_ptr + b * stride_pb, t0, rows_ok, CHUNK, HAS_PAD)
        xk, _, _ = _finite_rows(xk, valid)
        uk = xk.to(tl.float32) * mult
        phi_k, c = _key_features(
            _project(uk, w), 0.5 * tl.sum(uk * uk, axis=1), valid, feats, F, sqrt_xi
        )
        xq, _ = _load_rows(q_base, t0, T, stride_qt, D, CHUNK, BLOCK_D)
        xq, _, q_ok = _finite_rows(xq, rows_ok)
        uq = xq.to(tl.float32) * mult
        unit_q = _unit_query_features(_project(uq, w), feats, F)
        phi_q = unit_q * sqrt_xi[None, :]
        vals, _ = _load_rows(v_base, t0, T, stride_vt, Dv, CHUNK, BLOCK_DV)
        vals, _, _ = _finite_rows(vals, valid)
        g, _ = _load_rows(g_base, t0, T, stride_gt, Dv, CHUNK, BLOCK_DV)
        # forward, recomputed in float32 (on the finite inputs, as the forward kernel)
        M = _row_references(c, R, causal)
        E = _key_weights(c, M, causal)
        A = _masked(tl.dot(phi_q, tl.trans(phi_k), input_precision="ieee"), E, causal)
        row_scale = tl.exp(R - M)
        num = _mm(A, vals, UPCAST) + tl.dot(phi_q, S, input_precision="ieee") * row_scale[:, None]
        den = tl.sum(A, axis=1) + tl.sum(phi_q * z[None, :], axis=1) * row_scale
        o = num / tl.maximum(den, TINY)[:, None]
        dn, dn_z, delta, inv = _output_row_grads(g.to(tl.float32), o, den)
        stat = pid * T + rows
        tl.store(inv_ptr + stat, inv, mask=rows_ok)
        tl.store(delta_ptr + stat, delta, mask=rows_ok)
        if h % G == 0:
            tl.store(m_ptr + state * T + rows, M, mask=rows_ok)
        # dpq: intra-chunk then inter-chunk
        B_ = _masked(_score_grads(g, vals, delta, inv, UPCAST), E, causal)
        dphi = tl.dot(B_, phi_k, input_precision="ieee")
        dphi += (
            tl.dot(dn, tl.trans(S), input_precision="ieee") + dn_z[:, None] * z[None, :]
        ) * row_scale[:, None]
        Gq = phi_q * dphi
        dq = tl.where(q_ok, _query_input_grad(Gq, w) * mult, 0.0)  # 0 at non-finite entries
        _store_rows(
            dq_ptr + b * stride_dqb + h * stride_dqh, t0, rows_ok, stride_dqt, dq, D, CHUNK, BLOCK_D
        )
        dW, dxi = _frequency_grads(dW, dxi, Gq, unit_q * dphi, uq, NEED_DW)
        # state update (as in the forward)
        R_new = tl.maximum(R, tl.max(c, axis=0))
        kw = phi_k * tl.where(valid, tl.exp(c - R_new), 0.0)[:, None]
        decay = tl.exp(R - R_new)
        S = S * decay + _mm(tl.trans(kw), vals, UPCAST)
        z = z * decay + tl.sum(kw, axis=0)
        R = R_new
    if NEED_DW:
        _store_partial(dw_ptr, dxi_ptr, pid, dW, dxi, F, D, BLOCK_F, BLOCK_D)


@triton.jit
def causal_dkv_kernel(
    q_ptr,
    k_ptr,
    v_ptr,
    w_ptr,
    xi_ptr,
    pad_ptr,
    r0_ptr,
    do_ptr,
    m_ptr,
    inv_ptr,
    delta_ptr,
    dsf_ptr,
    dzf_ptr,
    dk_ptr,
    dv_ptr,
    dkv0_ptr,
    dz0_ptr,
    dw_ptr,
    dxi_ptr,
    T,
    T_BUCKET,
    H,
    G,
    F,
    D,
    Dv,
    mult,
    stride_qb,
    stride_qh,
    stride_qt,
    stride_kb,
    stride_kh,
    stride_kt,
    stride_vb,
    stride_vh,
    stride_vt,
    stride_gb,
    stride_gh,
    stride_gt,
    stride_dkb,
    stride_dkh,
    stride_dkt,
    stride_dvb,
    stride_dvh,
    stride_dvt,
    stride_pb,
    CHUNK: tl.constexpr,
    BLOCK_F: tl.constexpr,
    BLOCK_D: tl.constexpr,
    BLOCK_DV: tl.constexpr,
    UPCAST: tl.constexpr,
    HAS_PAD: tl.constexpr,
    HAS_DSTATE: tl.constexpr,
    NEED_DINIT: tl.constexpr,
    NEED_DW: tl.constexpr,
):
    """Reverse chunk scan of one (batch, kv head) for ``dk``, ``dv`` (module docstring).

    The reverse state ``dS = sum_{i later} exp(P - M_i) pq_i dn_i^T`` (summed over the ``G``
    query heads of this kv head; ``[dS, dz]``, starting from the final state's gradient with
    ``P = M_{T-1} = R_T``) is read by the chunk's keys with ``exp(c_j - P)``; inside the
    chunk ``Gk = pk * ((dn V'^T * E)^T pq)`` and ``dv = (pq pk^T * E)^T dn``.
    """
    pid = tl.program_id(0)
    Hk = H // G
    b = pid // Hk
    hk = pid % Hk
    k_base = k_ptr + b * stride_kb + hk * stride_kh
    v_base = v_ptr + b * stride_vb + hk * stride_vh
    feats = tl.arange(0, BLOCK_F)
    pos = tl.arange(0, CHUNK)
    causal = pos[None, :] <= pos[:, None]
    sqrt_xi = tl.load(xi_ptr + feats, mask=feats < F, other=0.0)
    w = _load_w(w_ptr, F, D, BLOCK_F, BLOCK_D)
    dW = tl.zeros((BLOCK_F, BLOCK_D), dtype=tl.float32)
    dxi = tl.zeros((BLOCK_F,), dtype=tl.float32)
    dS, dz, _ = _load_state(dsf_ptr, dzf_ptr, dsf_ptr, pid, F, Dv, BLOCK_F, BLOCK_DV, HAS_DSTATE)
    P = tl.load(m_ptr + pid * T + T - 1)
    n_chunks = tl.cdiv(T, CHUNK)
    for step in range(0, n_chunks):
        t0 = (n_chunks - 1 - step) * CHUNK
        rows = t0 + pos
        xk, rows_ok = _load_rows(k_base, t0, T, stride_kt, D, CHUNK, BLOCK_D)
        valid = _unpadded(pad_ptr + b * stride_pb, t0, rows_ok, CHUNK, HAS_PAD)
        xk, _, k_ok = _finite_rows(xk, valid)
        uk = xk.to(tl.float32) * mult
        unit_k, c = _unit_key_features(
            _project(uk, w), 0.5 * tl.sum(uk * uk, axis=1), valid, feats, F
        )
        phi_k = unit_k * sqrt_xi[None, :]
        vals, _ = _load_rows(v_base, t0, T, stride_vt, Dv, CHUNK, BLOCK_DV)
        vals, _, v_ok = _finite_rows(vals, valid)
        M = tl.load(m_ptr + pid * T + rows, mask=rows_ok, other=CEIL)
        E = _key_weights(c, M, causal)
        P_new = tl.load(m_ptr + pid * T + t0)  # the smallest reference of this chunk
        to_new = tl.exp(P_new - M)  # rows' factors relative to P_new (0 past the end)
        # inter-chunk: the later queries, read by this chunk's keys
        kscale = tl.where(valid, tl.exp(c - P), 0.0)
        dphi = (_mm(vals, tl.trans(dS), UPCAST) + dz[None, :]) * kscale[:, None]
        dv = tl.dot(phi_k, dS, input_precision="ieee") * kscale[:, None]
        dS_chunk = tl.zeros((BLOCK_F, BLOCK_DV), dtype=tl.float32)
        dz_chunk = tl.zeros((BLOCK_F,), dtype=tl.float32)
        for gi in range(0, G):
            h = hk * G + gi
            xq, _ = _load_rows(
                q_ptr + b * stride_qb + h * stride_qh, t0, T, stride_qt, D, CHUNK, BLOCK_D
            )
            xq, _, _ = _finite_rows(xq, rows_ok)
            phi_q = _query_features(_project(xq.to(tl.float32) * mult, w), feats, F, sqrt_xi)
            g, _ = _load_rows(
                do_ptr + b * stride_gb + h * stride_gh, t0, T, stride_gt, Dv, CHUNK, BLOCK_DV
            )
            stat = (b * H + h) * T + rows
            inv = tl.load(inv_ptr + stat, mask=rows_ok, other=0.0)
            delta = tl.load(delta_ptr + stat, mask=rows_ok, other=0.0)
            dn = g.to(tl.float32) * inv[:, None]
            dn_z = -delta * inv
            B_ = _masked(_score_grads(g, vals, delta, inv, UPCAST), E, causal)  # (query i, key j)
            dphi += tl.dot(tl.trans(B_), phi_q, input_precision="ieee")
            A = _masked(tl.dot(phi_q, tl.trans(phi_k), input_precision="ieee"), E, causal)
            dv += tl.dot(tl.trans(A), dn, input_precision="ieee")
            phi_r = phi_q * to_new[:, None]
            dS_chunk += tl.dot(tl.trans(phi_r), dn, input_precision="ieee")
            dz_chunk += tl.sum(phi_r * dn_z[:, None], axis=0)
        Gk = phi_k * dphi
        dk = tl.where(k_ok, _key_input_grad(Gk, uk, w) * mult, 0.0)
        _store_rows(
            dk_ptr + b * stride_dkb + hk * stride_dkh,
            t0,
            rows_ok,
            stride_dkt,
            dk,
            D,
            CHUNK,
            BLOCK_D,
        )
        _store_rows(
            dv_ptr + b * stride_dvb + hk * stride_dvh,
            t0,
            rows_ok,
            stride_dvt,
            tl.where(v_ok, dv, 0.0),
            Dv,
            CHUNK,
            BLOCK_DV,
        )
        dW, dxi = _frequency_grads(dW, dxi, Gk, unit_k * dphi, uk, NEED_DW)
        decay = tl.exp(P_new - P)
        dS = dS * decay + dS_chunk
        dz = dz * decay + dz_chunk
        P = P_new
    if NEED_DINIT:
        to_init = tl.exp(tl.load(r0_ptr + pid) - P)
        _store_state(dkv0_ptr, dz0_ptr, pid, dS * to_init, dz * to_init, F, Dv, BLOCK_F, BLOCK_DV)
    if NEED_DW:
        _store_partial(dw_ptr, dxi_ptr, pid, dW, dxi, F, D, BLOCK_F, BLOCK_D)


# --------------------------------------------------------------------------- non-causal backward
@triton.jit
def noncausal_dq_kernel(
    q_ptr,
    w_ptr,
    xi_ptr,
    s_ptr,
    z_ptr,
    do_ptr,
    dq_ptr,
    inv_ptr,
    delta_ptr,
    dw_ptr,
    dxi_ptr,
    T,
    T_BUCKET,
    H,
    G,
    F,
    D,
    Dv,
    mult,
    rows_per_program,
    stride_qb,
    stride_qh,
    stride_qt,
    stride_gb,
    stride_gh,
    stride_gt,
    stride_dqb,
    stride_dqh,
    stride_dqt,
    BLOCK_T: tl.constexpr,
    BLOCK_F: tl.constexpr,
    BLOCK_D: tl.constexpr,
    BLOCK_DV: tl.constexpr,
    NEED_DW: tl.constexpr,
):
    """``dq`` for one (batch, head) and range of queries: ``dpq_i = [S, z] dn_i`` with the
    forward's state (relative to its one reference), ``dq = mult W^T (pq * dpq)``; writes
    ``1/den_i`` and ``delta_i`` for :func:`noncausal_dstate_kernel`."""
    pid = tl.program_id(0)
    part = tl.program_id(1)
    b = pid // H
    h = pid % H
    state = b * (H // G) + h // G
    feats = tl.arange(0, BLOCK_F)
    sqrt_xi = tl.load(xi_ptr + feats, mask=feats < F, other=0.0)
    w = _load_w(w_ptr, F, D, BLOCK_F, BLOCK_D)
    S, z, _ = _load_state(s_ptr, z_ptr, s_ptr, state, F, Dv, BLOCK_F, BLOCK_DV, True)
    dW = tl.zeros((BLOCK_F, BLOCK_D), dtype=tl.float32)
    dxi = tl.zeros((BLOCK_F,), dtype=tl.float32)
    start = part * rows_per_program
    end = tl.minimum(start + rows_per_program, T)
    for t0 in range(start, end, BLOCK_T):
        xq, valid = _load_rows(
            q_ptr + b * stride_qb + h * stride_qh, t0, end, stride_qt, D, BLOCK_T, BLOCK_D
        )
        xq, _, q_ok = _finite_rows(xq, valid)
        uq = xq.to(tl.float32) * mult
        unit_q = _unit_query_features(_project(uq, w), feats, F)
        phi_q = unit_q * sqrt_xi[None, :]
        g, _ = _load_rows(
            do_ptr + b * stride_gb + h * stride_gh, t0, end, stride_gt, Dv, BLOCK_T, BLOCK_DV
        )
        num = tl.dot(phi_q, S, input_precision="ieee")
        den = tl.sum(phi_q * z[None, :], axis=1)
        o = num / tl.maximum(den, TINY)[:, None]
        dn, dn_z, delta, inv = _output_row_grads(g.to(tl.float32), o, den)
        stat = pid * T + t0 + tl.arange(0, BLOCK_T)
        tl.store(inv_ptr + stat, inv, mask=valid)
        tl.store(delta_ptr + stat, delta, mask=valid)
        dphi = tl.dot(dn, tl.trans(S), input_precision="ieee") + dn_z[:, None] * z[None, :]
        Gq = phi_q * dphi
        _store_rows(
            dq_ptr + b * stride_dqb + h * stride_dqh,
            t0,
            valid,
            stride_dqt,
            tl.where(q_ok, _query_input_grad(Gq, w) * mult, 0.0),
            D,
            BLOCK_T,
            BLOCK_D,
        )
        dW, dxi = _frequency_grads(dW, dxi, Gq, unit_q * dphi, uq, NEED_DW)
    if NEED_DW:
        _store_partial(
            dw_ptr, dxi_ptr, pid * tl.num_programs(1) + part, dW, dxi, F, D, BLOCK_F, BLOCK_D
        )


@triton.jit
def noncausal_dstate_kernel(
    q_ptr,
    w_ptr,
    xi_ptr,
    do_ptr,
    inv_ptr,
    delta_ptr,
    r_ptr,
    r0_ptr,
    dsf_ptr,
    dzf_ptr,
    ds_ptr,
    dz_ptr,
    dkv0_ptr,
    dz0_ptr,
    T,
    T_BUCKET,
    H,
    G,
    F,
    D,
    Dv,
    mult,
    stride_qb,
    stride_qh,
    stride_qt,
    stride_gb,
    stride_gh,
    stride_gt,
    BLOCK_T: tl.constexpr,
    BLOCK_F: tl.constexpr,
    BLOCK_D: tl.constexpr,
    BLOCK_DV: tl.constexpr,
    HAS_DSTATE: tl.constexpr,
    NEED_DINIT: tl.constexpr,
):
    """``[dS, dz] = dS_T + sum_i pq_i [dn_i, dn_z_i]^T`` over every query of the ``G`` heads
    of one (batch, kv head), relative to the forward's reference ``R`` (all keys see the same
    queries); the initial state's gradient is ``exp(R_0 - R) [dS, dz]``."""
    pid = tl.program_id(0)
    Hk = H // G
    b = pid // Hk
    hk = pid % Hk
    feats = tl.arange(0, BLOCK_F)
    sqrt_xi = tl.load(xi_ptr + feats, mask=feats < F, other=0.0)
    w = _load_w(w_ptr, F, D, BLOCK_F, BLOCK_D)
    dS, dz, _ = _load_state(dsf_ptr, dzf_ptr, dsf_ptr, pid, F, Dv, BLOCK_F, BLOCK_DV, HAS_DSTATE)
    for gi in range(0, G):
        h = hk * G + gi
        for t0 in range(0, T, BLOCK_T):
            xq, valid = _load_rows(
                q_ptr + b * stride_qb + h * stride_qh, t0, T, stride_qt, D, BLOCK_T, BLOCK_D
            )
            xq, _, _ = _finite_rows(xq, valid)
            phi_q = _query_features(_project(xq.to(tl.float32) * mult, w), feats, F, sqrt_xi)
            g, _ = _load_rows(
                do_ptr + b * stride_gb + h * stride_gh, t0, T, stride_gt, Dv, BLOCK_T, BLOCK_DV
            )
            stat = (b * H + h) * T + t0 + tl.arange(0, BLOCK_T)
            inv = tl.load(inv_ptr + stat, mask=valid, other=0.0)
            delta = tl.load(delta_ptr + stat, mask=valid, other=0.0)
            dS += tl.dot(tl.trans(phi_q), g.to(tl.float32) * inv[:, None], input_precision="ieee")
            dz += tl.sum(phi_q * (-delta * inv)[:, None], axis=0)
    _store_state(ds_ptr, dz_ptr, pid, dS, dz, F, Dv, BLOCK_F, BLOCK_DV)
    if NEED_DINIT:
        to_init = tl.exp(tl.load(r0_ptr + pid) - tl.load(r_ptr + pid))
        _store_state(dkv0_ptr, dz0_ptr, pid, dS * to_init, dz * to_init, F, Dv, BLOCK_F, BLOCK_DV)


@triton.jit
def noncausal_dkv_kernel(
    k_ptr,
    v_ptr,
    w_ptr,
    xi_ptr,
    pad_ptr,
    r_ptr,
    ds_ptr,
    dz_ptr,
    dk_ptr,
    dv_ptr,
    dw_ptr,
    dxi_ptr,
    T,
    T_BUCKET,
    Hk,
    F,
    D,
    Dv,
    mult,
    rows_per_program,
    stride_kb,
    stride_kh,
    stride_kt,
    stride_vb,
    stride_vh,
    stride_vt,
    stride_dkb,
    stride_dkh,
    stride_dkt,
    stride_dvb,
    stride_dvh,
    stride_dvt,
    stride_pb,
    BLOCK_T: tl.constexpr,
    BLOCK_F: tl.constexpr,
    BLOCK_D: tl.constexpr,
    BLOCK_DV: tl.constexpr,
    UPCAST: tl.constexpr,
    HAS_PAD: tl.constexpr,
    NEED_DW: tl.constexpr,
):
    """``dk``, ``dv`` for one (batch, kv head) and range of keys: with ``s_j = exp(c_j - R)``,
    ``Gk_j = s_j pk_j * ([dS, dz] v'_j)`` and ``dv_j = s_j dS^T pk_j``."""
    pid = tl.program_id(0)
    part = tl.program_id(1)
    b = pid // Hk
    h = pid % Hk
    feats = tl.arange(0, BLOCK_F)
    sqrt_xi = tl.load(xi_ptr + feats, mask=feats < F, other=0.0)
    w = _load_w(w_ptr, F, D, BLOCK_F, BLOCK_D)
    dS, dz, _ = _load_state(ds_ptr, dz_ptr, ds_ptr, pid, F, Dv, BLOCK_F, BLOCK_DV, True)
    R = tl.load(r_ptr + pid)
    dW = tl.zeros((BLOCK_F, BLOCK_D), dtype=tl.float32)
    dxi = tl.zeros((BLOCK_F,), dtype=tl.float32)
    start = part * rows_per_program
    end = tl.minimum(start + rows_per_program, T)
    for t0 in range(start, end, BLOCK_T):
        xk, rows_ok = _load_rows(
            k_ptr + b * stride_kb + h * stride_kh, t0, end, stride_kt, D, BLOCK_T, BLOCK_D
        )
        valid = _unpadded(pad_ptr + b * stride_pb, t0, rows_ok, BLOCK_T, HAS_PAD)
        xk, _, k_ok = _finite_rows(xk, valid)
        uk = xk.to(tl.float32) * mult
        unit_k, c = _unit_key_features(
            _project(uk, w), 0.5 * tl.sum(uk * uk, axis=1), valid, feats, F
        )
        phi_k = unit_k * sqrt_xi[None, :]
        vals, _ = _load_rows(
            v_ptr + b * stride_vb + h * stride_vh, t0, end, stride_vt, Dv, BLOCK_T, BLOCK_DV
        )
        vals, _, v_ok = _finite_rows(vals, valid)
        kscale = tl.where(valid, tl.exp(c - R), 0.0)
        dphi = (_mm(vals, tl.trans(dS), UPCAST) + dz[None, :]) * kscale[:, None]
        Gk = phi_k * dphi
        dv = tl.dot(phi_k, dS, input_precision="ieee") * kscale[:, None]
        _store_rows(
            dk_ptr + b * stride_dkb + h * stride_dkh,
            t0,
            rows_ok,
            stride_dkt,
            tl.where(k_ok, _key_input_grad(Gk, uk, w) * mult, 0.0),
            D,
            BLOCK_T,
            BLOCK_D,
        )
        _store_rows(
            dv_ptr + b * stride_dvb + h * stride_dvh,
            t0,
            rows_ok,
            stride_dvt,
            tl.where(v_ok, dv, 0.0),
            Dv,
            BLOCK_T,
            BLOCK_DV,
        )
        dW, dxi = _frequency_grads(dW, dxi, Gk, unit_k * dphi, uk, NEED_DW)
    if NEED_DW:
        _store_partial(
            dw_ptr, dxi_ptr, pid * tl.num_programs(1) + part, dW, dxi, F, D, BLOCK_F, BLOCK_D
        )


# --------------------------------------------------------------------------- autotuning
#: Autotuning key: the padded problem sizes and a power-of-two bucket of the length.
TUNE_KEY = ["F", "D", "Dv", "T_BUCKET"]


def _configs(name: str, sizes: tuple[int, ...], warps: tuple[int, ...] = (4, 8)) -> list:
    return [triton.Config({name: s}, num_warps=w) for s in sizes for w in warps]


CHUNK_CONFIGS = _configs("CHUNK", (16, 32, 64))
BLOCK_CONFIGS = _configs("BLOCK_T", (32, 64, 128))

# GPU entry points (the interpreter and explicit chunk/block sizes use the plain kernels).
noncausal_state_kernel_tuned = triton.autotune(BLOCK_CONFIGS, TUNE_KEY)(noncausal_state_kernel)
noncausal_output_kernel_tuned = triton.autotune(BLOCK_CONFIGS, TUNE_KEY)(noncausal_output_kernel)
causal_chunked_kernel_tuned = triton.autotune(CHUNK_CONFIGS, TUNE_KEY)(causal_chunked_kernel)
causal_dq_kernel_tuned = triton.autotune(CHUNK_CONFIGS, TUNE_KEY)(causal_dq_kernel)
causal_dkv_kernel_tuned = triton.autotune(CHUNK_CONFIGS, TUNE_KEY)(causal_dkv_kernel)
noncausal_dq_kernel_tuned = triton.autotune(BLOCK_CONFIGS, TUNE_KEY)(noncausal_dq_kernel)
noncausal_dstate_kernel_tuned = triton.autotune(BLOCK_CONFIGS, TUNE_KEY)(noncausal_dstate_kernel)
noncausal_dkv_kernel_tuned = triton.autotune(BLOCK_CONFIGS, TUNE_KEY)(noncausal_dkv_kernel)
