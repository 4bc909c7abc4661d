"""Conversions shared by the assertion helpers: numpy or torch in, float64/complex128 out."""

from __future__ import annotations

from typing import Any

import numpy as np


def is_tensor(value: Any) -> bool:
    """Whether ``value`` is a torch tensor (without importing torch for numpy-only users)."""
    return hasattr(value, "detach") and hasattr(value, "cpu") and hasattr(value, "dtype")


def machine_epsilon(value: Any) -> float:
    """Machine epsilon of a numpy array's or torch tensor's (real) dtype; float64 otherwise."""
    if is_tensor(value):
        import torch

        dtype = value.dtype
        if dtype.is_complex:
            dtype = value.real.dtype
        return (
            float(torch.finfo(dtype).eps)
            if dtype.is_floating_point
            else float(np.finfo(np.float64).eps)
        )
    arr = np.asarray(value)
    if np.issubdtype(arr.dtype, np.inexact):
        return float(np.finfo(arr.dtype).eps)
    return float(np.finfo(np.float64).eps)


def to_numpy(value: Any, name: str) -> np.ndarray:
    """``value`` as a float64 (or complex128) numpy array; torch tensors are moved to the host."""
    if is_tensor(value):
        import torch

        value = value.detach().cpu()
        value = value.to(torch.complex128 if value.dtype.is_complex else torch.float64).numpy()
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError) as exc:  # pragma: no cover - numpy accepts almost anything
        raise TypeError(f"{name} must be a numeric array or tensor: {exc}") from None
    if np.iscomplexobj(arr):
        return arr.astype(np.complex128)
    try:
        return arr.astype(np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"{name} must be a numeric array or tensor, got {arr.dtype}: {exc}"
        ) from None


def n_rows(value: Any, name: str) -> int:
    """Number of rows of a 2-D data matrix (numpy or torch); ValueError otherwise."""
    shape = tuple(value.shape) if hasattr(value, "shape") else np.shape(value)
    if len(shape) != 2 or shape[0] == 0 or shape[1] == 0:
        raise ValueError(
            f"{name} must be a data matrix of shape (n, d) with n, d >= 1, got {shape}"
        )
    return int(shape[0])
