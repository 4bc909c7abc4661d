"""Small helpers shared by the dynamics modules: seeds, dtypes and checks."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
import torch

from kernelapprox._validation import as_seed_sequence, spawn

#: Default floating type of every dynamics experiment: the invariance checks are at 1e-10.
DEFAULT_DTYPE = torch.float64


def torch_generator(seed: Any, name: str = "seed") -> torch.Generator:
    """A CPU ``torch.Generator`` determined by ``seed``.

    A ``torch.Generator`` is returned unchanged; anything else accepted by
    :func:`kernelapprox._validation.as_seed_sequence` is turned into a 64-bit state.
    """
    if isinstance(seed, torch.Generator):
        return seed
    seq = as_seed_sequence(seed, name)
    gen = torch.Generator()
    gen.manual_seed(int(seq.generate_state(1, dtype=np.uint64)[0]))
    return gen


def child_generators(seed: Any, n: int, name: str = "seed") -> list[torch.Generator]:
    """``n`` independent generators from ``SeedSequence.spawn`` (never one continued stream)."""
    if isinstance(seed, torch.Generator):
        seed = int(seed.initial_seed())
    return [torch_generator(child) for child in spawn(seed, n, name)]


def check_fraction(value: Any, name: str) -> float:
    """Return ``value`` as a ``float`` in the open-closed interval ``(0, 1]``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number in (0, 1], got {value!r}")
    value = float(value)
    if not (0.0 < value <= 1.0):
        raise ValueError(f"{name} must be a number in (0, 1], got {value}")
    return value


def check_dtype(dtype: Any) -> torch.dtype:
    """Accept ``torch.float32`` / ``torch.float64`` (or their names as strings)."""
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype, None)
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype!r}")
    return dtype


def orthonormal_columns(matrix: torch.Tensor) -> torch.Tensor:
    """An orthonormal basis of the column space of a full-column-rank ``matrix`` (reduced QR)."""
    q, _ = torch.linalg.qr(matrix, mode="reduced")
    return q


def complete_basis(matrix: torch.Tensor) -> torch.Tensor:
    """A square orthogonal matrix whose first ``k`` columns span ``range(matrix)`` (k = #columns).

    Full QR: the first ``k`` columns of ``Q`` span the columns of ``matrix`` (when it has full
    column rank), the remaining ones span the orthogonal complement.
    """
    q, _ = torch.linalg.qr(matrix, mode="complete")
    return q
