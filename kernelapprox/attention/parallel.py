"""Sequence-parallel feature attention over ``torch.distributed`` (gloo on CPU, NCCL on GPU).

Each rank ``r`` of a process group holds a contiguous slice ``t_r <= t < t_{r+1}`` of the
sequence (the slices may have different lengths). Feature attention reads past keys only
through the state ``(S, z) = sum_j phi(k_j) ([v_j, 1])^T``, a sum, so the state before slice
``r`` is the *exclusive prefix sum* of the per-slice contributions

.. math:: S_{<r} = \\sum_{p < r} \\sum_{j \\in \\text{slice } p} \\phi(k_j) [v_j, 1]^\\top .

Every rank

1. computes its contribution ``(kv_r, z_r, c_r)``: the state a pass over its own keys alone
   would end with (empty initial state), relative to its log-scale ``c_r`` (the maximum
   per-token key log-scale of the slice, :mod:`kernelapprox.attention.state`);
2. gathers every rank's contribution (``all_gather``) and combines the ones before it with
   :func:`combine_states`: ``R = max_p c_p``, ``kv = sum_p exp(c_p - R) kv_p``, the same
   rescaling to the common maximum that :func:`~kernelapprox.attention.feature_attention`
   applies between chunks (online softmax, Milakov & Gimelshein 2018);
3. runs the ordinary chunked causal pass over its slice from ``initial_state`` = that prefix.

Non-causal attention combines every *other* rank's contribution and passes the result as the
initial state of the non-causal pass over the local keys, so each query sees all keys.
Outputs equal the single-process result up to rounding (the sums are only reassociated), and
so do the gradients: the gather is an autograd function whose backward sums, over all ranks,
the gradients that reach each contribution (an ``all_reduce``), which is the gradient of the
sum of the ranks' losses. Every rank must therefore call ``backward`` (it is a collective),
as in ``DistributedDataParallel``; gradients of a learnable map's ``params`` are per-rank
partial sums, to be all-reduced like any other data-parallel parameter gradient.

Cost per rank, with state size ``s = B H_kv F (D_v + 1)`` and ``W`` ranks: one extra
reduction over the local keys (``O(T_r F D_v)``, the contribution), one ``all_gather``
receiving ``W s`` numbers (memory ``W s``), and in backward one ``all_reduce`` of ``W s``
numbers. The gather makes the scan exact and simple for the few ranks of a node; for many
ranks a log-depth scan with point-to-point messages (``O(s log W)``) would be cheaper and is
not implemented.

Launching. Start one process per rank with ``torchrun`` (it sets ``RANK``, ``WORLD_SIZE``,
``MASTER_ADDR`` and ``MASTER_PORT``)::

    torchrun --nproc_per_node=4 script.py

and in ``script.py`` call ``torch.distributed.init_process_group("gloo")`` (``"nccl"`` on
GPUs, one device per rank), give each rank its slice of ``q, k, v`` along the time axis, and
call :func:`sequence_parallel_attention`. See the user guide page "Sequence parallelism".
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch.autograd import Function

from kernelapprox._validation import check_bool
from kernelapprox.attention.functional import DEFAULT_CHUNK, feature_attention
from kernelapprox.attention.maps import LOG_FLOOR, AnyMap
from kernelapprox.attention.state import AttentionState


def combine_states(*states: AttentionState) -> AttentionState:
    """The state of consecutive key blocks from each block's own contribution.

    With contributions ``(kv_p, z_p, r_p)`` (each relative to ``exp(r_p)``), the combined
    state is relative to ``R = max_p r_p``:

    .. math:: kv = \\sum_p e^{r_p - R}\\, kv_p, \\qquad z = \\sum_p e^{r_p - R}\\, z_p,

    so every factor is ``<= 1``; an empty contribution (``r_p = LOG_FLOOR``, zeros) adds
    nothing. Per-feature log-scales (``(B, H_kv, F)``) combine feature by feature; if any
    state has them, the per-head ones are broadcast and the result has them too. The true
    states add, so the combination is associative and commutative; the result equals the
    final state of one pass over the concatenated blocks up to rounding. The log-scales are
    detached statistics (the attention output does not depend on them).
    """
    if not states:
        raise ValueError("combine_states needs at least one AttentionState")
    for s in states:
        if (
            not isinstance(s, tuple)
            or len(s) != 3
            or not all(isinstance(x, torch.Tensor) for x in s)
        ):
            raise TypeError("combine_states takes AttentionState objects (kv, z, log_scale)")
    states = tuple(AttentionState(*s) for s in states)
    per_feature = any(s.log_scale.ndim == s.z.ndim for s in states)
    refs = [(s.feature_log_scale() if per_feature else s.log_scale).detach() for s in states]
    r = torch.stack(refs).amax(dim=0)
    kv = z = None
    for s, r_p in zip(states, refs, strict=True):
        w = torch.exp(r_p - r)[..., None]  # (B, H_kv, 1) or (B, H_kv, F, 1)
        kv_p = s.kv * (w if per_feature else w[..., None])
        z_p = s.z * (w[..., 0] if per_feature else w)
        kv = kv_p if kv is None else kv + kv_p
        z = z_p if z is None else z + z_p
    return AttentionState(kv, z, r)


class _GatherStates(Function):
    """``all_gather`` of a flat tensor into ``(W, n)``; backward all-reduces and keeps its row.

    Each rank's output row ``p`` is rank ``p``'s input, so the gradient of rank ``p``'s input is
    the sum over all ranks of the gradients reaching row ``p``: an ``all_reduce`` (SUM) of the
    whole ``(W, n)`` gradient, then row ``p``. (``all_reduce`` is available on every backend,
    unlike ``reduce_scatter`` on gloo.)
    """

    @staticmethod
    def forward(ctx: Any, flat: torch.Tensor, group: Any) -> torch.Tensor:
        ctx.group = group
        world = dist.get_world_size(group)
        out = flat.new_empty(world, flat.numel())
        dist.all_gather(list(out.unbind(0)), flat.contiguous(), group=group)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        total = grad.contiguous().clone()
        dist.all_reduce(total, op=dist.ReduceOp.SUM, group=ctx.group)
        return total[dist.get_rank(ctx.group)], None


def _gather_states(state: AttentionState, group: Any) -> list[AttentionState]:
    """Every rank's state, in rank order (one collective; the log-scales ride along detached).

    The log-scales travel per feature (each rank may have fallen back to per-feature
    references on its own) with one flag per rank, 1 where they were per head, so that
    each state comes back in the form it had."""
    kv, z, r = state
    per_head = torch.ones(1, dtype=kv.dtype, device=kv.device) * (r.ndim != z.ndim)
    r = AttentionState(kv, z, r).feature_log_scale()
    flat = torch.cat((kv.reshape(-1), z.reshape(-1), r.detach().reshape(-1), per_head))
    rows = _GatherStates.apply(flat, group)
    n_kv, n_z = kv.numel(), z.numel()
    heads = rows[:, -1].detach().tolist()
    states = []
    for row, was_per_head in zip(rows.unbind(0), heads, strict=True):
        r_p = row[n_kv + n_z : -1].detach().view(z.shape)
        states.append(
            AttentionState(
                row[:n_kv].view(kv.shape),
                row[n_kv : n_kv + n_z].view(z.shape),
                r_p[..., 0] if was_per_head else r_p,
            )
        )
    return states


def _empty_state(template: AttentionState) -> AttentionState:
    """The empty state, connected to the gathered states by a selection of zeros.

    A rank that sees no other rank's keys (rank 0 when causal) must still take part in the
    gather's backward collective, so its output depends on the gather through exact zeros:
    selected (``masked_fill``), not multiplied (``nan * 0 = nan`` would let a non-finite
    token of this rank reach its own earlier outputs through the template).
    """
    kv, z, r = template
    empty = (torch.ones_like(x, dtype=torch.bool) for x in (kv, z))
    kv, z = (x.masked_fill(m, 0.0) for x, m in zip((kv, z), empty, strict=True))
    return AttentionState(kv, z, torch.full_like(r, LOG_FLOOR))


def _time_slice(x: torch.Tensor, layout: str, stop: int) -> torch.Tensor:
    return x[:, :stop] if layout == "bthd" else x[:, :, :stop]


def sequence_parallel_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    feature_map: AnyMap,
    *,
    causal: bool = True,
    scale: float | None = None,
    layout: str = "bthd",
    key_padding_mask: torch.Tensor | None = None,
    output_final_state: bool = False,
    chunk_size: int = DEFAULT_CHUNK,
    params: dict[str, torch.Tensor] | None = None,
    recompute: bool = False,
    group: Any = None,
) -> torch.Tensor | tuple[torch.Tensor, AttentionState]:
    """Feature attention over a sequence split across the ranks of a process group.

    Rank ``r`` passes its contiguous slice of the sequence (rank order = time order; the
    slices may have different lengths) and receives the output of its slice, equal to the
    matching slice of :func:`~kernelapprox.attention.feature_attention` on the whole sequence
    (up to rounding), with gradients to its ``q, k, v`` equal to the matching slices of the
    single-process gradients of the sum of all ranks' losses. Every rank must call this
    function (and ``backward``) with the same options and the same ``B``, heads, ``D``,
    ``D_v``, dtype and feature map; see the module docstring for the algorithm and its cost.

    Parameters
    ----------
    q, k, v : Tensor
        The local slices, shaped as in :func:`~kernelapprox.attention.feature_attention`
        (``T`` is the local length, at least 1; causal needs as many local queries as keys).
    feature_map, scale, layout, chunk_size, params, recompute
        As in :func:`~kernelapprox.attention.feature_attention`.
    causal : bool
        Query ``t`` sees keys ``<= t`` of the whole sequence (default), or every key.
    key_padding_mask : bool Tensor ``(B, T_local)``, optional
        The local slice of the key padding mask (``True`` marks padding).
    output_final_state : bool
        Also return the state after the last key of the whole sequence (the same on every
        rank), e.g. to continue decoding with
        :func:`~kernelapprox.attention.feature_attention_step`.
    group : ProcessGroup, optional
        The process group (default: the world group); must be initialized.

    Returns
    -------
    Tensor (the local output, in ``layout``), or ``(output, AttentionState)``.

    Raises
    ------
    RuntimeError
        If ``torch.distributed`` is not initialized.
    """
    causal = check_bool(causal, "causal")
    if not dist.is_available() or not dist.is_initialized():
        raise RuntimeError(
            "sequence_parallel_attention needs an initialized process group: call "
            "torch.distributed.init_process_group first (e.g. under torchrun)"
        )
    options = {
        "scale": scale,
        "layout": layout,
        "chunk_size": chunk_size,
        "params": params,
        "recompute": recompute,
    }
    # 1. The local contribution: a non-causal reduction over the local keys (one dummy query).
    _, local = feature_attention(
        _time_slice(q, layout, 1),
        k,
        v,
        feature_map,
        causal=False,
        key_padding_mask=key_padding_mask,
        output_final_state=True,
        **options,
    )
    # 2. Everyone's contributions; combine those this rank's queries see.
    states = _gather_states(local, group)
    rank = dist.get_rank(group)
    seen = states[:rank] if causal else states[:rank] + states[rank + 1 :]
    initial = combine_states(*seen) if seen else _empty_state(states[0])
    # 3. The ordinary pass over the local slice from the combined state.
    out = feature_attention(
        q,
        k,
        v,
        feature_map,
        causal=causal,
        key_padding_mask=key_padding_mask,
        initial_state=initial,
        **options,
    )
    if output_final_state:
        return out, combine_states(*states)
    return out
