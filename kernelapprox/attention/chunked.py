"""The products of chunked causal feature attention, with a hand-written backward pass.

Notation of :func:`kernelapprox.attention.functional._causal_chunked`, per (batch, kv head)
and chunk ``n`` of ``C`` tokens (``G`` query heads per kv head, rows ordered (position,
group)): stabilized features ``Q_n`` ``(C G, F)`` and ``K_n`` ``(C, F)``, values with their
column of ones ``V_n`` ``(C, D_v + 1)``, and constants (detached statistics)

* ``W_n[i, j] = exp(c_j - M_i)`` for ``j <= i``, selected to 0 for ``j > i``;
* ``r_n[i] = exp(R_n - M_i)`` (row scale), ``e_n[j] = exp(c_j - R_{n+1})`` (value scale),
  ``d_n = exp(R_n - R_{n+1})`` (state decay).

The forward pass is

.. math:: A_n = (Q_n K_n^\\top) \\odot W_n, \\qquad
          O_n = A_n V_n + r_n \\odot (Q_n P_n), \\qquad
          P_{n+1} = d_n P_n + K_n^\\top (e_n \\odot V_n), \\quad P_0 = S_0,

and with the output gradient ``dO_n`` and the final state's ``dP_N``, the backward pass is
(``g_n = dL/dP_n``, walked from the last chunk: ``g_n = d_n g_{n+1} + Q_n^T (r_n . dO_n)``)

.. math:: dA_n = (dO_n V_n^\\top) \\odot W_n, \\qquad
          dQ_n = dA_n K_n + (r_n \\odot dO_n) P_n^\\top,

.. math:: dK_n = dA_n^\\top Q_n + (e_n \\odot V_n)\\, g_{n+1}^\\top, \\qquad
          dV_n = A_n^\\top dO_n + e_n \\odot (K_n g_{n+1}), \\qquad dS_0 = g_0 .

Every product of a pass is one batched matrix product over all chunks; only the two walks
(``P_n`` forward, ``g_n`` backward) go chunk by chunk, each step one fused elementwise
``addcmul`` into a preallocated buffer. Autograd's generic backward of the same forward spent
most of its time in the per-chunk elementwise nodes of the walk, the stack of its states and
gradient accumulation (see ``docs/results/benchmarks.md``). Future scores are selected to 0
(never multiplied away) in ``W_n`` and in ``A_n``. The gradients are
checked against autograd of the quadratic oracle in ``tests/attention/test_oracle.py`` and
with :func:`torch.autograd.gradcheck` in float64 (``tests/attention/test_chunked_grad.py``).
"""

from __future__ import annotations

from typing import Any

import torch


def _walk_states(KV: torch.Tensor, S0: torch.Tensor, decay: torch.Tensor) -> torch.Tensor:
    """``P_0 = S_0``, ``P_{n+1} = d_n P_n + KV_n``: returns ``(P_0 .. P_{N-1}, P_N)``.

    ``KV`` ``(Bh, N, F, D)``, ``S0`` ``(Bh, F, D)``, ``decay`` ``(Bh, N, 1, 1)``; the states
    before each chunk are one contiguous ``(Bh, N, F, D)`` buffer (the read ``Q_n P_n`` is
    then a single batched product).
    """
    N = KV.shape[1]
    P = torch.empty_like(KV)
    P[:, 0] = S0
    for n in range(N - 1):
        torch.addcmul(KV[:, n], P[:, n], decay[:, n], out=P[:, n + 1])
    final = torch.addcmul(KV[:, N - 1], P[:, N - 1], decay[:, N - 1])
    return P, final


def _walk_gradients(U: torch.Tensor, dS: torch.Tensor, decay: torch.Tensor) -> torch.Tensor:
    """``g_N = dS``, ``g_n = d_n g_{n+1} + U_n``: returns ``(g_1 .. g_N)`` and ``g_0``."""
    N = U.shape[1]
    g = torch.empty_like(U)
    g[:, N - 1] = dS
    for n in range(N - 1, 0, -1):
        torch.addcmul(U[:, n], g[:, n], decay[:, n], out=g[:, n - 1])
    return g, torch.addcmul(U[:, 0], g[:, 0], decay[:, 0])


def masked_scores(
    Q: torch.Tensor, K: torch.Tensor, weight: torch.Tensor, future: torch.Tensor
) -> torch.Tensor:
    """``A_n = (Q_n K_n^T) . W_n`` for every chunk, the future entries selected to 0.

    ``Q`` ``(Bh, N, C G, F)``, ``K`` ``(Bh, N, C, F)``, ``weight`` ``(Bh, N, C, C)``,
    ``future`` ``(C, C)`` bool (``j > i``); returns ``(Bh, N, C G, C)``. The selection comes
    after the product, so a non-finite future score can never reach a row as ``0 * nan``.
    """
    Bh, N, CG, _ = Q.shape
    C = K.shape[2]
    A = Q @ K.transpose(-1, -2)
    per_group = A.view(Bh, N, C, CG // C, C)
    per_group.mul_(weight[:, :, :, None, :]).masked_fill_(future[:, None, :], 0.0)
    return A


class ChunkProducts(torch.autograd.Function):
    """``(O, P_N)`` of the module docstring from ``Q, K, V, S_0`` and the constants.

    Shapes (``Bh`` = batch x kv heads, ``N`` chunks): ``Q`` ``(Bh, N, C G, F)``, ``K``
    ``(Bh, N, C, F)``, ``V`` ``(Bh, N, C, D)``, ``S0`` ``(Bh, F, D)``, ``weight``
    ``(Bh, N, C, C)`` (future entries 0), ``future`` ``(C, C)`` bool (``j > i``),
    ``row_scale`` ``(Bh, N, C)``, ``value_scale`` ``(Bh, N, C)``, ``decay`` ``(Bh, N)``.
    Returns ``O`` ``(Bh, N, C G, D)`` and ``P_N`` ``(Bh, F, D)``.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        Q: torch.Tensor,
        K: torch.Tensor,
        V: torch.Tensor,
        S0: torch.Tensor,
        weight: torch.Tensor,
        future: torch.Tensor,
        row_scale: torch.Tensor,
        value_scale: torch.Tensor,
        decay: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        Bh, N, CG, _ = Q.shape
        C = K.shape[2]
        G = CG // C
        A = masked_scores(Q, K, weight, future)
        Vw = V * value_scale[..., None]
        P, final = _walk_states(K.transpose(-1, -2) @ Vw, S0, decay[..., None, None])
        out = A @ V
        rs = row_scale[:, :, :, None, None]
        out.view(Bh, N, C, G, -1).addcmul_((Q @ P).view(Bh, N, C, G, -1), rs)
        ctx.save_for_backward(Q, K, V, A, Vw, P, weight, row_scale, value_scale, decay)
        return out, final

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: Any, dO: torch.Tensor, dS: torch.Tensor
    ) -> tuple[torch.Tensor | None, ...]:
        Q, K, V, A, Vw, P, weight, row_scale, value_scale, decay = ctx.saved_tensors
        Bh, N, CG, Fd = Q.shape
        C = K.shape[2]
        G = CG // C
        dO = dO.contiguous()
        dA = dO @ V.transpose(-1, -2)
        # weight is 0 at the future entries by selection, and every operand here is finite
        # (non-finite inputs were selected out before the products, see _finite_rows)
        dA.view(Bh, N, C, G, C).mul_(weight[:, :, :, None, :])
        dOr = (dO.view(Bh, N, C, G, -1) * row_scale[:, :, :, None, None]).view(dO.shape)
        dQ = dA @ K
        dQ.view(Bh * N, CG, Fd).baddbmm_(
            dOr.view(Bh * N, CG, -1), P.view(Bh * N, Fd, -1).transpose(1, 2)
        )
        g, dS0 = _walk_gradients(Q.transpose(-1, -2) @ dOr, dS, decay[..., None, None])
        dK = dA.transpose(-1, -2) @ Q
        dK.view(Bh * N, C, Fd).baddbmm_(
            Vw.view(Bh * N, C, -1), g.view(Bh * N, Fd, -1).transpose(1, 2)
        )
        dV = A.transpose(-1, -2) @ dO
        dV.addcmul_(K @ g, value_scale[..., None])
        needs = ctx.needs_input_grad
        return (
            dQ if needs[0] else None,
            dK if needs[1] else None,
            dV if needs[2] else None,
            dS0 if needs[3] else None,
            *(None,) * 5,
        )
