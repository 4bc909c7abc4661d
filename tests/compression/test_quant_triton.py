"""The Triton k-bit matmul against the float64 reference, in Triton's CPU interpreter.

Without CUDA the kernel runs in the interpreter on CPU tensors (``TRITON_INTERPRET=1`` is set
here before ``triton`` is imported); the module is skipped without ``triton``. Shapes are
awkward: 70 columns (a partial word), 40 rows (a partial row tile), 1, 19 and 33 tokens.
"""

from __future__ import annotations

import os
import subprocess
import sys

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest

from tests.compression.test_quant_layer import _random_layer, _reference_and_bound

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


@pytest.mark.parametrize("bits", range(1, 9))
def test_triton_equals_the_float64_reference(bits: int) -> None:
    pytest.importorskip("triton")
    layer = _random_layer(40, 70, 8, bits % 2 == 0, seed=bits, backend="triton").to(DEVICE)
    layer.bits = bits
    for tokens in (1, 19) if bits % 2 else (33,):
        x = torch.randn(tokens, 70, generator=torch.Generator().manual_seed(tokens))
        y = layer(x.to(DEVICE)).cpu()
        reference, bound = _reference_and_bound(layer.cpu(), x)
        layer.to(DEVICE)
        assert y.dtype == torch.float32 and y.shape == (tokens, 40)
        err = (y.double() - reference).abs()
        assert (err <= bound).all(), float((err / bound).max())


def test_triton_layer_with_leading_dims_matches_lookup() -> None:
    pytest.importorskip("triton")
    layer = _random_layer(5, 40, 3, True, backend="triton").to(DEVICE)
    x = torch.randn(2, 3, 40, generator=torch.Generator().manual_seed(0)).to(DEVICE)
    y = layer(x)
    layer.backend = "lookup"
    assert y.shape == (2, 3, 5)
    reference, bound = _reference_and_bound(layer.cpu(), x.cpu())
    assert ((y.cpu().reshape(-1, 5).double() - reference).abs() <= bound).all()


SCRIPT = """
import sys
sys.modules["triton"] = None  # as if triton were not installed
import torch
from tests.compression.test_quant_layer import _random_layer
from kernelapprox.compression.quantization import _triton
assert _triton.HAS_TRITON is False
layer = _random_layer(3, 40, 3, False, backend="triton")
try:
    layer(torch.zeros(1, 40))
except ImportError as error:
    assert "triton" in str(error)
    layer.backend = "auto"
    assert layer(torch.zeros(1, 40)).shape == (1, 3)
    print("ok")
"""


def test_layer_imports_and_runs_without_triton() -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_cpu_tensors_without_the_interpreter_refused(monkeypatch) -> None:
    pytest.importorskip("triton")
    if torch.cuda.is_available():
        pytest.skip("CPU tensors only")
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    layer = _random_layer(3, 40, 3, False, backend="triton")
    with pytest.raises(ValueError, match="TRITON_INTERPRET"):
        layer(torch.zeros(1, 40))
