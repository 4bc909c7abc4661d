"""Feature-map attention in pure torch: non-causal, chunked causal, decode step, varlen.

With features ``phi`` for the softmax kernel (see :mod:`kernelapprox.attention.maps`),

.. math:: o_i = \\frac{\\phi(q_i)^\\top \\sum_{j \\in V(i)} \\phi(k_j) v_j^\\top}
                     {\\phi(q_i)^\\top \\sum_{j \\in V(i)} \\phi(k_j)}
          \\approx \\sum_{j \\in V(i)} \\operatorname{softmax}_j(s\\, q_i \\cdot k_j)\\, v_j,

where ``V(i)`` is every unmasked key (non-causal) or every unmasked key ``j <= i`` (causal)
(Katharopoulos et al., ICML 2020; Choromanski et al., ICLR 2021). The normalizer is the
last column of the same products: values are augmented with a column of ones.

Algorithms (cost linear in ``T``):

* non-causal: one reduction ``S = sum_j phi(k_j) [v_j, 1]^T`` then one output pass ``phi(Q) S``
  (without gradients over segments of keys, then of queries: see below);
* causal, chunked (Yang et al., "Gated Linear Attention", ICML 2024, Sec. 3.2; fla's
  ``chunk`` form): inside a chunk of ``C`` tokens the masked quadratic product
  ``(phi(Q) phi(K)^T * M) [V, 1]``; across chunks an fp32 state carried by a scan.
  Without gradients the pass runs over segments of whole chunks, a few MiB of features each
  (:func:`segment_length`), carrying the state: the same numbers without holding every
  token's features at once (non-causal: the key segments add to one state, rescaled when
  the reference rises, then every query segment reads it).

Stabilization exact under causality: each key's features are ``exp(c_j) phi_tilde(k_j)``
with a per-token log-scale ``c_j``; row ``i`` is computed relative to the prefix maximum
``M_i = max_{j <= i} c_j`` (including the incoming state's reference), so every factor
``exp(c_j - M_i)`` is ``<= 1`` and depends only on tokens ``<= i``; the state is kept relative
to the running maximum over completed chunks and rescaled when it grows. The query's
log-scale cancels between numerator and denominator. All products accumulate in float32
(float64 for float64 inputs); the output has the query's dtype.

Per-token log-scales bound every factor by 1 but not the products of a query's and a key's
stabilized features: when they peak on different features (exponential maps from about
``|q|, |k|`` x30) every product of a row can fall below the float32 range. The denominators
certify the result (:func:`~kernelapprox.attention.maps.denominator_flags`: a row whose
denominator is at least ``4 n tiny`` has relative error at most ``u``); where one is not,
exponential maps are recomputed with per-feature references (:func:`_exact_noncausal`,
:func:`_exact_causal`: each row's largest term is then ``xi_f``, at any norm) and the state
comes back with a per-feature ``log_scale``. The test costs one host synchronization per
call (which the warnings need anyway); the fallback ``O(T C F)`` exponentials. Under
``torch.compile`` neither runs.

Masking selects, it never multiplies by zero (``0 * nan = nan``): future scores of a chunk
are selected to 0, padded keys and values are selected away before anything is computed
from them, and the inputs enter the products as finite numbers (non-finite entries selected
to 0) while a constant ``nan`` is added to exactly the outputs that see a non-finite input.
Hence no value of a later, padded or other-sequence token (``nan`` and ``inf`` included)
changes an output that must not see it, bit for bit, and the gradients of those outputs are
the clean ones; an output row that sees a non-finite query, key or value is ``nan`` in every
column, and so is the state after it (nothing non-finite is ever turned into a finite
result).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from kernelapprox._validation import (
    check_bool,
    check_choice,
    check_positive_int,
)
from kernelapprox.attention.checks import (
    check_key_padding,
    check_qkv,
    check_tensor,
    dims,
    initial_state_tensors,
    per_feature_reference,
    per_head_reference,
    resolve_scale,
)
from kernelapprox.attention.chunked import ChunkProducts, masked_scores
from kernelapprox.attention.maps import (
    LOG_FLOOR,
    AnyMap,
    check_feature_map,
    denominator_flags,
    exponential_log_features,
    feature_weights,
    input_multiplier,
    is_positive,
    stabilized_features,
    uniform_log_weight,
    warn_denominator,
)
from kernelapprox.attention.state import AttentionState

LAYOUTS = ("bthd", "bhtd")
#: Default chunk length of the causal algorithm (tokens per intra-chunk quadratic block).
DEFAULT_CHUNK = 64
#: Floor of the per-feature path's exponent arguments per compute dtype:
#: ``log sqrt(tiny)`` (``tiny``: the smallest normal number), see :func:`_floored_exp`.
LOG_FLOOR_EXACT = {
    dt: 0.5 * math.log(torch.finfo(dt).tiny) for dt in (torch.float32, torch.float64)
}


# --------------------------------------------------------------------------- validation
def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """float64 stays float64 (oracle checks); everything else accumulates in float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _map_params(
    fm: AnyMap, params: dict[str, torch.Tensor] | None, device: torch.device, dtype: torch.dtype
) -> dict[str, torch.Tensor]:
    if params is None:
        return fm.tensors(device, dtype)
    return {name: p.to(device=device, dtype=dtype) for name, p in params.items()}


def _no_grad_needed(*tensors: Any) -> bool:
    """Whether no output needs a gradient (then buffers are updated in place)."""
    if not torch.is_grad_enabled():
        return True
    flat: list[Any] = []
    for x in tensors:
        if isinstance(x, dict):
            flat.extend(x.values())
        elif isinstance(x, tuple):
            flat.extend(x)
        else:
            flat.append(x)
    return not any(isinstance(x, torch.Tensor) and x.requires_grad for x in flat)


# --------------------------------------------------------------------------- layouts
def _working(x: torch.Tensor, layout: str, kv_heads: int) -> torch.Tensor:
    """A view ``(B, H_kv, T, G, D)``: query head ``h`` is group ``h % G`` of kv head ``h // G``."""
    if layout == "bthd":
        return x.unflatten(2, (kv_heads, -1)).permute(0, 2, 1, 3, 4)
    return x.unflatten(1, (kv_heads, -1)).permute(0, 1, 3, 2, 4)


def _from_working(o: torch.Tensor, layout: str) -> torch.Tensor:
    B, Hk, T, G, D = o.shape
    if layout == "bthd":
        return o.permute(0, 2, 1, 3, 4).reshape(B, T, Hk * G, D)
    return o.permute(0, 1, 3, 2, 4).reshape(B, Hk * G, T, D)


def _safe_denominator(den: torch.Tensor, fm: AnyMap) -> torch.Tensor:
    """Keep ``|den| >= tiny`` (the smallest normal number), preserving its sign; ``0 -> 1``.

    In the stabilized units the largest contributing key has weight 1, so ``den`` reaches
    ``tiny`` only when every visible key is masked or underflows. A row with no visible key
    has ``num = den = 0`` exactly: dividing by 1 gives the output 0 (softmax attention would
    give ``nan``) and finite gradients (``num / tiny`` would give a ``1 / tiny`` gradient that
    overflows to ``inf * 0 = nan`` in the backward pass).

    The callers first test the ratio with
    :func:`~kernelapprox.attention.maps.denominator_flags` (and warn).
    """
    positive = is_positive(fm)
    tiny = torch.finfo(den.dtype).tiny
    den = torch.where(den == 0, torch.ones_like(den), den)
    if positive:
        return den.clamp_min(tiny)
    return torch.where(den < 0, den.clamp_max(-tiny), den.clamp_min(tiny))


# --------------------------------------------------------------------------- algorithms
#: Bytes of one segment's query (or key) features in a pass without gradients (see
#: :func:`segment_length`).
SEGMENT_BYTES = 8 * 2**20


class _Features:
    """The stabilized features of one call (map, parameters, input multiplier, options of
    :func:`~kernelapprox.attention.maps.stabilized_features`), for all tokens or a segment."""

    def __init__(
        self, fm: AnyMap, t: dict[str, torch.Tensor], mult: float, opts: dict[str, Any]
    ) -> None:
        self.fm, self.t, self.mult, self.opts = fm, t, mult, opts

    def queries(self, qw: torch.Tensor, seg: slice) -> torch.Tensor:
        """``phi_tilde(q)`` ``(B, H_kv, L, G, F)`` of the tokens ``seg`` of ``qw`` (the
        queries' log-scales cancel)."""
        return stabilized_features(self.fm, qw[:, :, seg], self.t, self.mult, **self.opts)[0]

    def keys(
        self, kw: torch.Tensor, pad: torch.Tensor | None, seg: slice
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(phi_tilde(k), c)`` of the tokens ``seg`` of ``kw``, with padded keys (``pad``
        ``(B, 1, T)``, True = padded) selected to zero features and the floor log-scale."""
        phi_k, ck = stabilized_features(self.fm, kw[:, :, seg], self.t, self.mult, **self.opts)
        if pad is not None:
            phi_k = phi_k.masked_fill(pad[..., seg, None], 0.0)
            ck = ck.masked_fill(pad[..., seg], LOG_FLOOR)
        return phi_k, ck


def _segments(T: int, length: int) -> list[slice]:
    """Consecutive slices of ``length`` tokens covering ``0 .. T - 1``."""
    return [slice(start, start + length) for start in range(0, T, length)]


def _joined(outs: list[torch.Tensor]) -> torch.Tensor:
    """The segments' outputs as one tensor along the token axis (no copy for one)."""
    return outs[0] if len(outs) == 1 else torch.cat(outs, dim=2)


def segment_length(x: torch.Tensor, n_features: int, chunk: int = 1) -> int:
    """Tokens per segment of a pass without gradients: a multiple of the chunk length
    ``C = min(chunk, T)`` (causal; 1 for non-causal) whose features take at most
    :data:`SEGMENT_BYTES` (at least one chunk), and at most ``T``.

    Such a pass keeps only the state between segments, so it need not hold every token's
    features at once. That matters on CPU: a block over glibc's 32 MiB ``mmap`` limit is
    page-faulted in and zeroed by the kernel on first touch at every call, and with two
    threads and transparent huge pages each such block cost more system time than its
    product took (``docs/results/benchmarks.md``), while blocks of a few MiB are reused by
    the C allocator. ``x``: queries ``(B, H_kv, T, G, D)`` or keys ``(B, H_kv, T, D)``,
    ``n_features`` the map's ``F``.
    """
    T = x.shape[2]
    C = min(chunk, T)
    rows_per_token = x.numel() // (T * x.shape[-1])
    per_chunk = rows_per_token * C * n_features * x.element_size()
    return min(T, max(1, SEGMENT_BYTES // per_chunk) * C)


def _add_keys(
    phi_k: torch.Tensor, ck: torch.Tensor, va: torch.Tensor, S: torch.Tensor, R: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The state ``(S, R)`` with the keys' contributions added, relative to
    ``M = max(R, max_j c_j)``: ``S e^{R - M} + sum_j phi_tilde(k_j) e^{c_j - M} [v_j, 1]^T``
    (every factor ``<= 1``). Shapes as in :func:`_causal_chunked`; returns ``(S, M)``."""
    M = torch.maximum(ck.amax(-1), R)  # (B, H_kv)
    S_new = phi_k.transpose(-1, -2) @ (va * torch.exp(ck - M[..., None])[..., None])
    return S_new + S * torch.exp(R - M)[..., None, None], M


def _noncausal_segments(
    features: _Features,
    qw: torch.Tensor,
    kw: torch.Tensor,
    pad: torch.Tensor | None,
    va: torch.Tensor,
    S0: torch.Tensor,
    R0: torch.Tensor,
    lengths: tuple[int, int],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Non-causal attention: the keys' state, then one read of it per query. The keys go in
    segments of ``lengths[1]`` tokens (:func:`_add_keys`, the state rescaled whenever the
    reference rises), then the queries in segments of ``lengths[0]``; lengths at least the
    token counts give one reduction and one output pass, the only form with gradients.
    Shapes as in :func:`_causal_chunked`; returns ``(out, S, R)``."""
    S, R = S0, R0
    for seg in _segments(kw.shape[2], lengths[1]):
        phi_k, ck = features.keys(kw, pad, seg)
        S, R = _add_keys(phi_k, ck, va[:, :, seg], S, R)
    outs = []
    for seg in _segments(qw.shape[2], lengths[0]):
        phi_q = features.queries(qw, seg)
        B, Hk, L, G, Fd = phi_q.shape
        outs.append((phi_q.reshape(B, Hk, L * G, Fd) @ S).view(B, Hk, L, G, -1))
    return _joined(outs), S, R


def _causal_segments(
    features: _Features,
    qw: torch.Tensor,
    kw: torch.Tensor,
    pad: torch.Tensor | None,
    va: torch.Tensor,
    S0: torch.Tensor,
    R0: torch.Tensor,
    chunk: int,
    length: int,
    inplace: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`_causal_chunked` over consecutive segments of ``length`` tokens (a multiple of
    the chunk length; ``length >= T``: one pass over all tokens, the only form with
    gradients; ``inplace`` as there), each segment starting from the state the previous one
    ended with.

    Every chunk, its references and its state walk are those of one pass over all tokens
    (chunks never straddle two segments, and the running maximum and the state carry over),
    so the outputs, state and log-scale are the same; only the features of one segment
    exist at a time. Shapes as in :func:`_causal_chunked` (``pad`` ``(B, 1, T)`` or None).
    """
    outs, S, R = [], S0, R0
    for seg in _segments(qw.shape[2], length):
        phi_q, (phi_k, ck) = features.queries(qw, seg), features.keys(kw, pad, seg)
        out, S, R = _causal_chunked(phi_q, phi_k, ck, va[:, :, seg], S, R, chunk, inplace=inplace)
        outs.append(out)
    return _joined(outs), S, R


def _causal_chunked(
    phi_q: torch.Tensor,
    phi_k: torch.Tensor,
    ck: torch.Tensor,
    va: torch.Tensor,
    S0: torch.Tensor,
    R0: torch.Tensor,
    chunk: int,
    *,
    inplace: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Chunked causal feature attention.

    Parameters
    ----------
    phi_q : ``(B, H_kv, T, G, F)`` stabilized query features (G query heads per kv head).
    phi_k : ``(B, H_kv, T, F)`` stabilized key features; ``ck`` ``(B, H_kv, T)`` their log-scales.
    va : ``(B, H_kv, T, D_v + 1)`` values with a column of ones.
    S0, R0 : incoming state ``(B, H_kv, F, D_v + 1)`` relative to ``exp(R0)``.
    inplace : accumulate into preallocated buffers (only when no gradient is needed).

    Returns ``(out (B, H_kv, T, G, D_v + 1), S_final, R_final)``: ``out`` holds numerator and
    denominator relative to each row's prefix maximum ``M_i``. The intra-chunk products run
    for all chunks at once. Without gradients the inter-chunk part walks the chunks with one
    state in place (memory ``O(T (F + D_v) + F D_v)``); with gradients every chunk's
    increment ``K_n^T V_n`` and every read of a state are batched products around a walk of
    one update per chunk (the ``T / C`` states are what the backward pass keeps anyway), in
    :class:`~kernelapprox.attention.chunked.ChunkProducts` with its hand-written backward.
    """
    B, Hk, T, G, Fd = phi_q.shape
    Dv1 = va.shape[-1]
    C = min(chunk, T)
    N = -(-T // C)
    pad = N * C - T
    if pad:
        phi_q = F.pad(phi_q, (0, 0, 0, 0, 0, pad))
        phi_k = F.pad(phi_k, (0, 0, 0, pad))
        ck = F.pad(ck, (0, pad), value=LOG_FLOOR)
        va = F.pad(va, (0, 0, 0, pad))
    Q = phi_q.reshape(B, Hk, N, C * G, Fd)  # rows ordered (position, group)
    K = phi_k.reshape(B, Hk, N, C, Fd)
    V = va.reshape(B, Hk, N, C, Dv1)
    c = ck.reshape(B, Hk, N, C)

    # References: prefix maxima inside each chunk, running maxima over completed chunks.
    prefix = c.cummax(dim=-1).values
    R_after = torch.maximum(prefix[..., -1], R0[..., None]).cummax(dim=-1).values  # (B,Hk,N)
    R_before = torch.cat((R0[..., None], R_after[..., :-1]), dim=-1)
    M = torch.maximum(prefix, R_before[..., None])  # (B, H_kv, N, C): row references

    # Intra-chunk, all chunks at once: masked products with key weights exp(c_j - M_i) <= 1.
    # Masking selects, it never multiplies by zero: a non-finite k_j (j > i) would otherwise
    # reach row i as 0 * nan = nan. (The values are finite here: see _finite_rows.)
    # The visible weights' arguments are <= 0 already; clamping the future ones to 0 keeps
    # them finite (they are selected away from A below) and cheap: filling them with -inf
    # instead sends torch's CPU exp to its slow path for results that underflow (about 20x
    # per element, half of every block).
    # Inter-chunk: the state before chunk n is P_0 = S0, P_{n+1} = P_n e^{R_n - R_{n+1}} + KV_n
    # with KV_n = K_n^T V_n (values relative to R_{n+1}), and row i of chunk n reads it as
    # out_i += e^{R_n - M_i} Q_i P_n. Every scale is a detached statistic.
    future = torch.ones(C, C, dtype=torch.bool, device=c.device).triu(1)
    weight = (c[..., None, :] - M[..., :, None]).clamp_(max=0.0).exp_()
    row_scale = torch.exp(R_before[..., None] - M)  # (B, H_kv, N, C)
    value_scale = torch.exp(c - R_after[..., None])  # values weighted relative to R_after
    decay = torch.exp(R_before - R_after)  # (B, H_kv, N)
    Bh = B * Hk
    if not inplace:
        # Batched products around two walks, with the hand-written backward pass of
        # kernelapprox.attention.chunked (the N states are what the backward pass keeps).
        out, S = ChunkProducts.apply(
            Q.reshape(Bh, N, C * G, Fd),
            K.reshape(Bh, N, C, Fd),
            V.reshape(Bh, N, C, Dv1),
            S0.reshape(Bh, Fd, Dv1),
            weight.masked_fill_(future, 0.0).view(Bh, N, C, C),
            future,
            row_scale.view(Bh, N, C),
            value_scale.view(Bh, N, C),
            decay.view(Bh, N),
        )
        out = out.view(B, Hk, N * C, G, Dv1)[:, :, :T]
        return out, S.view(B, Hk, Fd, Dv1), R_after[..., -1]
    Q3, K3 = Q.view(Bh, N, C * G, Fd), K.view(Bh, N, C, Fd)
    A = masked_scores(Q3, K3, weight.view(Bh, N, C, C), future)
    out = (A @ V.view(Bh, N, C, Dv1)).view(B, Hk, N, C, G, Dv1)
    # One chunk at a time, so the state stays in cache. Each read is one batched product
    # into a contiguous buffer (accumulating straight into the strided chunk of ``out`` made
    # torch run one small, separately threaded product per head: 2-4x slower at 2 threads),
    # added with its row scales, or plainly where they are all exactly 1 (no key of the
    # chunk raised the reference: most chunks once the running maximum has settled).
    row_scale = row_scale[..., None, None]  # (B, H_kv, N, C, 1, 1)
    Vw = V * value_scale[..., None]
    rescale = (row_scale != 1).view(Bh, N, C).any(-1).any(0).tolist()
    redecay = (decay != 1).view(Bh, N).any(0).tolist()
    V3 = Vw.view(Bh, N, C, Dv1)
    out3, scale3 = out.view(Bh, N, C * G, Dv1), row_scale.view(Bh, N, C, 1, 1)
    decay3 = decay.view(Bh, N, 1, 1)
    S = S0.reshape(Bh, Fd, Dv1).clone()
    inter = out.new_empty(Bh, C * G, Dv1)
    for n in range(N):
        torch.bmm(Q3[:, n], S, out=inter)
        if rescale[n]:
            out3[:, n].view(Bh, C, G, Dv1).addcmul_(inter.view(Bh, C, G, Dv1), scale3[:, n])
        else:
            out3[:, n].add_(inter)
        if redecay[n]:
            S.mul_(decay3[:, n])
        S.baddbmm_(K3[:, n].transpose(-1, -2), V3[:, n])
    S = S.view(B, Hk, Fd, Dv1)
    out = out.reshape(B, Hk, N * C, G, Dv1)[:, :, :T]
    return out, S, R_after[..., -1]


# --------------------------------------------------------------------------- per-feature references
#: Chunk length of the per-feature (log-space) causal algorithm: its intra-chunk part forms
#: ``C x C x F`` exponentials per chunk, so it is kept short.
EXACT_CHUNK = 16


def _floored_exp(x: torch.Tensor, floor: float) -> torch.Tensor:
    """``exp(min(max(x, floor), 0))`` for the per-feature path's arguments ``x <= 0``, with
    ``floor = log sqrt(tiny)`` (``1e-19`` in float32, ``1e-154`` in float64).

    Every row of that path has a term ``>= min_f xi_f`` (its largest), so raising the ``n``
    terms below ``sqrt(tiny)`` to it moves the row by less than ``n sqrt(tiny) / min_f
    xi_f`` relatively (``< u`` up to ``n / min xi = 5e11`` in float32, e.g. ``T = 4096``,
    ``F = m = 256``: ``3e8``). In exchange the products of those terms stay normal numbers
    and torch's CPU ``exp`` stays off its slow path for results that underflow (about 20x
    per element, most of the cost at large norms; subnormal operands slow the products the
    same way). The upper clamp keeps the entries selected away afterwards finite, so that
    no backward pass meets ``0 * inf``.
    """
    return x.clamp(floor, 0.0).exp_()  # clamp saves its input, not its output: exp_ is safe


def _exact_noncausal(
    lq: torch.Tensor,
    lk: torch.Tensor,
    xi: torch.Tensor,
    va: torch.Tensor,
    keep: torch.Tensor | None,
    S0: torch.Tensor,
    R0: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Non-causal attention of an exponential map with per-feature key references.

    With log-features ``x_if`` (queries, without their row scale, which cancels) and
    ``y_jf`` (keys), ``phi(q_i) . phi(k_j) = e^{r_i} sum_f xi_f exp(x_if + y_jf)``. The
    reference of feature ``f`` is ``rho_f = max_j y_jf`` (visible keys and the initial
    state's ``R0_f``), that of query ``i`` is ``M_i = max_f (x_if + rho_f)``:

    .. math:: S = \\sum_j e^{y_j - \\rho} [v_j, 1]^\\top + e^{R_0 - \\rho} S_0, \\qquad
              o_i \\propto \\bigl(\\xi \\odot e^{x_i + \\rho - M_i}\\bigr)^\\top S .

    Every factor is ``<= 1`` and the largest term of the row, ``xi_f exp(x_if + y_jf -
    M_i)`` at the maximizing ``(j, f)``, is ``xi_f``: the denominator is at least
    ``min_f xi_f`` whatever the norms (with an initial state, if its reference is attained),
    where per-token log-scales let the products of two stabilized features underflow
    (queries and keys that peak on different features). All references are detached: they
    cancel between numerator and denominator. ``lq`` ``(B, H_kv, T_q, G, F)``, ``lk``
    ``(B, H_kv, T_k, F)``, ``keep`` ``(B, 1 or H_kv, T_k)`` (``False``: padding) or ``None``,
    ``R0`` ``(B, H_kv, F)``. Returns ``(out, S, rho)`` as :func:`_noncausal_segments`.
    """
    B, Hk, T, G, Fd = lq.shape
    stat = lk.detach()
    if keep is not None:
        stat = stat.masked_fill(~keep[..., None], LOG_FLOOR)
    rho = torch.maximum(stat.amax(-2), R0)  # (B, H_kv, F)
    M = (lq.detach() + rho[:, :, None, None, :]).amax(-1, keepdim=True)  # (B, H_kv, T, G, 1)
    floor = LOG_FLOOR_EXACT[lq.dtype]
    Kh = _floored_exp(lk - rho[:, :, None, :], floor)
    if keep is not None:  # padded keys: selected away (finite before: no 0 * inf gradient)
        Kh = Kh.masked_fill(~keep[..., None], 0.0)
    S = Kh.transpose(-1, -2) @ va + S0 * torch.exp(R0 - rho)[..., None]
    Qh = xi * _floored_exp(lq + rho[:, :, None, None, :] - M, floor)
    out = (Qh.reshape(B, Hk, T * G, Fd) @ S).view(B, Hk, T, G, -1)
    return out, S, rho


def _exact_causal(
    lq: torch.Tensor,
    lk: torch.Tensor,
    xi: torch.Tensor,
    va: torch.Tensor,
    keep: torch.Tensor | None,
    S0: torch.Tensor,
    R0: torch.Tensor,
    chunk: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Causal attention of an exponential map with per-feature references (log space).

    Notation of :func:`_exact_noncausal`. Every reference that row ``i`` uses depends on keys
    ``j <= i`` only:

    * ``P_if = max_{j <= i} y_jf`` (with the initial state's ``R0_f``): the per-feature
      prefix maximum, and ``M_i = max_f (x_if + P_if)``, the row's exact largest log-term;
    * chunks of ``C`` tokens carry the state ``S^n`` relative to ``rho^n_f``, the maximum of
      ``y_jf`` over the chunks before ``n``; the row reads it as
      ``(xi (.) exp(x_i + rho^n - M_i))^T S^n`` (factors ``<= 1``, since
      ``rho^n <= P_i``), and ``S^{n+1} = e^{rho^n - rho^{n+1}} S^n + sum_j e^{y_j -
      rho^{n+1}} [v_j, 1]^T``;
    * inside a chunk no single per-feature reference can serve both a key ``j`` and every
      query ``i >= j`` of the chunk without a later key, so the weights
      ``a_ij = sum_f xi_f exp(x_if + y_jf - M_i)`` are formed in log space, ``C^2 F``
      exponentials per chunk (GLA's secondary chunking does the same for its diagonal
      blocks; Yang et al., ICML 2024, Sec. 4), with the future and padded keys selected to
      ``-inf`` before ``exp``.

    The largest term of each row is then ``xi_f`` (no underflow at any norm) and the result
    is the exact ratio up to the rounding of the log-features. Cost ``O(T C F)`` exponentials
    and memory ``O(T C F)`` for the backward pass: this is the fallback of
    :func:`feature_attention` for the inputs whose per-token stabilized products underflow.
    ``S0`` is relative to ``R0`` ``(B, H_kv, F)``; returns ``(out, S_final, rho_final)``.
    """
    B, Hk, T, G, Fd = lq.shape
    Dv1 = va.shape[-1]
    C = min(chunk, T)
    N = -(-T // C)
    pad = N * C - T
    if keep is None:
        keep = torch.ones(B, 1, T, dtype=torch.bool, device=lq.device)
    if pad:
        lq = F.pad(lq, (0, 0, 0, 0, 0, pad))
        lk = F.pad(lk, (0, 0, 0, pad))
        va = F.pad(va, (0, 0, 0, pad))
        keep = F.pad(keep, (0, pad), value=False)
    keep = keep.expand(B, Hk, N * C).reshape(B, Hk, N, C)
    lq = lq.reshape(B, Hk, N, C, G, Fd)
    lk = lk.reshape(B, Hk, N, C, Fd)
    V = va.reshape(B, Hk, N, C, Dv1)
    stat = lk.detach().masked_fill(~keep[..., None], LOG_FLOOR)
    rho_after = torch.maximum(stat.amax(3), R0[:, :, None]).cummax(dim=2).values  # (B,Hk,N,F)
    rho_before = torch.cat((R0[:, :, None], rho_after[:, :, :-1]), dim=2)
    prefix = torch.maximum(stat.cummax(dim=3).values, rho_before[:, :, :, None])
    M = (lq.detach() + prefix[:, :, :, :, None]).amax(-1, keepdim=True)  # (B,Hk,N,C,G,1)
    hidden = torch.ones(C, C, dtype=torch.bool, device=lq.device).triu(1)  # j > i
    floor = LOG_FLOOR_EXACT[lq.dtype]
    S = S0
    outs = []
    for n in range(N):
        lq_n, lk_n, M_n, keep_n = lq[:, :, n], lk[:, :, n], M[:, :, n], keep[:, :, n]
        # (B, H_kv, C_i, G, C_j, F): every pair's log-terms relative to its row's maximum
        logs = lq_n[:, :, :, :, None, :] + lk_n[:, :, None, None, :, :] - M_n[..., None]
        masked = hidden[:, None, :] | ~keep_n[:, :, None, None, :]
        terms = _floored_exp(logs, floor).masked_fill(masked[..., None], 0.0)
        A = terms @ xi  # (B, H_kv, C, G, C)
        intra = A.reshape(B, Hk, C * G, C) @ V[:, :, n]
        Qh = xi * _floored_exp(lq_n + rho_before[:, :, n, None, None, :] - M_n, floor)
        inter = Qh.reshape(B, Hk, C * G, Fd) @ S
        outs.append((intra + inter).view(B, Hk, C, G, Dv1))
        Kh = _floored_exp(lk_n - rho_after[:, :, n, None, :], floor)
        Kh = Kh.masked_fill(~keep_n[..., None], 0.0)
        decay = torch.exp(rho_before[:, :, n] - rho_after[:, :, n])[..., None]
        S = S * decay + Kh.transpose(-1, -2) @ V[:, :, n]
    out = torch.stack(outs, dim=2).reshape(B, Hk, N * C, G, Dv1)[:, :, :T]
    return out, S, rho_after[:, :, -1]


# --------------------------------------------------------------------------- public API
def feature_attention(
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
    chunk_size: int = DEFAULT_CHUNK,
    params: dict[str, torch.Tensor] | None = None,
    recompute: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, AttentionState]:
    """Attention through a feature map, at cost linear in the sequence length.

    Approximates ``scaled_dot_product_attention(q, k, v, is_causal=causal, scale=scale)``:
    ``q`` and ``k`` are each multiplied by ``sqrt(scale)`` (default ``scale = 1/sqrt(D)``) and
    mapped by the *same* ``feature_map`` (made for ``kernels.Softmax()``), so
    ``phi(q) . phi(k) ~ exp(scale q.k)``. See the module docstring for the algorithms.

    Parameters
    ----------
    q : Tensor ``(B, T_q, H, D)`` (``layout="bthd"``) or ``(B, H, T_q, D)`` (``"bhtd"``)
    k : Tensor ``(B, T_k, H_kv, D)`` or ``(B, H_kv, T_k, D)``; ``H`` must be a multiple of
        ``H_kv`` (grouped-query attention; query head ``h`` reads kv head ``h // (H / H_kv)``;
        keys and values are never repeated).
    v : Tensor ``(B, T_k, H_kv, D_v)`` or ``(B, H_kv, T_k, D_v)``
    feature_map : FeatureMap or baseline map
        From :func:`kernelapprox.features.make` with ``kernels.Softmax()`` and ``dim=D``, or
        :class:`~kernelapprox.attention.maps.IdentityMap` / ``EluPlusOneMap``.
    causal : bool
        Query ``i`` sees keys ``j <= i`` (needs ``T_q == T_k``).
    key_padding_mask : bool Tensor ``(B, T_k)``, optional
        ``True`` marks padding (``nn.MultiheadAttention`` convention): the key and its value
        are selected away, removing it from numerator and denominator (whatever it holds,
        ``nan`` included). A query with no visible key outputs 0.
    cu_seqlens : int Tensor ``(N + 1,)``, optional
        Packed variable-length batch (FlashAttention convention, ``B == 1``): sequence ``n``
        is tokens ``cu_seqlens[n]:cu_seqlens[n+1]``; states are per sequence.
    initial_state : AttentionState, optional
        State after earlier keys (from ``output_final_state=True`` or
        :func:`feature_attention_step`); ``B`` is the number of sequences for ``cu_seqlens``.
    output_final_state : bool
        Also return the :class:`AttentionState` after the last key.
    chunk_size : int
        Tokens per chunk of the causal algorithm.
    params : dict of Tensor, optional
        The map's tensors (as :meth:`FeatureMap.tensors` returns them); modules pass their
        buffers or learnable parameters here. Default: the map's own cached tensors.
    recompute : bool
        Save only the inputs for backward and recompute the features (and the products) in
        the backward pass (non-reentrant activation checkpointing): the memory kept between
        forward and backward drops from ``O(T (F + C))`` per head to the inputs' size.

    Returns
    -------
    Tensor in ``layout`` with ``q``'s dtype, or ``(output, AttentionState)``.

    Examples
    --------
    >>> import torch
    >>> from kernelapprox import features, kernels
    >>> from kernelapprox.attention import feature_attention, softmax_attention
    >>> g = torch.Generator().manual_seed(0)
    >>> q, k, v = (0.5 * torch.randn(1, 32, 2, 8, generator=g) for _ in range(3))
    >>> fm = features.make("positive", kernels.Softmax(), 4096, dim=8, sampler="orthogonal", seed=0)
    >>> out = feature_attention(q, k, v, fm, causal=True)
    >>> exact = softmax_attention(q, k, v, causal=True)
    >>> bool((out - exact).norm() / exact.norm() < 0.05)
    True
    """
    check_choice(layout, "layout", LAYOUTS)
    causal = check_bool(causal, "causal")
    output_final_state = check_bool(output_final_state, "output_final_state")
    recompute = check_bool(recompute, "recompute")
    B, _, Tk, _, Hk, D, Dv = check_qkv(q, k, v, layout, causal)
    fm = check_feature_map(feature_map, D)
    chunk = check_positive_int(chunk_size, "chunk_size")
    s = resolve_scale(scale, D)
    if cu_seqlens is not None:
        return packed_as_padded(
            q,
            k,
            v,
            cu_seqlens,
            layout=layout,
            key_padding_mask=key_padding_mask,
            output_final_state=output_final_state,
            attend=lambda *qkv, key_padding_mask: feature_attention(
                *qkv,
                fm,
                causal=causal,
                scale=s,
                layout=layout,
                key_padding_mask=key_padding_mask,
                initial_state=initial_state,
                output_final_state=output_final_state,
                chunk_size=chunk,
                params=params,
                recompute=recompute,
            ),
        )
    check_key_padding(key_padding_mask, B, Tk)
    cdt = _compute_dtype(q.dtype)
    t = _map_params(fm, params, q.device, cdt)
    S0, R0 = initial_state_tensors(initial_state, B, Hk, fm.output_dim, Dv, q.device, cdt)
    inplace = _no_grad_needed(q, k, v, S0, t)
    options = {
        "fm": fm,
        "scale": s,
        "layout": layout,
        "causal": causal,
        "chunk": chunk,
        "log_weight": uniform_log_weight(fm, params),
        "inplace": inplace,
    }
    if recompute and not inplace:
        # Save only the inputs for backward; features and products are recomputed there.
        o, S, R = checkpoint(
            _attend, q, k, v, key_padding_mask, S0, R0, t, use_reentrant=False, **options
        )
    else:
        o, S, R = _attend(q, k, v, key_padding_mask, S0, R0, t, **options)
    if output_final_state:
        return o, AttentionState(S[..., :Dv], S[..., Dv], R)
    return o


def _attend(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    key_padding_mask: torch.Tensor | None,
    S0: torch.Tensor,
    R0: torch.Tensor,
    t: dict[str, torch.Tensor],
    *,
    fm: AnyMap,
    scale: float,
    layout: str,
    causal: bool,
    chunk: int,
    log_weight: float | None,
    inplace: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Validated inputs to ``(output in layout, S_final, R_final)``."""
    Hk, Dv = dims(k, layout)[2], v.shape[-1]
    cdt = S0.dtype
    mult = input_multiplier(fm, scale)
    opts = {"log_weight": log_weight, "inplace": inplace, "owned": True}
    qw = _working(q, layout, Hk).to(cdt)
    kw = _working(k, layout, Hk)[:, :, :, 0].to(cdt)
    vw = _working(v, layout, Hk)[:, :, :, 0].to(cdt)
    pad = None if key_padding_mask is None else key_padding_mask.to(q.device)[:, None, :]
    if pad is not None:
        # Padded keys are selected away (k, v, features and log-scale), never multiplied by
        # 0: whatever a padded position holds (nan, inf) changes no output, state or gradient.
        kw = kw.masked_fill(pad[..., None], 0.0)
        vw = vw.masked_fill(pad[..., None], 0.0)
    # Non-finite inputs: the products run on finite numbers and ``poison`` (nan or 0) is added
    # to exactly the rows that see a non-finite query, key or value (see _finite_rows).
    if inplace:  # [v, 1] with the finite values written in place (no extra pass)
        va = vw.new_empty((*vw.shape[:-1], Dv + 1))
        va[..., Dv] = 1.0
        vw, bad_v = _finite_rows(vw, out=va[..., :Dv])
        # selecting q and k to finite numbers matters to the backward pass only (the forward
        # selects the future scores): here they are only tested
        bad_q, bad_k = _nan_rows(qw), _nan_rows(kw)
    else:
        (qw, bad_q), (kw, bad_k), (vw, bad_v) = (_finite_rows(x) for x in (qw, kw, vw))
        va = torch.cat((vw, torch.ones_like(vw[..., :1])), dim=-1)
    bad_kv = bad_k + bad_v
    S0h, R0h = per_head_reference(S0, R0)
    features = _Features(fm, t, mult, opts)
    if causal:
        length = segment_length(qw, fm.output_dim, chunk) if inplace else qw.shape[2]
        out, S, R = _causal_segments(features, qw, kw, pad, va, S0h, R0h, chunk, length, inplace)
        seen = bad_kv.cumsum(-1)  # (B, H_kv, T): nan from the first non-finite key on
    else:
        lengths = (qw.shape[2], kw.shape[2])
        if inplace:
            lengths = (segment_length(qw, fm.output_dim), segment_length(kw, fm.output_dim))
        out, S, R = _noncausal_segments(features, qw, kw, pad, va, S0h, R0h, lengths)
        seen = bad_kv.sum(-1, keepdim=True)  # every query sees every key
    poison = (seen[..., None] + bad_q)[..., None]  # (B, H_kv, T_q, G, 1)
    checks = {
        "dtype": q.dtype,
        "rows_may_be_empty": key_padding_mask is not None,
        "ignore": torch.isnan(poison[..., 0]),  # rows that are nan anyway
    }
    imprecise, underflow, ill = denominator_flags(out[..., Dv], fm, out[..., :Dv], vw, **checks)
    if imprecise and fm.exponential:
        # Per-token log-scales left some row's products below the float32 range (large
        # |q|, |k| peaking on different features): redo it with per-feature references.
        keep = None if pad is None else ~pad
        lq = exponential_log_features(fm, _finite_rows(qw)[0], t, mult, row_scale=False)
        lk = exponential_log_features(fm, _finite_rows(kw)[0], t, mult)
        xi, R0f = feature_weights(fm, t), per_feature_reference(R0, lk.shape[-1])
        if causal:
            out, S, R = _exact_causal(lq, lk, xi, va, keep, S0, R0f, min(chunk, EXACT_CHUNK))
        else:
            out, S, R = _exact_noncausal(lq, lk, xi, va, keep, S0, R0f)
        _, underflow, _ = denominator_flags(out[..., Dv], fm, **checks)
    warn_denominator(fm, out.dtype, underflow, ill)
    S = S + seen[..., -1, None, None]  # the state after a non-finite key or value is nan
    den = _safe_denominator(out[..., Dv], fm)
    o = poison + out[..., :Dv] / den[..., None]  # not addcdiv: its backward squares den
    return _from_working(o, layout).to(q.dtype), S, R


def _finite_rows(
    x: torch.Tensor, *, out: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x_finite, poison)``: ``x`` with its non-finite entries selected to 0, and per row
    (all axes but the last) ``poison = 0`` where the row is finite, ``nan`` where it is not.

    Masking a product by multiplying with 0 cannot remove ``inf`` or ``nan`` (``0 * nan =
    nan``), and a matrix product cannot select per row: the algorithms therefore run on
    finite inputs, and ``poison`` carries the non-finite ones to exactly the outputs that see
    them (``o_i = poison_i + num_i / den_i``; a row that sees a non-finite input is ``nan``
    in every column, even where a map would give a finite limit, e.g. ``elu(-inf) + 1 =
    0``). Since ``poison`` is a constant, the gradients of every other output stay finite.
    ``out`` receives ``x_finite`` (no autograd then). Without ``out``, a finite ``x`` is
    returned as it is: the selection and its backward pass are two passes over ``x`` that
    change nothing then (see ``_surely_finite`` for the test).
    """
    if _surely_finite(x):
        return (x if out is None else out.copy_(x)), _zero_rows(x)
    poison = _exact_nan_rows(x)
    return torch.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0, out=out), poison


def _surely_finite(x: torch.Tensor) -> bool:
    """``True`` only if every entry of ``x`` is finite, from one sum (one pass, one host
    synchronization; ``False`` under ``torch.compile``, which then takes the exact path).

    A sum with an infinite term is infinite or ``nan`` (``inf + a = inf``, ``inf - inf =
    nan``), and ``nan`` propagates: a finite sum has finite terms only. The converse fails
    only where finite terms overflow the sum; ``False`` then sends the caller to the exact
    per-row test of ``_exact_nan_rows``, so the answer never depends on it.
    """
    if torch.compiler.is_compiling():
        return False
    return bool(torch.isfinite(x.detach().sum()))


def _zero_rows(x: torch.Tensor) -> torch.Tensor:
    """The ``poison`` of a finite ``x``: zeros over its rows (all axes but the last)."""
    return x.new_zeros(x.shape[:-1])


def _nan_rows(x: torch.Tensor) -> torch.Tensor:
    """Per row of ``x`` (all axes but the last): 0 if it is finite, else ``nan`` (detached);
    a finite ``x`` (``_surely_finite``) skips the row reductions of ``_exact_nan_rows``."""
    return _zero_rows(x) if _surely_finite(x) else _exact_nan_rows(x)


def _exact_nan_rows(x: torch.Tensor) -> torch.Tensor:
    """``_nan_rows`` by two row reductions (``amax`` and ``amin`` both propagate ``nan``, so
    the test is exact: no sum that could overflow)."""
    xd = x.detach()
    finite = torch.isfinite(xd.amax(-1)) & torch.isfinite(xd.amin(-1))
    return xd.new_zeros(finite.shape).masked_fill_(~finite, math.nan)


def feature_attention_step(
    q_t: torch.Tensor,
    k_t: torch.Tensor,
    v_t: torch.Tensor,
    state: AttentionState | None,
    feature_map: AnyMap,
    *,
    scale: float | None = None,
    params: dict[str, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, AttentionState]:
    """One decoding step: add key ``k_t`` and value ``v_t`` to ``state``, then read ``q_t``.

    ``q_t`` ``(B, H, D)``, ``k_t`` ``(B, H_kv, D)``, ``v_t`` ``(B, H_kv, D_v)``; ``state`` from
    :func:`feature_attention` (``output_final_state=True``) or ``None`` (empty). Returns
    ``(o_t (B, H, D_v), new_state)``; a sequence of steps equals causal
    :func:`feature_attention` on the whole sequence (non-finite inputs included: the step
    reads finite ``q_t, k_t, v_t`` and adds ``nan`` to the output and the state that see a
    non-finite one, see ``_finite_rows``). Cost ``O(H F D_v)`` per token, whatever the
    position.
    """
    q_t, k_t, v_t = (check_tensor(x, n, 3) for x, n in ((q_t, "q_t"), (k_t, "k_t"), (v_t, "v_t")))
    B, H, D = q_t.shape
    Hk, Dv = k_t.shape[1], v_t.shape[2]
    if tuple(k_t.shape) != (B, Hk, D) or tuple(v_t.shape[:2]) != (B, Hk) or H % Hk:
        raise ValueError(
            "feature_attention_step needs q_t (B, H, D), k_t (B, H_kv, D), v_t (B, H_kv, D_v) "
            f"with H a multiple of H_kv; got {tuple(q_t.shape)}, {tuple(k_t.shape)}, "
            f"{tuple(v_t.shape)}"
        )
    fm = check_feature_map(feature_map, D)
    s = resolve_scale(scale, D)
    cdt = _compute_dtype(q_t.dtype)
    t = _map_params(fm, params, q_t.device, cdt)
    mult = input_multiplier(fm, s)
    opts = {"log_weight": uniform_log_weight(fm, params), "owned": True}
    (qw, bad_q), (kw, bad_k), (vw, bad_v) = (
        _finite_rows(x.to(cdt)) for x in (q_t.unflatten(1, (Hk, -1)), k_t, v_t)
    )
    phi_q, _ = stabilized_features(fm, qw, t, mult, **opts)
    phi_k, ck = stabilized_features(fm, kw, t, mult, **opts)
    S0, R0 = initial_state_tensors(state, B, Hk, phi_k.shape[-1], Dv, q_t.device, cdt, "state")
    S0h, R0h = per_head_reference(S0, R0)
    R = torch.maximum(R0h, ck)
    va = torch.cat((vw, torch.ones_like(vw[..., :1])), dim=-1)
    new_kv = (phi_k * torch.exp(ck - R)[..., None])[..., :, None] * va[..., None, :]
    seen = bad_k + bad_v  # (B, H_kv): nan if the new key or value is not finite
    S = S0h * torch.exp(R0h - R)[..., None, None] + new_kv + seen[..., None, None]
    out = phi_q @ S  # (B, H_kv, G, D_v + 1)
    ignore = torch.isnan(bad_q + seen[..., None])
    imprecise, underflow, _ = denominator_flags(
        out[..., Dv], fm, rows_may_be_empty=False, ignore=ignore
    )
    if fm.exponential and (imprecise or R0.ndim == 3):
        # per-feature references (see _exact_causal), kept in the state: exact at any norm
        lq = exponential_log_features(fm, qw, t, mult, row_scale=False)  # (B, H_kv, G, F)
        lk = exponential_log_features(fm, kw, t, mult)  # (B, H_kv, F)
        R0f = per_feature_reference(R0, lk.shape[-1])
        R = torch.maximum(R0f, lk.detach())
        new_kv = torch.exp(lk - R)[..., :, None] * va[..., None, :]
        S = S0 * torch.exp(R0f - R)[..., None] + new_kv + seen[..., None, None]
        M = (lq.detach() + R[:, :, None]).amax(-1, keepdim=True)
        out = (feature_weights(fm, t) * torch.exp(lq + R[:, :, None] - M)) @ S
        _, underflow, _ = denominator_flags(
            out[..., Dv], fm, rows_may_be_empty=False, ignore=ignore
        )
    warn_denominator(fm, out.dtype, underflow, False)
    den = _safe_denominator(out[..., Dv], fm)
    o = bad_q[..., None] + out[..., :Dv] / den[..., None]
    return o.reshape(B, H, Dv).to(q_t.dtype), AttentionState(S[..., :Dv], S[..., Dv], R)


def packed_as_padded(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    cu_seqlens: Any,
    *,
    layout: str,
    key_padding_mask: Any,
    output_final_state: bool,
    attend: Callable[..., Any],
) -> torch.Tensor | tuple[torch.Tensor, AttentionState]:
    """Packed sequences: gather into a padded batch with a key padding mask, run
    ``attend(q, k, v, key_padding_mask=...)`` on it (any implementation), scatter back.

    Reading the sequence lengths is one host synchronization (as FlashAttention's varlen API,
    which takes ``max_seqlen`` from the host).
    """
    if key_padding_mask is not None:
        raise ValueError("pass either cu_seqlens or key_padding_mask, not both")
    B, Tq, Tk = q.shape[0], dims(q, layout)[1], dims(k, layout)[1]
    if B != 1 or Tq != Tk:
        raise ValueError(
            f"cu_seqlens needs packed self-attention inputs with B == 1 and T_q == T_k, got "
            f"B={B}, T_q={Tq}, T_k={Tk}"
        )
    if (
        not isinstance(cu_seqlens, torch.Tensor)
        or cu_seqlens.ndim != 1
        or (cu_seqlens.is_floating_point() or cu_seqlens.dtype == torch.bool)
    ):
        raise TypeError("cu_seqlens must be a 1-d integer tensor [0, l_1, l_1 + l_2, ..., T]")
    bounds = cu_seqlens.tolist()
    lengths = [b - a for a, b in itertools.pairwise(bounds)]
    if len(bounds) < 2 or bounds[0] != 0 or bounds[-1] != Tq or min(lengths) < 0:
        raise ValueError(
            f"cu_seqlens must start at 0, be non-decreasing and end at T = {Tq}, got {bounds}"
        )
    device = q.device
    t_max = max(max(lengths), 1)
    pos = torch.arange(t_max, device=device)
    starts = torch.as_tensor(bounds[:-1], device=device)
    lens = torch.as_tensor(lengths, device=device)
    valid = pos[None, :] < lens[:, None]  # (n, t_max)
    index = torch.where(valid, starts[:, None] + pos[None, :], 0)

    def padded(x: torch.Tensor) -> torch.Tensor:
        # The slots past a sequence's end are selected to 0 (not copies of token 0), so a
        # non-finite token of one sequence reaches no other sequence's outputs or gradients.
        if layout == "bthd":
            return x[0][index].masked_fill(~valid[:, :, None, None], 0.0)  # (n, t_max, H, D)
        return x[0][:, index].transpose(0, 1).masked_fill(~valid[:, None, :, None], 0.0)

    result = attend(padded(q), padded(k), padded(v), key_padding_mask=~valid)
    o, state = result if output_final_state else (result, None)
    o = o[valid][None] if layout == "bthd" else o.transpose(0, 1)[:, valid][None]
    return (o, state) if output_final_state else o
