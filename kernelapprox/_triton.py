"""Whether Triton is there and how it runs, for every module with Triton kernels.

Triton is optional (the ``gpu`` extra): modules with kernels import without it and report
:func:`triton_available` as ``False``. On a machine without a GPU, kernels run in Triton's
CPU interpreter when ``TRITON_INTERPRET=1`` is set before ``triton`` is imported
(:func:`triton_interpreted`).
"""

from __future__ import annotations

import importlib.util
import os


def triton_available() -> bool:
    """Whether the ``triton`` package can be imported (without importing it)."""
    try:
        return importlib.util.find_spec("triton") is not None
    except (ImportError, ValueError):  # a module set to None in sys.modules
        return False


def triton_interpreted() -> bool:
    """Whether Triton runs kernels in its CPU interpreter (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on")
