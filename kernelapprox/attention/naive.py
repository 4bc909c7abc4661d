"""Slow, obviously correct references: exact softmax attention and two feature-map oracles.

* :func:`softmax_attention`: exact ``softmax(s q k^T + mask) v`` (Vaswani et al., 2017), the
  quantity every feature map approximates; quadratic in ``T``.
* :func:`quadratic_oracle`: ``(phi(Q) phi(K)^T * M) V / ((phi(Q) phi(K)^T * M) 1)`` with the
  causal/padding mask ``M`` materialized (Katharopoulos et al., ICML 2020, Eq. 4-9);
* :func:`recurrent_oracle`: the token recurrence ``S_t = S_{t-1} + phi(k_t) v_t^T``,
  ``o_t = phi(q_t)^T S_t / phi(q_t)^T z_t`` (Eq. 16-18).

Both oracles use the map's plain features (no stabilization, no chunking), repeat key/value
heads for grouped-query attention, and are meant to run in float64 on small inputs. Layout
``(B, T, H, D)``.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from kernelapprox.attention.maps import AnyMap, input_multiplier, plain_features


def _repeat_kv(x: torch.Tensor, heads: int) -> torch.Tensor:
    """Repeat kv heads ``(B, T, H_kv, D) -> (B, T, heads, D)``; head ``h`` uses ``h // G``."""
    return x.repeat_interleave(heads // x.shape[2], dim=2)


def _bthd(x: torch.Tensor, layout: str) -> torch.Tensor:
    return x if layout == "bthd" else x.transpose(1, 2)


def softmax_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    causal: bool = False,
    scale: float | None = None,
    layout: str = "bthd",
    key_padding_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Exact softmax attention, computed in float32 (float64 for float64 inputs).

    ``softmax(scale * q k^T + mask) v`` with ``scale = 1/sqrt(head_dim)`` by default, as
    ``torch.nn.functional.scaled_dot_product_attention``. Grouped-query attention: ``q`` may
    have a multiple of the key/value heads. ``key_padding_mask`` ``(B, T_k)`` is ``True`` at
    padding (``nn.MultiheadAttention`` convention). A query with no visible key gets 0.
    """
    q, k, v = (_bthd(x, layout) for x in (q, k, v))
    dtype = torch.float64 if q.dtype == torch.float64 else torch.float32
    q, k, v = (x.to(dtype) for x in (q, k, v))
    H = q.shape[2]
    k, v = _repeat_kv(k, H), _repeat_kv(v, H)
    s = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    scores = torch.einsum("bqhd,bkhd->bhqk", q, k) * s
    allowed = torch.ones(scores.shape[-2:], dtype=torch.bool, device=q.device)
    if causal:
        allowed = torch.tril(allowed)
    allowed = allowed.expand(scores.shape)
    if key_padding_mask is not None:
        allowed = allowed & ~key_padding_mask[:, None, None, :]
    scores = scores.masked_fill(~allowed, -math.inf)
    # a row with no visible key gets 0 (selected: nan_to_num would also zero a nan query)
    weights = torch.softmax(scores, dim=-1).masked_fill(~allowed.any(-1, keepdim=True), 0.0)
    return _bthd(_masked_product(weights, v, allowed), layout)


def _masked_product(weights: torch.Tensor, v: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """``sum_{j allowed} weights_ij v_j`` ``(B, T_q, H, D)`` from ``(B, H, T_q, T_k)`` weights.

    Masked keys are selected away, never multiplied by 0 (``0 * nan = nan``): the product
    takes finite values, and a row that sees a non-finite value (an allowed ``j``) is ``nan``
    in every column, the convention of :func:`kernelapprox.attention.feature_attention`.
    """
    bad = ~torch.isfinite(v).all(-1)  # (B, T_k, H)
    sees_bad = (allowed & bad.transpose(1, 2)[:, :, None, :]).any(-1)  # (B, H, T_q)
    out = torch.einsum("bhqk,bkhd->bqhd", weights, torch.nan_to_num(v, 0.0, 0.0, 0.0))
    return out.masked_fill(sees_bad.transpose(1, 2)[..., None], math.nan)


def _oracle_inputs(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    feature_map: AnyMap,
    scale: float | None,
    params: dict[str, torch.Tensor] | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    H = q.shape[2]
    s = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    mult = input_multiplier(feature_map, s)
    t = feature_map.tensors(q.device, q.dtype) if params is None else params
    phi_q = plain_features(feature_map, q, t, mult)
    phi_k = plain_features(feature_map, k, t, mult)
    return phi_q, phi_k, _repeat_kv(v, H)


def quadratic_oracle(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    feature_map: AnyMap,
    *,
    causal: bool,
    scale: float | None = None,
    key_padding_mask: torch.Tensor | None = None,
    initial_state: tuple[torch.Tensor, torch.Tensor] | None = None,
    params: dict[str, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """Masked quadratic form of feature attention; returns ``(o, (S, z))`` in absolute units.

    ``initial_state`` is ``(S0 (B, H_kv, F, D_v), z0 (B, H_kv, F))`` in absolute units; it acts
    as keys seen before the sequence. ``(S, z)`` is the state after the last key.
    """
    phi_q, phi_k, v_rep = _oracle_inputs(q, k, v, feature_map, scale, params)
    keep = torch.ones(k.shape[:2], dtype=torch.bool, device=k.device)
    if key_padding_mask is not None:
        keep = ~key_padding_mask
    # masks select (never multiply by 0, which keeps a nan or inf): padded keys and values
    phi_k = phi_k.masked_fill(~keep[:, :, None, None], 0.0)
    v = v.masked_fill(~keep[:, :, None, None], 0.0)
    v_rep = v_rep.masked_fill(~keep[:, :, None, None], 0.0)
    phi_k_rep = _repeat_kv(phi_k, q.shape[2])
    allowed = keep[:, None, None, :].expand(-1, q.shape[2], q.shape[1], -1)
    if causal:
        allowed = allowed & torch.ones(allowed.shape[-2:], dtype=torch.bool, device=k.device).tril()
    A = torch.einsum("bqhf,bkhf->bhqk", phi_q, phi_k_rep).masked_fill(~allowed, 0.0)
    num = _masked_product(A, v_rep, allowed)
    den = A.sum(-1).transpose(1, 2)
    if initial_state is not None:
        S0, z0 = (_repeat_kv(x.transpose(1, 2), q.shape[2]) for x in initial_state)
        num = num + torch.einsum("bqhf,bhfd->bqhd", phi_q, S0.transpose(1, 2))
        den = den + torch.einsum("bqhf,bhf->bqh", phi_q, z0.transpose(1, 2))
    S = torch.einsum("bkhf,bkhd->bhfd", phi_k, v)
    z = phi_k.sum(1)  # (B, H_kv, F)
    if initial_state is not None:
        S, z = S + initial_state[0], z + initial_state[1]
    return num / den[..., None], (S, z)


def recurrent_oracle(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    feature_map: AnyMap,
    *,
    scale: float | None = None,
    initial_state: tuple[torch.Tensor, torch.Tensor] | None = None,
    params: dict[str, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """Causal feature attention as a token-by-token recurrence (no mask, no chunks)."""
    H, Hk = q.shape[2], k.shape[2]
    phi_q, phi_k, _ = _oracle_inputs(q, k, v, feature_map, scale, params)
    B, T = q.shape[:2]
    if initial_state is None:
        S = phi_k.new_zeros(B, Hk, phi_k.shape[-1], v.shape[-1])
        z = phi_k.new_zeros(B, Hk, phi_k.shape[-1])
    else:
        S, z = initial_state
    outs = []
    G = H // Hk
    for t in range(T):
        S = S + phi_k[:, t, :, :, None] * v[:, t, :, None, :]
        z = z + phi_k[:, t]
        pq = phi_q[:, t].unflatten(1, (Hk, G))  # (B, H_kv, G, F)
        num = torch.einsum("bhgf,bhfd->bhgd", pq, S)
        den = torch.einsum("bhgf,bhf->bhg", pq, z)
        outs.append((num / den[..., None]).flatten(1, 2))
    return torch.stack(outs, dim=1), (S, z)


def relative_rms(actual: Any, expected: Any) -> float:
    """``||actual - expected||_2 / ||expected||_2`` over all entries (fla-style check)."""
    a = torch.as_tensor(actual).detach().to(torch.float64)
    e = torch.as_tensor(expected).detach().to(torch.float64)
    return float(torch.linalg.vector_norm(a - e) / torch.linalg.vector_norm(e).clamp_min(1e-300))
