r"""Keep freed CPU memory in the process, so that large temporaries are not page-faulted in
and zeroed by the kernel at every call.

torch's CPU tensors come from the C library's ``malloc``. glibc hands a block above its
*mmap threshold* to the kernel as a fresh mapping and unmaps it when it is freed; below the
threshold the block comes from the heap, whose free top is returned to the kernel whenever it
exceeds the *trim threshold*. Both thresholds adapt (the mmap threshold rises to the largest
freed mapped block, at most 32 MiB on 64-bit, and the trim threshold to twice that), but a
step of attention that allocates and frees tens of MiB of features, scores and gradients
still crosses them: each call then maps, faults in and zeroes the same memory again. At
``B H T = 8 x 4096``, ``m = 256``, two threads, that system time was a fifth of a forward and
backward step (``docs/results/benchmarks.md``).

:func:`retain_freed_memory` raises both thresholds with ``mallopt`` (glibc's
``M_MMAP_THRESHOLD`` and ``M_TRIM_THRESHOLD``): blocks up to ``mmap_threshold`` bytes then
come from the heap and are reused after they are freed, and up to ``trim_threshold`` bytes
of free heap stay mapped. The cost is resident memory: the process keeps its peak heap (up to
the trim threshold above what it holds). It is the C library's counterpart of a caching
allocator (jemalloc or tcmalloc, which guides for PyTorch CPU inference suggest preloading).
It changes the whole process, so the package never calls it on import: ``kernelapprox
bench`` calls it (``--allocator retain``, the default; ``--allocator default`` leaves glibc as
it is), and a training script may call it once at its start. The glibc environment variables
``MALLOC_MMAP_THRESHOLD_`` and ``MALLOC_TRIM_THRESHOLD_`` do the same from outside.
"""

from __future__ import annotations

import ctypes
import numbers
from typing import Any

#: ``mallopt`` parameters of glibc's ``malloc.h``.
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
#: Defaults of :func:`retain_freed_memory`: every block up to 256 MiB from the heap (the
#: largest features of a training step at ``B H T = 8 x 16384``, ``m = 256``, take 128 MiB),
#: and up to 1 GiB of free heap kept.
MMAP_THRESHOLD = 256 * 2**20
TRIM_THRESHOLD = 2**30

_settings: dict[str, Any] = {"retain_freed_memory": False}


def _mallopt() -> Any:
    """glibc's ``mallopt``, or ``None`` off glibc (macOS, Windows, musl: where the symbol is
    missing or its parameters may mean something else)."""
    try:
        libc = ctypes.CDLL(None)  # the symbols the process has loaded, the C library's among them
    except (OSError, TypeError):  # Windows has no such handle
        return None
    if not hasattr(libc, "gnu_get_libc_version") or not hasattr(libc, "mallopt"):
        return None
    mallopt = libc.mallopt
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return mallopt


def _bytes(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int (bytes), got {value!r}")
    if not 0 < value < 2**31:
        raise ValueError(f"{name} must be in (0, 2**31) bytes (an int of mallopt), got {value}")
    return int(value)


def retain_freed_memory(
    mmap_threshold: int = MMAP_THRESHOLD, trim_threshold: int = TRIM_THRESHOLD
) -> bool:
    """Raise glibc's mmap and trim thresholds (module docstring) for the rest of the process.

    Returns whether the C library took both settings (``False`` off glibc: nothing changes).
    ``trim_threshold`` must be at least ``mmap_threshold``: a heap that trims below the size
    of the blocks it serves would return a freed block to the kernel at once.
    """
    mmap_threshold = _bytes(mmap_threshold, "mmap_threshold")
    trim_threshold = _bytes(trim_threshold, "trim_threshold")
    if trim_threshold < mmap_threshold:
        raise ValueError(
            f"trim_threshold ({trim_threshold}) must be >= mmap_threshold ({mmap_threshold})"
        )
    mallopt = _mallopt()
    if mallopt is None:
        return False
    ok = bool(mallopt(M_MMAP_THRESHOLD, mmap_threshold)) and bool(
        mallopt(M_TRIM_THRESHOLD, trim_threshold)
    )
    if ok:
        _settings.update(
            retain_freed_memory=True, mmap_threshold=mmap_threshold, trim_threshold=trim_threshold
        )
    return ok


def allocator_settings() -> dict[str, Any]:
    """What :func:`retain_freed_memory` set in this process (``retain_freed_memory`` False
    when it was never called or did not apply), for a benchmark's record."""
    return dict(_settings)
