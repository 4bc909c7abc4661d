"""Block selection under a parameter budget (APT's density order and prefix search)."""

from __future__ import annotations

import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from kernelapprox.compression.pruning import (
    decoder_sites,
    prunable_params,
    select_blocks,
    select_masks,
)
from kernelapprox.compression.pruning.selection import prefix_length
from kernelapprox.lm import Decoder, DecoderConfig


def _brute_force(salience, params, budget):
    """Every prefix of the density order (ties: lower index first) tried one by one."""
    order = sorted(range(len(salience)), key=lambda i: (-salience[i] / params[i], i))
    best = []
    for k in range(len(order) + 1):
        if sum(params[i] for i in order[:k]) <= budget:
            best = order[:k]
    return sorted(best)


def test_against_brute_force_on_every_small_problem():
    values = [0.5, 2.0, 3.0]
    sizes = [1, 2, 3]
    for salience in itertools.product(values, repeat=3):
        for params in itertools.product(sizes, repeat=3):
            for budget in range(0, sum(params) + 2):
                sel = select_blocks(list(salience), list(params), budget)
                kept = torch.nonzero(sel.keep).reshape(-1).tolist()
                assert kept == _brute_force(salience, params, budget), (salience, params, budget)
                assert sel.kept_params == sum(params[i] for i in kept)


def test_a_budget_equal_to_a_prefix_sum_keeps_that_prefix():
    sel = select_blocks([4.0, 3.0, 2.0, 1.0], [2, 2, 2, 2], budget=6)
    assert sel.keep.tolist() == [True, True, True, False] and sel.kept_params == 6
    sel = select_blocks([4.0, 3.0, 2.0, 1.0], [2, 2, 2, 2], budget=5.999)
    assert sel.keep.tolist() == [True, True, False, False] and sel.kept_params == 4


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(-10, 10), st.integers(1, 50)),
        min_size=1,
        max_size=40,
    ),
    st.floats(0, 1.2),
)
def test_budget_never_exceeded_and_within_one_block(blocks, fraction):
    salience = [s for s, _ in blocks]
    params = [p for _, p in blocks]
    budget = fraction * sum(params)
    sel = select_blocks(salience, params, budget)
    kept = sel.kept_params
    assert kept <= budget
    assert kept == sum(p for p, k in zip(params, sel.keep.tolist(), strict=True) if k)
    if sel.n_kept < len(params):
        nxt = params[int(sel.order[sel.n_kept])]
        assert budget - kept < nxt <= max(params)
    assert sel.keep.sum() == sel.n_kept
    density = torch.tensor(salience, dtype=torch.float64) / torch.tensor(params)
    if 0 < sel.n_kept < len(params):  # every kept block at least as dense as every dropped one
        assert density[sel.keep].min() >= density[~sel.keep].max()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 9), min_size=0, max_size=30), st.floats(0, 300))
def test_prefix_length_is_the_linear_scan(sizes, budget):
    cumulative = torch.cumsum(torch.tensor(sizes, dtype=torch.int64), 0)
    scan = sum(1 for c in cumulative.tolist() if c <= budget)
    assert prefix_length(cumulative, budget) == scan


def test_masks_per_site_follow_the_flat_selection():
    model = Decoder(DecoderConfig(context=4, n_layers=2, d_model=8, n_heads=2, d_mlp=6), seed=0)
    sites = decoder_sites(model, hidden=True)
    gen = torch.Generator().manual_seed(0)
    scores = {s.name: torch.rand(s.n_groups, generator=gen, dtype=torch.float64) for s in sites}
    total = prunable_params(sites)
    assert total == 2 * (2 * (4 * 8 * 4 + 3 * 4) + 6 * (2 * 8 + 1))
    masks, sel = select_masks(sites, scores, 0.5 * total)
    assert set(masks) == {s.name for s in sites if s.kind != "hidden"}
    kept = sum(
        int(m.sum()) * s.params_per_group for s in sites if s.name in masks for m in [masks[s.name]]
    )
    assert kept == sel.kept_params <= 0.5 * total


@pytest.mark.parametrize(
    "args, error, word",
    [
        (([1.0, 2.0], [1, 2, 3], 3), ValueError, "same length"),
        (([1.0], [0], 3), ValueError, "params"),
        (([1.0], [1.5], 3), ValueError, "params"),
        (([float("nan")], [1], 3), ValueError, "salience"),
        (([1.0], [1], -1), ValueError, "budget"),
        (([1.0], [1], "3"), TypeError, "budget"),
        (([[1.0]], [1], 3), ValueError, "salience"),
    ],
)
def test_bad_input_names_the_parameter(args, error, word):
    with pytest.raises(error, match=word):
        select_blocks(*args)
