"""The one per-dtype tolerance table of attention outputs and its derivation.

:data:`kernelapprox.testing.attention.TOLERANCES` states each value as a multiple of the unit
roundoff ``u``; these tests hold the table to those statements (so a value cannot drift away
from its documented origin) and check that the package's attention tests and
:func:`~kernelapprox.testing.default_rtol` read it rather than a copy.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch

from kernelapprox.testing import default_rtol
from kernelapprox.testing.attention import TOLERANCES, AttentionTolerance, unit_roundoff

HALF = (torch.bfloat16, torch.float16)


@pytest.mark.parametrize(
    ("dtype", "bits"),
    [(torch.float64, 53), (torch.float32, 24), (torch.float16, 11), (torch.bfloat16, 8)],
)
def test_unit_roundoff_is_two_to_the_minus_precision(dtype, bits):
    assert unit_roundoff(dtype) == 2.0**-bits


def test_unit_roundoff_rejects_non_floating_dtypes():
    for bad in (torch.int32, torch.bool, "float32", None):
        with pytest.raises(TypeError, match="dtype"):
            unit_roundoff(bad)


def test_every_dtype_has_both_columns_and_rerun_is_the_looser():
    """A rerun check is entrywise (max-norm) on code that may compute in the dtype itself:
    it can never be tighter than the RMS check of float32-accumulating code."""
    assert set(TOLERANCES) == {torch.float64, torch.float32, *HALF}
    for dtype, tol in TOLERANCES.items():
        assert isinstance(tol, AttentionTolerance)
        assert 0 < tol.oracle <= tol.rerun < 1, dtype


@pytest.mark.parametrize("dtype", HALF)
def test_half_oracle_tolerance_admits_an_exactly_rounded_output(dtype):
    """One rounding has relative RMS <= u / sqrt(3); the table allows 2.7 times that."""
    u = unit_roundoff(dtype)
    assert TOLERANCES[dtype].oracle >= 2.5 * u / math.sqrt(3)
    assert TOLERANCES[dtype].oracle <= 2.0 * u  # and not much more: accumulation is fp32
    # the bound itself, measured on 1e5 rounded normals
    x = torch.randn(100_000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    rounded = x.to(dtype).to(torch.float64)
    rms = float((rounded - x).norm() / x.norm())
    assert rms <= u / math.sqrt(3)
    assert TOLERANCES[dtype].oracle > 2.5 * rms


def test_float32_oracle_tolerance_is_the_stated_multiple_of_sqrt_n_u():
    """``5e-6 = 4.6 sqrt(n) u`` at the tests' largest sum, ``n = 266 + 63`` terms."""
    u, n = unit_roundoff(torch.float32), 266 + 63
    assert TOLERANCES[torch.float32].oracle / (math.sqrt(n) * u) == pytest.approx(4.6, abs=0.05)


def test_default_rtol_is_the_rerun_column():
    for dtype, tol in TOLERANCES.items():
        assert default_rtol(dtype) == tol.rerun
    # dtypes outside the table: 1e3 machine epsilons
    assert default_rtol(torch.float8_e5m2) == pytest.approx(
        1e3 * torch.finfo(torch.float8_e5m2).eps
    )


def test_attention_tests_read_the_oracle_column():
    helpers = Path(__file__).resolve().parents[1] / "attention"
    sys.path.insert(0, str(helpers))
    try:
        from attention_helpers import TOLERANCE
    finally:
        sys.path.remove(str(helpers))
    assert TOLERANCE == {dtype: tol.oracle for dtype, tol in TOLERANCES.items()}
