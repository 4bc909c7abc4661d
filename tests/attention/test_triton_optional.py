"""The Triton kernels are optional: without ``triton`` the module imports and says so."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import sys
sys.modules["triton"] = None  # as if triton were not installed
import torch
from kernelapprox.attention.triton import attention as tk
from kernelapprox import features, kernels
assert tk.HAS_TRITON is False
fm = features.make("positive", kernels.Softmax(), 8, dim=4, seed=0)
x = torch.zeros(1, 2, 1, 4)
try:
    tk.triton_feature_attention(x, x, x, fm, causal=False)
except ImportError as error:
    assert "triton" in str(error)
    print("ok")
"""


def test_module_imports_without_triton():
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
