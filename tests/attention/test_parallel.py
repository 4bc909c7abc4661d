"""Sequence-parallel feature attention: gloo process groups on CPU against one process in fp64.

Each world size is spawned once (process start-up dominates the cost); the workers run every
case of that world size and save their outputs, final states and input gradients, which the
test compares with the single-process :func:`feature_attention` (the oracle-checked path).
"""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from attention_helpers import TOLERANCE, assert_close, make_map, qkv
from hypothesis import given
from hypothesis import strategies as st

from kernelapprox.attention import (
    AttentionState,
    combine_states,
    feature_attention,
    sequence_parallel_attention,
)

TOL = TOLERANCE[torch.float64]
#: "fork" skips re-importing torch, scipy and kernelapprox in every worker (the workers set
#: one thread before any torch work, so no OpenMP pool crosses the fork); "spawn" elsewhere.
START_METHOD = "fork" if "fork" in mp.get_all_start_methods() else "spawn"

# Slice lengths per rank (time order), uneven and not chunk-aligned; "growth" multiplies the
# keys by a factor rising (or falling) along the sequence, so the running log-scale maximum
# moves between ranks (or stays on rank 0) and the scan has to rescale.
CASES = {
    2: [
        {
            "split": [5, 18],
            "causal": True,
            "layout": "bthd",
            "name": "positive",
            "chunk": 4,
            "growth": 3.0,
            "mask": False,
        },
        {
            "split": [9, 7],
            "causal": False,
            "layout": "bhtd",
            "name": "elu",
            "chunk": 64,
            "growth": 1.0,
            "mask": True,
        },
    ],
    4: [
        {
            "split": [9, 9, 9, 10],
            "causal": True,
            "layout": "bhtd",
            "name": "hyperbolic",
            "chunk": 4,
            "growth": 1.0,
            "mask": False,
        },
        {
            "split": [1, 20, 3, 13],
            "causal": True,
            "layout": "bthd",
            "name": "positive",
            "chunk": 8,
            "growth": 1 / 3,
            "mask": True,
        },
        {
            "split": [6, 4, 11, 2],
            "causal": False,
            "layout": "bthd",
            "name": "positive",
            "chunk": 64,
            "growth": 3.0,
            "mask": False,
        },
    ],
}
B, H, HK, D, DV, M = 2, 4, 2, 4, 3, 8


def _problem(case: dict, seed: int):
    """Full-sequence inputs in bthd, the map, the padding mask and the loss weights."""
    T = sum(case["split"])
    fm = make_map(case["name"], D, M, seed=seed)
    q, k, v = qkv(B, T, H, HK, D, DV, seed=seed, std=1.5)
    k = k * torch.logspace(0, 1, T, base=case["growth"], dtype=torch.float64)[:, None, None]
    g = torch.Generator().manual_seed(seed + 1)
    mask = torch.rand(B, T, generator=g) < 0.3 if case["mask"] else None
    w = torch.randn(B, T, H, DV, generator=g, dtype=torch.float64)
    u_kv = torch.randn(B, HK, fm.output_dim, DV, generator=g, dtype=torch.float64)
    u_z = torch.randn(B, HK, fm.output_dim, generator=g, dtype=torch.float64)
    return fm, (q, k, v), mask, w, (u_kv, u_z)


def _to_layout(x: torch.Tensor, layout: str) -> torch.Tensor:
    return x if layout == "bthd" else x.transpose(1, 2)


def _loss(o: torch.Tensor, w: torch.Tensor, state: AttentionState | None, u) -> torch.Tensor:
    loss = (o * w).sum()
    if state is not None:
        loss = loss + (state.kv * u[0]).sum() + (state.z * u[1]).sum()
    return loss


def _worker(rank: int, world: int, store: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo",
        init_method=f"file://{store}",
        rank=rank,
        world_size=world,
        timeout=timedelta(seconds=30),  # a missed collective fails instead of hanging
    )
    try:
        for i, case in enumerate(CASES[world]):
            fm, full, mask, w, u = _problem(case, seed=i)
            lo = sum(case["split"][:rank])
            hi = lo + case["split"][rank]
            layout = case["layout"]
            q, k, v = (_to_layout(x[:, lo:hi], layout).clone().requires_grad_() for x in full)
            o, state = sequence_parallel_attention(
                q,
                k,
                v,
                fm,
                causal=case["causal"],
                layout=layout,
                chunk_size=case["chunk"],
                key_padding_mask=None if mask is None else mask[:, lo:hi],
                output_final_state=True,
            )
            # the sum over ranks is the single-process loss: the state term on the last rank
            last = rank == world - 1
            _loss(_to_layout(o, layout), w[:, lo:hi], state if last else None, u).backward()
            torch.save(
                {
                    "o": _to_layout(o.detach(), layout),
                    "state": [s.detach() for s in state],
                    "grads": [_to_layout(x.grad, layout) for x in (q, k, v)],
                },
                f"{out_dir}/case{i}_rank{rank}.pt",
            )
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("world", sorted(CASES))
def test_sequence_parallel_equals_one_process(world, tmp_path):
    args = (world, str(tmp_path / "store"), str(tmp_path))
    mp.start_processes(_worker, args=args, nprocs=world, start_method=START_METHOD)
    for i, case in enumerate(CASES[world]):
        fm, full, mask, w, u = _problem(case, seed=i)
        q, k, v = (x.clone().requires_grad_() for x in full)
        o, state = feature_attention(
            q, k, v, fm, causal=case["causal"], key_padding_mask=mask, output_final_state=True
        )
        _loss(o, w, state, u).backward()
        parts = [torch.load(tmp_path / f"case{i}_rank{r}.pt") for r in range(world)]
        what = f"world {world}, case {case}"
        assert_close(torch.cat([p["o"] for p in parts], 1), o, TOL, f"output, {what}")
        for j, (name, x) in enumerate(zip("qkv", (q, k, v), strict=True)):
            grad = torch.cat([p["grads"][j] for p in parts], 1)
            assert_close(grad, x.grad, TOL, f"d{name}, {what}")
        for p in parts:  # every rank returns the state after the whole sequence
            torch.testing.assert_close(p["state"][2], state.log_scale, rtol=1e-13, atol=1e-13)
            assert_close(p["state"][0], state.kv, TOL, f"final kv, {what}")
            assert_close(p["state"][1], state.z, TOL, f"final z, {what}")


@given(
    cuts=st.lists(st.integers(1, 29), max_size=3, unique=True),
    name=st.sampled_from(["positive", "hyperbolic", "elu"]),
    growth=st.sampled_from([1 / 4, 1.0, 4.0]),
    seed=st.integers(0, 2**16),
)
def test_combined_block_states_equal_the_state_of_one_pass(cuts, name, growth, seed):
    T = 30
    fm = make_map(name, D, M, seed=seed)
    q, k, v = qkv(1, T, 2, 1, D, DV, seed=seed, std=1.5)
    k = k * torch.logspace(0, 1, T, base=growth, dtype=torch.float64)[:, None, None]
    _, whole = feature_attention(q, k, v, fm, causal=True, chunk_size=4, output_final_state=True)
    bounds = [0, *sorted(cuts), T]
    blocks = [
        feature_attention(
            q[:, a:b], k[:, a:b], v[:, a:b], fm, causal=True, chunk_size=4, output_final_state=True
        )[1]
        for a, b in itertools.pairwise(bounds)
    ]
    combined = combine_states(*blocks)
    # feature log-scales are products over different row counts in blocks and in one pass,
    # so BLAS may round them differently in the last bit: compare to rounding, not bitwise
    torch.testing.assert_close(combined.log_scale, whole.log_scale, rtol=1e-13, atol=1e-13)
    assert_close(combined.kv, whole.kv, TOL, "kv")
    assert_close(combined.z, whole.z, TOL, "z")
    # an empty contribution is the identity
    empty = AttentionState.zeros(1, 1, fm.output_dim, DV, dtype=torch.float64)
    again = combine_states(empty, combined, empty)
    assert torch.equal(again.kv, combined.kv) and torch.equal(again.z, combined.z)


def test_errors_without_a_process_group_and_without_states():
    fm = make_map("positive", D, M)
    q, k, v = qkv(1, 5, 2, 1, D, DV)
    assert not dist.is_initialized()
    with pytest.raises(RuntimeError, match="init_process_group"):
        sequence_parallel_attention(q, k, v, fm)
    with pytest.raises(ValueError, match="at least one"):
        combine_states()
    with pytest.raises(TypeError, match="AttentionState"):
        combine_states(torch.zeros(3))
