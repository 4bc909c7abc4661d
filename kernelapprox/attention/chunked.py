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

Every product of a pass is one batched matrix product over all chunks (written into a walk's
buffer, one per index of the shorter of the two leading axes); only the two walks
(``P_n`` forward, ``g_n`` backward) go chunk by chunk, each step one fused elementwise
``addcmul`` in place in one ``(Bh, N + 1, F, D)`` buffer (slot ``n + 1`` holds the increment
``K_n^T (e_n . V_n)`` until the walk turns it into ``P_{n+1}``; backward, slot ``n`` holds
``Q_n^T (r_n . dO_n)`` until it becomes ``g_n``). Fresh blocks are few on purpose: on CPU each
one over glibc's 32 MiB ``mmap`` limit is page-faulted in and zeroed on first touch, which
cost as much time as the products (a forward and backward step at ``B H T = 8 x 4096``,
``m = 256`` allocated twelve such blocks before, five now). Autograd's generic backward of
the same forward spent most of its time in the per-chunk elementwise nodes of the walk, the
stack of its states and gradient accumulation (see ``docs/results/benchmarks.md``). Future
scores are selected to 0 (never multiplied away) in ``W_n`` and in ``A_n``. The gradients are
checked against autograd of the quadratic oracle in ``tests/attention/test_oracle.py`` and
with :func:`torch.autograd.gradcheck` in float64 (``tests/attention/test_chunked_grad.py``).
"""

from __future__ import annotations

from typing import Any

import torch

from kernelapprox.attention._autograd import graph_released


def _matmul_per_slice(
    a: torch.Tensor, b: torch.Tensor, out: torch.Tensor, *, accumulate: bool = False
) -> torch.Tensor:
    """``out = a @ b`` (``out += a @ b`` with ``accumulate``) for ``(Bh, N, ., .)`` operands,
    written straight into ``out``, one batched product per index of the shorter of the two
    leading dimensions.

    ``out`` may be a strided view (the walks' ``(Bh, N + 1, ...)`` buffers without one slot),
    which a single batched product over ``Bh N`` cannot write: it would compute into a fresh
    contiguous tensor and copy. On CPU every fresh tensor over glibc's 32 MiB ``mmap`` limit
    is page-faulted in and zeroed by the kernel on first touch, which cost as much CPU time
    as the product itself (``(8, 64, 256, 65)`` float32, one thread: 17-21 ms user + 16-25 ms
    system, against 17 ms user and none into a preallocated buffer).
    """
    dim = 0 if a.shape[0] <= a.shape[1] else 1
    for i in range(out.shape[dim]):
        ai, bi, oi = a.select(dim, i), b.select(dim, i), out.select(dim, i)
        if accumulate:
            oi.baddbmm_(ai, bi)
        else:
            torch.bmm(ai, bi, out=oi)
    return out


def _dead_storage(saved: torch.Tensor, shape: torch.Size) -> torch.Tensor | None:
    """A ``shape`` view of the storage of ``saved``, a tensor this node alone saved and has
    read for the last time, when the running backward pass releases the graph (else, or if
    ``saved`` is too small, ``None``: allocate). It spares a fresh block, which on CPU is
    page-faulted in and zeroed (see :func:`_matmul_per_slice`)."""
    size = shape.numel()
    if not graph_released() or not saved.is_contiguous() or saved.numel() < size:
        return None
    return saved.view(-1)[:size].view(shape)


def _walk_states(states: torch.Tensor, decay: torch.Tensor) -> None:
    """In place, ``states[:, n + 1] = d_n states[:, n] + states[:, n + 1]`` for ``n = 0 ..
    N - 1``: with ``S_0`` in slot 0 and ``KV_n`` in slot ``n + 1`` the buffer ends as
    ``(P_0 .. P_N)``. ``states`` ``(Bh, N + 1, F, D)``, ``decay`` ``(Bh, N, 1, 1)``."""
    for n in range(states.shape[1] - 1):
        states[:, n + 1].addcmul_(states[:, n], decay[:, n])


def _walk_gradients(grads: torch.Tensor, decay: torch.Tensor) -> None:
    """In place, ``grads[:, n] = d_n grads[:, n + 1] + grads[:, n]`` for ``n = N - 1 .. 0``:
    with ``U_n = Q_n^T (r_n . dO_n)`` in slot ``n`` and ``dP_N`` in slot ``N`` the buffer
    ends as ``(g_0 .. g_N)``. Shapes as in :func:`_walk_states`."""
    for n in range(grads.shape[1] - 2, -1, -1):
        grads[:, n].addcmul_(grads[:, n + 1], decay[:, n])


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
        Bh, N, CG, Fd = Q.shape
        C = K.shape[2]
        G = CG // C
        A = masked_scores(Q, K, weight, future)
        Vw = V * value_scale[..., None]
        # One buffer for the increments and the states they walk into: slot n + 1 holds
        # KV_n = K_n^T (e_n . V_n) until the walk turns it into P_{n+1} (a separate states
        # tensor would be a second fresh (Bh, N, F, D) block).
        states = Q.new_empty(Bh, N + 1, Fd, V.shape[-1])
        states[:, 0] = S0
        _matmul_per_slice(K.transpose(-1, -2), Vw, states[:, 1:])
        _walk_states(states, decay[..., None, None])
        out = A @ V
        read = _matmul_per_slice(Q, states[:, :N], torch.empty_like(out))
        rs = row_scale[:, :, :, None, None]
        out.view(Bh, N, C, G, -1).addcmul_(read.view(Bh, N, C, G, -1), rs)
        ctx.save_for_backward(Q, K, V, A, Vw, states, weight, row_scale, value_scale, decay)
        return out, states[:, N].clone()

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: Any, dO: torch.Tensor, dS: torch.Tensor
    ) -> tuple[torch.Tensor | None, ...]:
        Q, K, V, A, Vw, states, weight, row_scale, value_scale, decay = ctx.saved_tensors
        Bh, N, CG, _ = Q.shape
        C = K.shape[2]
        G = CG // C
        P = states[:, :N]
        dO = dO.contiguous()
        dA = dO @ V.transpose(-1, -2)
        # weight is 0 at the future entries by selection, and every operand here is finite
        # (non-finite inputs were selected out before the products, see _finite_rows)
        dA.view(Bh, N, C, G, C).mul_(weight[:, :, :, None, :])
        dOr = (dO.view(Bh, N, C, G, -1) * row_scale[:, :, :, None, None]).view(dO.shape)
        dQ = dA @ K
        _matmul_per_slice(dOr, P.transpose(-1, -2), dQ, accumulate=True)
        del P  # the states are not read again: dK may take their storage
        # Slots 0 .. N - 1 hold U_n, slot N the final state's gradient; the walk leaves g_n.
        grads = Q.new_empty(states.shape)
        _matmul_per_slice(Q.transpose(-1, -2), dOr, grads[:, :N])
        grads[:, N] = dS
        _walk_gradients(grads, decay[..., None, None])
        g_next = grads[:, 1:]  # g_{n+1}, the gradient of the state chunk n writes
        dK = torch.matmul(dA.transpose(-1, -2), Q, out=_dead_storage(states, K.shape))
        _matmul_per_slice(Vw, g_next.transpose(-1, -2), dK, accumulate=True)
        dV = A.transpose(-1, -2) @ dO
        dV.addcmul_(_matmul_per_slice(K, g_next, torch.empty_like(dV)), value_scale[..., None])
        dS0 = grads[:, 0].clone()
        needs = ctx.needs_input_grad
        return (
            dQ if needs[0] else None,
            dK if needs[1] else None,
            dV if needs[2] else None,
            dS0 if needs[3] else None,
            *(None,) * 5,
        )
