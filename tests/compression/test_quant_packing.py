"""Bit-plane packing: the layout read bit by bit, round trips, and the fast unpacking."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from kernelapprox.compression.quantization.packing import (
    pack_bitplanes,
    unpack_bitplanes,
    unpack_bitplanes_uint8,
)


def _bit(qweight: torch.Tensor, plane: int, row: int, col: int) -> int:
    """Bit ``col % 32`` of word ``col // 32`` of a plane, as an unsigned 32-bit word."""
    word = int(qweight[plane, row, col // 32]) & 0xFFFFFFFF
    return (word >> (col % 32)) & 1


@pytest.mark.parametrize("n_bits", range(1, 9))
def test_layout_read_bit_by_bit(n_bits: int) -> None:
    """Plane p holds bit n-1-p of each code, column 32u+i at bit i of word u; padding is 0."""
    g = torch.Generator().manual_seed(n_bits)
    codes = torch.randint(0, 2**n_bits, (3, 37), generator=g)
    q = pack_bitplanes(codes, n_bits)
    assert q.shape == (n_bits, 3, 2) and q.dtype == torch.int32
    for r in range(3):
        for j in range(64):
            read = sum(_bit(q, p, r, j) << (n_bits - 1 - p) for p in range(n_bits))
            assert read == (int(codes[r, j]) if j < 37 else 0)


@settings(max_examples=60, deadline=None)
@given(
    n_bits=st.integers(1, 8),
    rows=st.integers(1, 5),
    cols=st.integers(1, 100),
    seed=st.integers(0, 2**16),
    data=st.data(),
)
def test_round_trip_and_nesting(n_bits: int, rows: int, cols: int, seed: int, data) -> None:
    g = torch.Generator().manual_seed(seed)
    codes = torch.randint(0, 2**n_bits, (rows, cols), generator=g)
    codes[0, 0] = 2**n_bits - 1  # a word with its top bit set (a negative int32)
    q = pack_bitplanes(codes, n_bits)
    bits = data.draw(st.integers(1, n_bits))
    got = unpack_bitplanes(q, bits, cols)
    assert got.dtype == torch.long and torch.equal(got, codes >> (n_bits - bits))
    small = unpack_bitplanes_uint8(q, bits, cols)
    assert small.dtype == torch.uint8 and torch.equal(small.long(), got)


def test_unpack_a_slice_of_words() -> None:
    """Columns 32a..32b-1 unpack from words a..b-1 alone (what a chunked reader uses)."""
    codes = torch.randint(0, 256, (4, 100), generator=torch.Generator().manual_seed(0))
    q = pack_bitplanes(codes, 8)
    torch.testing.assert_close(unpack_bitplanes(q[:, :, 1:4], 5, 68), codes[:, 32:] >> 3)


def test_bad_input_named() -> None:
    q = pack_bitplanes(torch.zeros(2, 40, dtype=torch.long), 3)
    with pytest.raises(ValueError, match="bits"):
        unpack_bitplanes(q, 4, 40)
    with pytest.raises(ValueError, match="in_features"):
        unpack_bitplanes(q, 3, 70)
    with pytest.raises(TypeError, match="qweight"):
        unpack_bitplanes(q.long(), 3, 40)
    with pytest.raises(ValueError, match="codes"):
        pack_bitplanes(torch.full((2, 3), 8), 3)
    with pytest.raises(TypeError, match="codes"):
        pack_bitplanes(torch.zeros(2, 3), 3)
    with pytest.raises(ValueError, match="n_bits"):
        pack_bitplanes(torch.zeros(2, 3, dtype=torch.long), 9)
