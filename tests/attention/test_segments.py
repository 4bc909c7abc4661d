"""Passes without gradients run in segments of a few MiB of features
(:func:`kernelapprox.attention.functional.segment_length`): causal ones chunk by chunk with the
state carried, non-causal ones adding key segments to one state that every query segment
reads. The same outputs, final state and causality as one pass over all tokens, for every
map, dtype, layout, chunk, head grouping, key padding and initial state."""

from __future__ import annotations

import math
import warnings
from unittest import mock

import pytest
import torch
from attention_helpers import TOLERANCE, assert_close, make_map, qkv
from hypothesis import given
from hypothesis import strategies as st

import kernelapprox.attention.functional as functional
from kernelapprox.attention import feature_attention, quadratic_oracle
from kernelapprox.attention.maps import NumericalWarning

MAPS = ["sincos", "cos_offset", "positive", "hyperbolic", "dct", "dct_released", "identity", "elu"]
#: Maps with positive features: well-conditioned denominators. The signed maps' segments are
#: compared within their conditioning in ``test_stability.py`` (a segment is a split and
#: resume); here they are checked for causality.
POSITIVE = ["positive", "hyperbolic", "dct", "dct_released", "elu"]
DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]


def _run(q, k, v, fm, layout, segment_bytes, causal=True, **options):
    """``(output in bthd, final state, number of segments)`` without gradients, with
    :data:`~kernelapprox.attention.functional.SEGMENT_BYTES` set to ``segment_bytes``; the
    segments counted are the chunked passes (causal) or the key segments (non-causal)."""
    if layout == "bhtd":
        q, k, v = (x.transpose(1, 2) for x in (q, k, v))
    name = "_causal_chunked" if causal else "_add_keys"
    passes = mock.patch.object(functional, name, wraps=getattr(functional, name))
    with (
        torch.no_grad(),
        warnings.catch_warnings(),
        mock.patch.object(functional, "SEGMENT_BYTES", segment_bytes),
        passes as counted,
    ):
        warnings.simplefilter("ignore", NumericalWarning)
        o, state = feature_attention(
            q, k, v, fm, layout=layout, causal=causal, output_final_state=True, **options
        )
    o = o.transpose(1, 2) if layout == "bhtd" else o
    return o, state, counted.call_count


@st.composite
def problems(draw):
    T = draw(st.integers(2, 40))
    Hk = draw(st.integers(1, 2))
    causal = draw(st.booleans())
    return {
        "causal": causal,
        "Tk": T if causal else draw(st.integers(1, 40)),
        "name": draw(st.sampled_from(MAPS)),
        "dtype": draw(st.sampled_from(DTYPES)),
        "layout": draw(st.sampled_from(["bthd", "bhtd"])),
        "chunk": draw(st.sampled_from([1, 3, 4, 8])),
        "T": T,
        "B": draw(st.integers(1, 2)),
        "Hk": Hk,
        "H": Hk * draw(st.integers(1, 2)),
        "padding": draw(st.booleans()),
        "prefix": draw(st.integers(0, 5)),
        "std": draw(st.sampled_from([0.5, 1.0, 3.0])),
        "chunks_per_segment": draw(st.integers(1, 3)),
        "seed": draw(st.integers(0, 2**16)),
    }


def _inputs(p, D=4, Dv=3):
    """Map, inputs, padding mask and an initial state from a pass over ``prefix`` tokens
    (``None`` for 0)."""
    fm = make_map(p["name"], D, 8, seed=p["seed"])
    q, k, v = qkv(
        p["B"],
        p["T"],
        p["H"],
        p["Hk"],
        D,
        Dv,
        seed=p["seed"],
        dtype=p["dtype"],
        std=p["std"],
        Tk=p["Tk"],
    )
    mask = None
    if p["padding"]:  # random padding, never every key of a row
        g = torch.Generator().manual_seed(p["seed"])
        mask = torch.rand(p["B"], p["Tk"], generator=g) < 0.3
        mask[:, 0] = False
    state = None
    if p["prefix"]:
        pq, pk, pv = qkv(p["B"], p["prefix"], p["H"], p["Hk"], D, Dv, seed=p["seed"] + 1)
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", NumericalWarning)
            _, state = feature_attention(
                pq, pk, pv, fm, causal=True, output_final_state=True, chunk_size=p["chunk"]
            )
    return fm, q, k, v, mask, state


def _segment_bytes(p, F):
    """A budget of ``chunks_per_segment`` chunks of query features (float32 or float64)."""
    C = min(p["chunk"], p["T"])
    itemsize = 8 if p["dtype"] == torch.float64 else 4
    return p["chunks_per_segment"] * p["B"] * p["H"] * C * F * itemsize


def _segments(p):
    """Segments the budget of :func:`_segment_bytes` makes: chunked passes (causal) or key
    segments (non-causal; a key takes ``H / H_kv`` times fewer bytes than a query)."""
    C = min(p["chunk"], p["T"])
    if p["causal"]:
        return math.ceil(p["T"] / (p["chunks_per_segment"] * C))
    keys = p["chunks_per_segment"] * C * (p["H"] // p["Hk"])
    return math.ceil(p["Tk"] / min(keys, p["Tk"]))


@given(problems())
def test_segments_give_the_outputs_and_state_of_one_pass(p):
    p = {**p, "name": POSITIVE[MAPS.index(p["name"]) % len(POSITIVE)]}
    fm, q, k, v, mask, state = _inputs(p)
    opts = {"chunk_size": p["chunk"], "key_padding_mask": mask, "initial_state": state}
    whole, whole_state, one = _run(q, k, v, fm, p["layout"], 2**62, p["causal"], **opts)
    budget = _segment_bytes(p, fm.output_dim)
    split, split_state, n = _run(q, k, v, fm, p["layout"], budget, p["causal"], **opts)
    assert one == 1
    assert n == _segments(p)
    tol = TOLERANCE[p["dtype"]]  # outputs in the input's dtype: its rounding
    # the same chunks and references: equal up to the rounding of the feature projection
    # (a matrix product over fewer rows may round differently) and, non-causal, of the
    # state's rescaling when a later key segment raises the reference
    assert_close(split.double(), whole.double(), tol, "output")
    for name in ("kv", "z", "log_scale"):
        a, b = getattr(split_state, name), getattr(whole_state, name)
        assert_close(a, b, tol, name)


@given(problems())
def test_segments_match_the_quadratic_oracle(p):
    """Segments against an independent reference: the masked quadratic form in float64 (key
    padding, head groups, an initial state), not only against the one-pass algorithm."""
    p = {**p, "name": POSITIVE[MAPS.index(p["name"]) % len(POSITIVE)], "dtype": torch.float64}
    fm, q, k, v, mask, state = _inputs(p)
    opts = {"chunk_size": p["chunk"], "key_padding_mask": mask, "initial_state": state}
    split, _, _ = _run(
        q, k, v, fm, p["layout"], _segment_bytes(p, fm.output_dim), p["causal"], **opts
    )
    absolute = None if state is None else state.absolute()
    ref, _ = quadratic_oracle(
        q, k, v, fm, causal=p["causal"], key_padding_mask=mask, initial_state=absolute
    )
    assert_close(split, ref, TOLERANCE[torch.float64], "output")


@given(problems(), st.integers(0, 2**16), st.sampled_from([math.nan, math.inf, -math.inf]))
def test_segments_keep_earlier_outputs_bit_identical_when_a_later_token_is_non_finite(
    p, where, value
):
    """Causality for every value in the segmented pass: a non-finite entry in a later
    token's ``q``, ``k`` or ``v`` leaves every earlier output bit-identical (non-causal:
    a padded key may hold anything)."""
    fm, q, k, v, mask, state = _inputs({**p, "Tk": p["T"]} if p["causal"] else p)
    opts = {"chunk_size": p["chunk"], "key_padding_mask": mask, "initial_state": state}
    budget = _segment_bytes(p, fm.output_dim)
    clean, _, _ = _run(q, k, v, fm, p["layout"], budget, p["causal"], **opts)
    if not p["causal"]:
        if mask is None or not mask[0].any():
            return
        t = int(mask[0].nonzero()[where % int(mask[0].sum())])
        for which in (1, 2):
            bad = [x.clone() for x in (q, k, v)]
            bad[which][0, t] = value
            poisoned, _, _ = _run(*bad, fm, p["layout"], budget, False, **opts)
            assert torch.equal(poisoned[0], clean[0]), "kv"[which - 1]
        return
    t = 1 + where % (p["T"] - 1)
    for which in range(3):
        bad = [x.clone() for x in (q, k, v)]
        bad[which][:, t] = value
        poisoned, _, _ = _run(*bad, fm, p["layout"], budget, **opts)
        assert torch.equal(poisoned[:, :t], clean[:, :t]), "qkv"[which]
        padded_key = which > 0 and mask is not None and bool(mask[0, t])
        assert padded_key or not torch.isfinite(poisoned[0, t:]).all()


def test_segment_length_fills_the_budget_with_whole_chunks():
    qw = torch.empty(1, 8, 4096, 1, 64)
    assert functional.SEGMENT_BYTES == 8 * 2**20
    # 8 heads x 256 float32 features = 8 KiB per token: 1024 tokens in 8 MiB
    assert functional.segment_length(qw, 256, 64) == 1024
    assert functional.segment_length(qw, 256, 48) == 1008  # 21 chunks of 48
    assert functional.segment_length(qw.double(), 256, 64) == 512
    assert functional.segment_length(torch.empty(1, 8, 4096, 2, 64), 256, 64) == 512
    # never below one chunk, never above T
    assert functional.segment_length(torch.empty(64, 64, 4096, 1, 64), 512, 64) == 64
    assert functional.segment_length(torch.empty(1, 1, 100, 1, 64), 256, 64) == 100
    assert functional.segment_length(torch.empty(1, 1, 30, 1, 64), 256, 64) == 30
    # non-causal: whole tokens; keys (B, H_kv, T, D) have one row per token and head
    assert functional.segment_length(torch.empty(1, 8, 4096, 2, 64), 256) == 512
    assert functional.segment_length(torch.empty(1, 8, 4096, 64), 256) == 1024
    assert functional.segment_length(torch.empty(1, 8, 1000, 64), 256) == 1000


@pytest.mark.parametrize("grad", [False, True])
def test_a_pass_with_gradients_is_never_split(grad):
    """Gradients need every token's features in the graph: one pass, whatever the budget."""
    fm = make_map("positive", 4, 8)
    q, k, v = qkv(1, 20, 2, 2, 4, 3, dtype=torch.float32)
    if grad:
        q.requires_grad_()
    wrapped = mock.patch.object(functional, "_causal_chunked", wraps=functional._causal_chunked)
    with mock.patch.object(functional, "SEGMENT_BYTES", 1), wrapped as chunked:
        feature_attention(q, k, v, fm, causal=True, chunk_size=4)
    assert chunked.call_count == (1 if grad else 5)
