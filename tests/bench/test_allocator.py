"""Freed memory kept in the process (``kernelapprox.bench.allocator``): checked in fresh
interpreters, since the setting lasts for the whole process."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from kernelapprox.bench import allocator

GLIBC = allocator._mallopt() is not None

#: Minor page faults of 64 MiB blocks taken from ``malloc``, written and freed in turn (over
#: the 32 MiB ceiling of glibc's adaptive mmap threshold: a fresh mapping each time by
#: default), counted over rounds 2 to 6: with freed memory kept the first block stays in
#: the heap and comes back, faulted in already. (``malloc`` itself, not torch: what else
#: the process allocates in between would move the blocks.)
FAULTS = """
import ctypes, json, resource, sys
from kernelapprox.bench import allocator
took = allocator.retain_freed_memory() if sys.argv[1] == "retain" else None
libc = ctypes.CDLL(None)
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
n = 64 * 2**20
counts = []
for _ in range(6):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    block = libc.malloc(n)
    ctypes.memset(block, 1, n)
    counts.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    libc.free(block)
faults = sum(counts[1:])
print(json.dumps({"took": took, "faults": faults, "settings": allocator.allocator_settings()}))
"""


def _fresh(mode: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", FAULTS, mode], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.skipif(not GLIBC or sys.platform != "linux", reason="glibc's mallopt on Linux")
def test_a_freed_block_is_reused_without_page_faults() -> None:
    """By default each 64 MiB block is mapped and faulted in again (at least 32 faults per
    block, 2 MiB at a time); with retained memory it comes back from the heap."""
    default, retained = _fresh("default"), _fresh("retain")
    assert default["settings"] == {"retain_freed_memory": False}
    assert retained["took"] is True
    assert retained["settings"] == {
        "retain_freed_memory": True,
        "mmap_threshold": allocator.MMAP_THRESHOLD,
        "trim_threshold": allocator.TRIM_THRESHOLD,
    }
    assert default["faults"] >= 5 * 32
    assert retained["faults"] < 8


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"mmap_threshold": 1.5}, TypeError, "mmap_threshold"),
        ({"mmap_threshold": True}, TypeError, "mmap_threshold"),
        ({"trim_threshold": "1"}, TypeError, "trim_threshold"),
        ({"mmap_threshold": 0}, ValueError, "mmap_threshold"),
        ({"trim_threshold": 2**31}, ValueError, "trim_threshold"),
        ({"mmap_threshold": 2**20, "trim_threshold": 2**19}, ValueError, "trim_threshold"),
    ],
)
def test_bad_thresholds_are_refused_before_anything_changes(kwargs, error, name) -> None:
    before = allocator.allocator_settings()
    with pytest.raises(error, match=name):
        allocator.retain_freed_memory(**kwargs)
    assert allocator.allocator_settings() == before


def test_without_glibc_nothing_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(allocator, "_mallopt", lambda: None)
    before = allocator.allocator_settings()
    assert allocator.retain_freed_memory() is False
    assert allocator.allocator_settings() == before


def test_settings_are_recorded_only_when_glibc_takes_them(monkeypatch) -> None:
    monkeypatch.setattr(allocator, "_settings", {"retain_freed_memory": False})
    calls: list[tuple[int, int]] = []
    monkeypatch.setattr(allocator, "_mallopt", lambda: lambda p, v: calls.append((p, v)) or 0)
    assert allocator.retain_freed_memory(2**20, 2**21) is False
    assert calls == [(allocator.M_MMAP_THRESHOLD, 2**20)]  # refused: the second is not tried
    assert allocator.allocator_settings() == {"retain_freed_memory": False}
    monkeypatch.setattr(allocator, "_mallopt", lambda: lambda p, v: 1)
    assert allocator.retain_freed_memory(2**20, 2**21) is True
    assert allocator.allocator_settings() == {
        "retain_freed_memory": True,
        "mmap_threshold": 2**20,
        "trim_threshold": 2**21,
    }


BENCH = [
    "-m",
    "kernelapprox",
    "bench",
    "--lengths",
    "8",
    "--impls",
    "ours",
    "--repeats",
    "1",
    "--format",
    "json",
    "--no-progress",
]


@pytest.mark.skipif(not GLIBC, reason="glibc's mallopt")
@pytest.mark.parametrize("choice", ["retain", "default", None])
def test_bench_records_its_allocator(choice: str | None) -> None:
    """``kernelapprox bench`` keeps freed memory unless ``--allocator default``, and says so in
    its environment record."""
    extra = [] if choice is None else ["--allocator", choice]
    done = subprocess.run(
        [sys.executable, *BENCH, *extra], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    kept = json.loads(done.stdout)["environment"]["allocator"]["retain_freed_memory"]
    assert kept is (choice != "default")
