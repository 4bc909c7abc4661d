"""Triton kernels of positive-feature attention, with autograd (optional; needs ``triton``).

:func:`triton_feature_attention` computes the same quantity as
:func:`kernelapprox.attention.feature_attention` for maps of the positive form
``log phi(u) = w.u - |u|^2/2 + log sqrt(xi)`` (FAVOR+, Choromanski et al., ICLR 2021; and,
through :func:`positive_form`, DiJiang's paper DCT map and hyperbolic features) with the
features computed inside the kernels from ``q``, ``k`` and the frequency matrix, so
``phi(q)`` and ``phi(k)`` are never written to memory, in the forward or the backward pass:

* non-causal: a reduction kernel per (batch, kv head) accumulates ``[S, z] = sum_j phi(k_j)
  [v_j, 1]^T`` (plus an incoming state) in float32 over key blocks with an online maximum of
  the keys' log-scales, then an output kernel per (batch, head, query block) computes
  ``o = phi(q) S / phi(q) z``;
* causal: one program per (batch, query head) walks the chunks with the float32 state in
  registers, the stabilization of :mod:`kernelapprox.attention.functional` (prefix maxima).

Gradients (``torch.autograd``) flow to ``q``, ``k``, ``v``, the map's ``W`` and ``sqrt_xi``
when passed through ``params`` with ``requires_grad``, the initial state's ``kv`` and ``z``,
and from the returned final state; the backward kernels recompute the features and save only
the inputs (plus O(T) row statistics written during the backward). The derivation is in
:mod:`kernelapprox.attention.triton._kernels`.

On a GPU the chunk/block sizes and warps are autotuned (``triton.autotune``, keyed on the
padded feature, head and value dims and a power-of-two bucket of ``T``) unless given. On a
machine without a GPU the kernels run in Triton's interpreter (set ``TRITON_INTERPRET=1``
before importing ``triton``) on CPU tensors, with one fixed size. This module imports
without ``triton`` (``HAS_TRITON`` is then ``False`` and :func:`triton_feature_attention`
raises ``ImportError``).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch

from kernelapprox._triton import triton_available, triton_interpreted
from kernelapprox._validation import check_bool, check_choice, check_positive_int
from kernelapprox.attention.checks import (
    check_key_padding,
    check_qkv,
    initial_state_tensors,
    per_head_reference,
    resolve_scale,
)
from kernelapprox.attention.functional import DEFAULT_CHUNK, feature_attention, packed_as_padded
from kernelapprox.attention.maps import (
    AnyMap,
    check_feature_map,
    denominator_flags,
    input_multiplier,
)
from kernelapprox.attention.state import AttentionState
from kernelapprox.features import FeatureMap

#: Whether the ``triton`` package can be imported.
HAS_TRITON = triton_available()
#: Operand dtypes of the kernels (accumulation is always float32).
DTYPES = (torch.float32, torch.bfloat16, torch.float16)
#: Chunk/block size used under the interpreter when none is given.
INTERPRETER_TILE = 32
#: At most this many programs split the rows of one head in the non-causal backward.
MAX_ROW_SPLITS = 16


def _kernels() -> Any:
    if not triton_available():
        raise ImportError(
            "triton_feature_attention needs the 'triton' package (pip install triton); use "
            "kernelapprox.attention.feature_attention without it"
        )
    from kernelapprox.attention.triton import _kernels

    return _kernels


def _block(n: int, minimum: int = 16) -> int:
    """Next power of two ``>= max(n, minimum)`` (``tl.dot`` needs sides of at least 16)."""
    return max(minimum, 1 << (n - 1).bit_length())


def _strides(x: torch.Tensor, layout: str) -> tuple[int, int, int]:
    """``(batch, head, token)`` strides of a tensor in ``layout`` (unit stride on the last dim)."""
    if layout == "bthd":
        return x.stride(0), x.stride(2), x.stride(1)
    return x.stride(0), x.stride(1), x.stride(2)


def _unit_stride(x: torch.Tensor) -> torch.Tensor:
    return x if x.stride(-1) == 1 else x.contiguous()


@dataclasses.dataclass(frozen=True)
class _Plan:
    """Static settings of one call (sizes, options, tile sizes; ``None`` = autotuned)."""

    causal: bool
    layout: str
    mult: float
    B: int
    Tq: int
    Tk: int
    H: int
    Hk: int
    D: int
    Dv: int
    F: int
    chunk: int | None
    block: int | None
    upcast: bool

    @property
    def G(self) -> int:
        return self.H // self.Hk

    @property
    def sizes(self) -> dict[str, int]:
        return {"BLOCK_F": _block(self.F), "BLOCK_D": _block(self.D), "BLOCK_DV": _block(self.Dv)}

    def bucket(self, T: int) -> int:
        return _block(T)


def _launch(plan: _Plan, name: str, grid: Any, *args: Any, tile: str, **meta: Any) -> None:
    """Run kernel ``name``: autotuned on a GPU when no size was given, else the plain kernel
    with the given size (or :data:`INTERPRETER_TILE` under the interpreter)."""
    kern = _kernels()
    size = plan.chunk if tile == "CHUNK" else plan.block
    if size is None and not triton_interpreted():
        getattr(kern, name + "_tuned")[grid](*args, **meta)
    else:
        getattr(kern, name)[grid](*args, **{tile: size or INTERPRETER_TILE}, **meta)


def _dummy(device: torch.device) -> torch.Tensor:
    return torch.zeros(1, device=device, dtype=torch.float32)


def _forward(
    plan: _Plan,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    W: torch.Tensor,
    sqrt_xi: torch.Tensor,
    kv0: torch.Tensor | None,
    z0: torch.Tensor | None,
    r0: torch.Tensor | None,
    pad: torch.Tensor | None,
) -> tuple[torch.Tensor, ...]:
    """``(o, kv, z, log_scale, bad, den)``: the output and the float32 state after the last
    key; ``bad`` ``(B, H_kv)`` is 1 where a key or value was non-finite (the kernels ran on
    finite numbers, so the state itself is finite; the caller makes it nan); ``den``
    ``(B, H, T_q)`` float32 holds each row's denominator in stabilized units (nan where the
    output is nan), for the range check of :func:`denominator_flags`."""
    p, dev = plan, q.device
    o = torch.empty((*q.shape[:-1], p.Dv), device=dev, dtype=q.dtype)
    den = torch.empty(p.B, p.H, p.Tq, device=dev, dtype=torch.float32)
    S = torch.empty(p.B, p.Hk, p.F, p.Dv, device=dev, dtype=torch.float32)
    z = torch.empty(p.B, p.Hk, p.F, device=dev, dtype=torch.float32)
    R = torch.empty(p.B, p.Hk, device=dev, dtype=torch.float32)
    bad = torch.empty_like(R)
    has_init, has_pad = kv0 is not None, pad is not None
    init = (kv0, z0, r0) if has_init else (_dummy(dev),) * 3
    pad_t = pad if has_pad else _dummy(dev)
    stride_p = pad.stride(0) if has_pad else 0
    flags = {"HAS_PAD": has_pad, "HAS_INIT": has_init, "UPCAST": p.upcast, **p.sizes}
    if p.causal:
        _launch(
            p,
            "causal_chunked_kernel",
            (p.B * p.H,),
            q,
            k,
            v,
            W,
            sqrt_xi,
            pad_t,
            *init,
            o,
            den,
            S,
            z,
            R,
            bad,
            p.Tq,
            p.bucket(p.Tq),
            p.H,
            p.G,
            p.F,
            p.D,
            p.Dv,
            p.mult,
            *_strides(q, p.layout),
            *_strides(k, p.layout),
            *_strides(v, p.layout),
            *_strides(o, p.layout),
            stride_p,
            tile="CHUNK",
            **flags,
        )
        return o, S, z, R, bad, den
    _launch(
        p,
        "noncausal_state_kernel",
        (p.B * p.Hk,),
        k,
        v,
        W,
        sqrt_xi,
        pad_t,
        *init,
        S,
        z,
        R,
        bad,
        p.Tk,
        p.bucket(p.Tk),
        p.Hk,
        p.F,
        p.D,
        p.Dv,
        p.mult,
        *_strides(k, p.layout),
        *_strides(v, p.layout),
        stride_p,
        tile="BLOCK_T",
        **flags,
    )
    _launch(
        p,
        "noncausal_output_kernel",
        lambda meta: (p.B * p.H, -(-p.Tq // meta["BLOCK_T"])),
        q,
        W,
        sqrt_xi,
        S,
        z,
        bad,
        o,
        den,
        p.Tq,
        p.bucket(p.Tq),
        p.H,
        p.G,
        p.F,
        p.D,
        p.Dv,
        p.mult,
        *_strides(q, p.layout),
        *_strides(o, p.layout),
        tile="BLOCK_T",
        **p.sizes,
    )
    return o, S, z, R, bad, den


def _row_splits(T: int) -> tuple[int, int]:
    """``(programs, rows per program)`` splitting ``T`` rows for the non-causal backward."""
    parts = max(1, min(MAX_ROW_SPLITS, -(-T // 64)))
    return parts, -(-T // parts)


def _backward(
    plan: _Plan,
    saved: tuple[Any, ...],
    do: torch.Tensor | None,
    dSf: torch.Tensor | None,
    dzf: torch.Tensor | None,
    needs: tuple[bool, ...],
) -> tuple[Any, ...]:
    """Gradients ``(dq, dk, dv, dW, d sqrt_xi, d kv0, d z0)`` (``None`` where not needed)."""
    q, k, v, W, sqrt_xi, kv0, z0, r0, pad, S, z, R = saved
    p, dev = plan, q.device
    f32 = torch.float32
    do = torch.zeros_like(q[..., :1]).expand(*q.shape[:-1], p.Dv) if do is None else do
    do = _unit_stride(do)
    has_dstate = dSf is not None or dzf is not None
    if has_dstate:
        dSf = torch.zeros_like(S) if dSf is None else dSf.to(f32).contiguous()
        dzf = torch.zeros_like(z) if dzf is None else dzf.to(f32).contiguous()
    else:
        dSf = dzf = _dummy(dev)
    need_dw = needs[3] or needs[4]
    need_dinit = kv0 is not None and (needs[5] or needs[6])
    dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
    dkv0 = torch.empty(p.B, p.Hk, p.F, p.Dv, device=dev, dtype=f32) if need_dinit else None
    dz0 = torch.empty(p.B, p.Hk, p.F, device=dev, dtype=f32) if need_dinit else None
    dinit = (dkv0, dz0) if need_dinit else (_dummy(dev),) * 2
    r0_t = r0 if kv0 is not None else _dummy(dev)
    pad_t = pad if pad is not None else _dummy(dev)
    stride_p = pad.stride(0) if pad is not None else 0
    inv = torch.empty(p.B, p.H, p.Tq, device=dev, dtype=f32)
    delta = torch.empty_like(inv)

    def partials(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not need_dw:
            return _dummy(dev), _dummy(dev)
        return (
            torch.empty(n, p.F, p.D, device=dev, dtype=f32),
            torch.empty(n, p.F, device=dev, dtype=f32),
        )

    common = {"UPCAST": p.upcast, "HAS_PAD": pad is not None, **p.sizes}
    if p.causal:
        init = (kv0, z0, r0) if kv0 is not None else (_dummy(dev),) * 3
        M = torch.empty(p.B, p.Hk, p.Tq, device=dev, dtype=f32)
        dw_q, dxi_q = partials(p.B * p.H)
        dw_k, dxi_k = partials(p.B * p.Hk)
        _launch(
            p,
            "causal_dq_kernel",
            (p.B * p.H,),
            q,
            k,
            v,
            W,
            sqrt_xi,
            pad_t,
            *init,
            do,
            dq,
            M,
            inv,
            delta,
            dw_q,
            dxi_q,
            p.Tq,
            p.bucket(p.Tq),
            p.H,
            p.G,
            p.F,
            p.D,
            p.Dv,
            p.mult,
            *_strides(q, p.layout),
            *_strides(k, p.layout),
            *_strides(v, p.layout),
            *_strides(do, p.layout),
            *_strides(dq, p.layout),
            stride_p,
            tile="CHUNK",
            HAS_INIT=kv0 is not None,
            NEED_DW=need_dw,
            **common,
        )
        _launch(
            p,
            "causal_dkv_kernel",
            (p.B * p.Hk,),
            q,
            k,
            v,
            W,
            sqrt_xi,
            pad_t,
            r0_t,
            do,
            M,
            inv,
            delta,
            dSf,
            dzf,
            dk,
            dv,
            *dinit,
            dw_k,
            dxi_k,
            p.Tq,
            p.bucket(p.Tq),
            p.H,
            p.G,
            p.F,
            p.D,
            p.Dv,
            p.mult,
            *_strides(q, p.layout),
            *_strides(k, p.layout),
            *_strides(v, p.layout),
            *_strides(do, p.layout),
            *_strides(dk, p.layout),
            *_strides(dv, p.layout),
            stride_p,
            tile="CHUNK",
            HAS_DSTATE=has_dstate,
            NEED_DINIT=need_dinit,
            NEED_DW=need_dw,
            **common,
        )
    else:
        parts_q, rows_q = _row_splits(p.Tq)
        parts_k, rows_k = _row_splits(p.Tk)
        dw_q, dxi_q = partials(p.B * p.H * parts_q)
        dw_k, dxi_k = partials(p.B * p.Hk * parts_k)
        dS = torch.empty_like(S)
        dz = torch.empty_like(z)
        _launch(
            p,
            "noncausal_dq_kernel",
            (p.B * p.H, parts_q),
            q,
            W,
            sqrt_xi,
            S,
            z,
            do,
            dq,
            inv,
            delta,
            dw_q,
            dxi_q,
            p.Tq,
            p.bucket(p.Tq),
            p.H,
            p.G,
            p.F,
            p.D,
            p.Dv,
            p.mult,
            rows_q,
            *_strides(q, p.layout),
            *_strides(do, p.layout),
            *_strides(dq, p.layout),
            tile="BLOCK_T",
            NEED_DW=need_dw,
            **p.sizes,
        )
        _launch(
            p,
            "noncausal_dstate_kernel",
            (p.B * p.Hk,),
            q,
            W,
            sqrt_xi,
            do,
            inv,
            delta,
            R,
            r0_t,
            dSf,
            dzf,
            dS,
            dz,
            *dinit,
            p.Tq,
            p.bucket(p.Tq),
            p.H,
            p.G,
            p.F,
            p.D,
            p.Dv,
            p.mult,
            *_strides(q, p.layout),
            *_strides(do, p.layout),
            tile="BLOCK_T",
            HAS_DSTATE=has_dstate,
            NEED_DINIT=need_dinit,
            **p.sizes,
        )
        _launch(
            p,
            "noncausal_dkv_kernel",
            (p.B * p.Hk, parts_k),
            k,
            v,
            W,
            sqrt_xi,
            pad_t,
            R,
            dS,
            dz,
            dk,
            dv,
            dw_k,
            dxi_k,
            p.Tk,
            p.bucket(p.Tk),
            p.Hk,
            p.F,
            p.D,
            p.Dv,
            p.mult,
            rows_k,
            *_strides(k, p.layout),
            *_strides(v, p.layout),
            *_strides(dk, p.layout),
            *_strides(dv, p.layout),
            stride_p,
            tile="BLOCK_T",
            NEED_DW=need_dw,
            **common,
        )
    dW = dxi = None
    if need_dw:
        dW = dw_q.sum(0) + dw_k.sum(0)
        dxi = dxi_q.sum(0) + dxi_k.sum(0)
    return dq, dk, dv, dW, dxi, dkv0, dz0


class _TritonAttention(torch.autograd.Function):
    """Autograd node: forward and backward Triton kernels (features recomputed, not saved)."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        plan: _Plan,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        W: torch.Tensor,
        sqrt_xi: torch.Tensor,
        kv0: torch.Tensor | None,
        z0: torch.Tensor | None,
        r0: torch.Tensor | None,
        pad: torch.Tensor | None,
    ) -> tuple[torch.Tensor, ...]:
        o, S, z, R, bad, den = _forward(plan, q, k, v, W, sqrt_xi, kv0, z0, r0, pad)
        ctx.plan = plan
        ctx.save_for_backward(q, k, v, W, sqrt_xi, kv0, z0, r0, pad, S, z, R)
        ctx.mark_non_differentiable(R, bad, den)
        ctx.set_materialize_grads(False)
        return o, S, z, R, bad, den

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: Any,
        do: torch.Tensor | None,
        dS: torch.Tensor | None,
        dz: torch.Tensor | None,
        _dR: Any,
        _dbad: Any,
        _dden: Any,
    ) -> tuple[Any, ...]:
        needs = ctx.needs_input_grad[1:8]
        dq, dk, dv, dW, dxi, dkv0, dz0 = _backward(ctx.plan, ctx.saved_tensors, do, dS, dz, needs)
        grads = (dq, dk, dv, dW, dxi, dkv0, dz0)
        return (
            None,
            *(g if need else None for g, need in zip(grads, needs, strict=True)),
            None,
            None,
        )


def has_positive_form(fm: AnyMap) -> bool:
    """Whether the kernels can compute ``fm``: its class implements
    :meth:`kernelapprox.features.FeatureMap.positive_form` (decided from the class, so that
    ``FeatureAttention``'s per-call backend choice computes nothing)."""
    return isinstance(fm, FeatureMap) and type(fm).positive_form is not FeatureMap.positive_form


def positive_form(
    fm: AnyMap, t: dict[str, torch.Tensor], device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(W, sqrt_xi)`` (float32, contiguous, on ``device``) of the positive map equal to
    ``fm`` (:meth:`~kernelapprox.features.FeatureMap.positive_form`, computed from ``t`` so
    that gradients flow back to its tensors)."""
    t32 = {name: x.to(device=device, dtype=torch.float32) for name, x in t.items()}
    form = fm.positive_form(t32) if hasattr(fm, "positive_form") else None
    if form is None:
        raise ValueError(
            f"triton_feature_attention supports the maps with a positive form (positive, dct, "
            f"hyperbolic), got {getattr(fm, 'name', type(fm).__name__)!r}"
        )
    W, sqrt_xi = form
    return W.contiguous(), sqrt_xi.contiguous()


def triton_feature_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    feature_map: AnyMap,
    *,
    causal: bool,
    scale: float | None = None,
    layout: str = "bthd",
    key_padding_mask: torch.Tensor | None = None,
    cu_seqlens: torch.Tensor | None = None,
    initial_state: AttentionState | None = None,
    output_final_state: bool = False,
    chunk_size: int | None = None,
    block_size: int | None = None,
    params: dict[str, torch.Tensor] | None = None,
) -> torch.Tensor | tuple[torch.Tensor, AttentionState]:
    """Positive-feature attention with the features computed inside Triton kernels.

    Same inputs and result as :func:`kernelapprox.attention.feature_attention` (layouts
    ``"bthd"``/``"bhtd"``, grouped-query attention, key padding, initial and final states)
    for a ``"positive"``, ``"dct"`` or ``"hyperbolic"`` map; operands ``float32``,
    ``bfloat16`` or ``float16``, float32 accumulation, output in ``q``'s dtype.
    Differentiable (see the module docstring).

    The kernels keep one log-scale reference per head. When some row's denominator falls
    below float32's normal range (very large ``|q|``, ``|k|`` peaking on different features;
    the range check of :func:`~kernelapprox.attention.maps.denominator_flags` on the
    denominators the kernels return), the call is recomputed by
    :func:`~kernelapprox.attention.feature_attention`, whose per-feature references are exact
    there (slower; the result and its gradients are then that function's).

    Parameters
    ----------
    key_padding_mask : bool Tensor ``(B, T_k)``, optional
        ``True`` marks padding: the key and its value are selected away (numerator and
        denominator; whatever they hold). Non-finite inputs are handled as in
        :func:`~kernelapprox.attention.feature_attention` (``tl.where`` in the kernels).
    initial_state : AttentionState, optional
        State after earlier keys: the causal kernel starts from it, the non-causal one adds
        it to the sum over keys. Gradients flow to its ``kv`` and ``z``.
    output_final_state : bool
        Also return the :class:`AttentionState` after the last key (float32; the log-scale
        convention differs from ``feature_attention``'s by a constant, the state
        ``exp(log_scale) kv`` is the same).
    chunk_size : int, optional
        Tokens per chunk of the causal kernels (rounded up to a power of two, at least 16).
        Default: autotuned on a GPU, 32 under the interpreter.
    block_size : int, optional
        Keys/queries per block of the non-causal kernels (as ``chunk_size``).
    cu_seqlens : int Tensor ``(N + 1,)``, optional
        Packed sequences (``B == 1``): sequence ``n`` is tokens ``cu_seqlens[n]:cu_seqlens[n+1]``,
        run as a padded batch with a key padding mask (as :func:`feature_attention` does).
    params : dict of Tensor, optional
        The map's tensors ``{"W": (F, D), "sqrt_xi": (F,)}`` (e.g. learnable parameters;
        gradients flow to them). Default: the map's own tensors.
    """
    check_choice(layout, "layout", ("bthd", "bhtd"))
    causal = check_bool(causal, "causal")
    output_final_state = check_bool(output_final_state, "output_final_state")
    B, Tq, Tk, H, Hk, D, Dv = check_qkv(q, k, v, layout, causal)
    if cu_seqlens is not None:
        return packed_as_padded(
            q,
            k,
            v,
            cu_seqlens,
            layout=layout,
            key_padding_mask=key_padding_mask,
            output_final_state=output_final_state,
            attend=lambda *qkv, key_padding_mask: triton_feature_attention(
                *qkv,
                feature_map,
                causal=causal,
                scale=scale,
                layout=layout,
                key_padding_mask=key_padding_mask,
                initial_state=initial_state,
                output_final_state=output_final_state,
                chunk_size=chunk_size,
                block_size=block_size,
                params=params,
            ),
        )
    fm = check_feature_map(feature_map, D)
    if not has_positive_form(fm):
        positive_form(fm, {}, q.device)  # raises, naming the map
    if q.dtype not in DTYPES:
        raise TypeError(
            f"triton_feature_attention needs float32, bfloat16 or float16 inputs, got {q.dtype}"
        )
    chunk = None if chunk_size is None else _block(check_positive_int(chunk_size, "chunk_size"))
    block = None if block_size is None else _block(check_positive_int(block_size, "block_size"))
    _kernels()
    t = fm.tensors(q.device, torch.float32) if params is None else params
    if not isinstance(t, dict) or not {"W", "sqrt_xi"} <= set(t):
        raise TypeError("params must be a dict with the map's tensors 'W' and 'sqrt_xi'")
    m = fm.n_features
    shapes = {"W": (m, D), "sqrt_xi": (m,), "radii": (m,)}
    for name, tensor in t.items():
        if name in shapes and tuple(tensor.shape) != shapes[name]:
            raise ValueError(
                f"params[{name!r}] must have shape {shapes[name]}, got {tuple(tensor.shape)}"
            )
    W, sqrt_xi = positive_form(fm, t, q.device)
    Fd = fm.output_dim
    check_key_padding(key_padding_mask, B, Tk)
    pad = None
    if key_padding_mask is not None:
        pad = key_padding_mask.to(q.device).contiguous().view(torch.uint8)
    kv0 = z0 = r0 = None
    initial_state_in = initial_state
    if initial_state is not None:
        S0, r0 = initial_state_tensors(initial_state, B, Hk, Fd, Dv, q.device, torch.float32)
        if r0.ndim == 3:
            # the kernels keep one reference per head: fold a per-feature state into it
            S0, r0 = per_head_reference(S0, r0)
            initial_state = AttentionState(S0[..., :Dv], S0[..., Dv], r0)
        kv0, z0, r0 = (
            x.to(device=q.device, dtype=torch.float32).contiguous() for x in initial_state
        )
        r0 = r0.detach()
    plan = _Plan(
        causal=bool(causal),
        layout=layout,
        mult=input_multiplier(fm, resolve_scale(scale, D)),
        B=B,
        Tq=Tq,
        Tk=Tk,
        H=H,
        Hk=Hk,
        D=D,
        Dv=Dv,
        F=Fd,
        chunk=chunk,
        block=block,
        upcast=q.dtype == torch.bfloat16 and triton_interpreted(),
    )
    q_in, k_in, v_in = q, k, v
    q, k, v = (_unit_stride(x) for x in (q, k, v))
    o, S, z, R, bad, den = _TritonAttention.apply(plan, q, k, v, W, sqrt_xi, kv0, z0, r0, pad)
    v_bhtd = v if layout == "bhtd" else v.transpose(1, 2)  # (B, H_kv, T_k, D_v)
    imprecise, _, _ = denominator_flags(
        den, fm, values=v_bhtd, rows_may_be_empty=key_padding_mask is not None
    )
    if imprecise:
        # The kernels keep one reference per head; here some row's stabilized products fell
        # below float32's normal range (large |q|, |k| peaking on different features). The
        # torch path recomputes exactly those cases with per-feature references.
        return feature_attention(
            q_in,
            k_in,
            v_in,
            feature_map,
            causal=causal,
            scale=scale,
            layout=layout,
            key_padding_mask=key_padding_mask,
            initial_state=initial_state_in,
            output_final_state=output_final_state,
            chunk_size=DEFAULT_CHUNK if chunk_size is None else chunk_size,
            params=params,
        )
    if output_final_state:
        # the state after a non-finite key or value is nan (as feature_attention's)
        poison = torch.zeros_like(bad).masked_fill_(bad > 0, math.nan)
        return o, AttentionState(S + poison[..., None, None], z + poison[..., None], R)
    return o
