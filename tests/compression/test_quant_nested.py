"""Nested quantization: exact nesting, error monotone in bits, packing round-trips, bytes."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from kernelapprox.compression.quantization import (
    independent_quantize,
    lloyd_kmeans,
    nested_quantize,
    nested_storage,
    optimal_kmeans,
    pack_bitplanes,
    storage_bytes,
    unpack_bitplanes,
    weighted_sse,
)


def _matrix(seed: int, rows: int, cols: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(rows, cols, generator=g, dtype=torch.float64)
    f = torch.rand(rows, cols, generator=g, dtype=torch.float64) ** 2
    return w, f


widths = st.tuples(st.integers(1, 4), st.integers(0, 4)).map(lambda t: (t[0], t[0] + t[1]))


@given(
    seed=st.integers(0, 2**16),
    shape=st.tuples(st.integers(1, 4), st.integers(1, 70)),
    bits=widths,
    ties=st.booleans(),
)
def test_nesting_exact_and_error_never_increases(seed, shape, bits, ties) -> None:
    weight, fisher = _matrix(seed, *shape)
    if ties:
        weight = torch.round(weight * 2) / 2  # few distinct values: empty and single runs
        fisher[:, ::3] = 0.0
    seed_bits, max_bits = bits
    q = nested_quantize(
        weight, fisher, seed_bits=seed_bits, max_bits=max_bits, iterations=5, seed=seed
    )
    assert q.codes.dtype == torch.uint8 and q.codes.shape == weight.shape
    assert int(q.codes.max()) < 2**max_bits
    previous = float("inf")
    scale = float((fisher * weight**2).sum())  # round-off of weighted means of equal values
    for k in q.widths:
        assert q.tables[k].shape == (shape[0], 2**k)
        assert torch.equal(q.codes_at(k), q.codes.to(torch.long) >> (max_bits - k))
        if k > seed_bits:
            assert torch.equal(q.codes_at(k) >> 1, q.codes_at(k - 1))
        sse = q.sse(weight, fisher, k)
        assert sse <= previous + 1e-13 * scale
        previous = sse
    assert torch.equal(
        pack_bitplanes(q.codes, max_bits), pack_bitplanes(q.codes.to(torch.int64), max_bits)
    )


@given(
    seed=st.integers(0, 2**16),
    shape=st.tuples(st.integers(1, 5), st.integers(1, 100)),
    n_bits=st.integers(1, 8),
)
def test_pack_unpack_round_trips(seed, shape, n_bits) -> None:
    g = torch.Generator().manual_seed(seed)
    codes = torch.randint(0, 2**n_bits, shape, generator=g)
    codes[0, 0] = 2**n_bits - 1  # the sign bit of word 0 of plane 0 when the row is 32 wide
    qweight = pack_bitplanes(codes, n_bits)
    assert qweight.dtype == torch.int32
    assert qweight.shape == (n_bits, shape[0], -(-shape[1] // 32))
    for k in range(1, n_bits + 1):
        assert torch.equal(unpack_bitplanes(qweight, k, shape[1]), codes >> (n_bits - k))


def test_plane_zero_is_the_most_significant_bit_and_columns_lsb_first() -> None:
    codes = torch.zeros(1, 40, dtype=torch.long)
    codes[0, 0] = 0b100  # MSB of a 3-bit code: plane 0, word 0, bit 0
    codes[0, 33] = 0b001  # LSB: plane 2, word 1, bit 1
    codes[0, 31] = 0b010  # middle bit in bit 31 of word 0: negative int32
    q = pack_bitplanes(codes, 3)
    assert q[:, 0].tolist() == [[1, 0], [-(2**31), 0], [0, 2]]


def test_tables_are_kept_as_made_and_sorted() -> None:
    weight, fisher = _matrix(0, 6, 200)
    q = nested_quantize(weight, fisher, seed_bits=3, max_bits=6, seed=1)
    _seed_codes, seed_table = lloyd_kmeans(
        torch.sort(weight, 1).values, fisher.gather(1, torch.sort(weight, 1).indices), 8, seed=1
    )
    assert torch.equal(q.tables[3], seed_table)
    for k in q.widths:
        assert (q.tables[k][:, 1:] >= q.tables[k][:, :-1]).all()
        if k > 3:  # every child is the weighted mean of its half of the parent's run
            dq = q.dequantize(k)
            for r in range(2):
                for c in range(2**k):
                    m = q.codes_at(k)[r] == c
                    if m.any() and fisher[r, m].sum() > 0:
                        mean = (fisher[r, m] * weight[r, m]).sum() / fisher[r, m].sum()
                        assert dq[r, m][0].item() == pytest.approx(mean.item(), rel=1e-12)


def test_nested_against_independent_and_optimal() -> None:
    weight, fisher = _matrix(2, 8, 384)
    q = nested_quantize(weight, fisher, seed_bits=3, max_bits=5, seed=0)
    for k in (3, 4, 5):
        codes, table = optimal_kmeans(weight[:2], fisher[:2], 2**k)
        opt = float(weighted_sse(weight[:2], fisher[:2], codes, table).sum())
        nested = float(
            weighted_sse(weight[:2], fisher[:2], q.codes_at(k)[:2], q.tables[k][:2]).sum()
        )
        assert opt <= nested * (1 + 1e-12)
        assert nested <= 2.0 * opt
        ic, it = independent_quantize(weight, fisher, k, seed=0)
        assert float(weighted_sse(weight, fisher, ic, it).sum()) <= 2.0 * q.sse(weight, fisher, k)


def test_storage_bytes_exact() -> None:
    assert storage_bytes(2, 33, 3, [3]) == {
        "planes": 4 * 3 * 2 * 2,
        "tables": 2 * 2 * 8,
        "total": 48 + 32,
    }
    s = nested_storage([(4096, 4096)], 3, 8)
    per_row = 8 * 128 * 4 + 2 * (8 + 16 + 32 + 64 + 128 + 256)
    assert s["nested"] == 4096 * per_row
    assert s["one_model"] == 4096 * (8 * 128 * 4 + 2 * 256)
    assert s["nested_over_one_model"] == pytest.approx(5104 / 4608)
    assert s["separate_over_nested"] > 3.5


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda w, f: nested_quantize(w, f, seed_bits=4, max_bits=3), ValueError, "seed_bits"),
        (lambda w, f: nested_quantize(w, f, max_bits=9), ValueError, "max_bits"),
        (lambda w, f: nested_quantize(w, f[:, :2]), ValueError, "fisher"),
        (lambda w, f: nested_quantize(w[0], f[0]), TypeError, "weight"),
        (lambda w, f: nested_quantize(w, -f), ValueError, "weights"),
        (lambda w, f: independent_quantize(w, f, 0), ValueError, "bits"),
        (lambda w, f: pack_bitplanes(torch.full((2, 3), 8), 3), ValueError, "codes"),
        (lambda w, f: pack_bitplanes(w, 3), TypeError, "codes"),
        (
            lambda w, f: unpack_bitplanes(torch.zeros(3, 2, 1, dtype=torch.int32), 4, 3),
            ValueError,
            "bits",
        ),
        (
            lambda w, f: unpack_bitplanes(torch.zeros(3, 2, 1, dtype=torch.int32), 2, 40),
            ValueError,
            "in_features",
        ),
    ],
)
def test_bad_input(call, error, match) -> None:
    w, f = _matrix(0, 2, 3)
    with pytest.raises(error, match=match):
        call(w, f)


def test_seed_defaults_follow_the_package_rule() -> None:
    """kernelapprox._validation: what draws for the caller defaults to ``seed=None``, an
    experiment that reports a result to ``seed=0``."""
    import inspect

    from kernelapprox.compression.quantization import quantize_linears
    from kernelapprox.compression.quantization.experiment import run_quantization

    for fn in (lloyd_kmeans, nested_quantize, independent_quantize, quantize_linears):
        assert inspect.signature(fn).parameters["seed"].default is None, fn.__name__
    assert inspect.signature(run_quantization).parameters["seed"].default == 0
    weight, fisher = _matrix(4, 3, 64)
    a = nested_quantize(weight, fisher, max_bits=4, seed=7)
    b = nested_quantize(weight, fisher, max_bits=4, seed=7)
    assert torch.equal(a.codes, b.codes)
