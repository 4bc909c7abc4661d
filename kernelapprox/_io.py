"""Atomic file writes: a reader sees the old file or the new one, never a part of either.

The new content goes to a temporary file in the same folder (so the rename cannot cross file
systems), which is flushed and ``fsync``-ed, renamed over the target with ``os.replace``
(atomic on POSIX and Windows), and the folder is ``fsync``-ed so the rename itself survives a
power cut. A failure on the way removes the temporary file and leaves the target as it was.

:func:`check_out_dir` and :func:`check_out_file` check an output path before any work, so that
a wrong path costs no time and leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import glob
import json
import math
import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kernelapprox.errors import EnvironmentFailure


def fsync_dir(folder: str | os.PathLike[str]) -> None:
    """``fsync`` a folder so that renames and new entries in it are durable (POSIX only)."""
    if os.name != "posix":  # pragma: no cover - Windows cannot open a folder
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary path to write ``path``'s new content to; it replaces ``path`` on success.

    The temporary name keeps ``path``'s extension, so writers that infer the format from the
    name (``matplotlib``'s ``savefig``) write the right one. If the block raises, the
    temporary file is removed and ``path`` is untouched.

    Examples
    --------
    >>> with atomic_path(folder / "plot.png") as tmp:  # doctest: +SKIP
    ...     fig.savefig(tmp)
    """
    path = Path(path)
    # os.open with mode 0o666 (not mkstemp's 0o600): the new file gets the umask's permissions,
    # like any file the user's tools create
    tmp = path.with_name(f".{path.stem}.tmp-{secrets.token_hex(6)}{path.suffix}")
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        yield tmp
        with tmp.open("rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_dir(path.parent)


def _temporary_pattern(path: Path) -> re.Pattern[str]:
    return re.compile(rf"\.{re.escape(path.stem)}\.tmp-[0-9a-f]{{12}}{re.escape(path.suffix)}")


def remove_stale_temporaries(path: str | os.PathLike[str]) -> list[Path]:
    """Remove the temporary files that :func:`atomic_path` left for ``path`` when killed.

    Only names of exactly the form it creates (``.STEM.tmp-<12 hex digits>SUFFIX``) are
    removed. Call it only while no other writer of ``path`` runs (e.g. under a lock).
    """
    path = Path(path)
    pattern = _temporary_pattern(path)
    removed = []
    for candidate in path.parent.glob(f".{glob.escape(path.stem)}.tmp-*"):
        if pattern.fullmatch(candidate.name) and candidate.is_file():
            candidate.unlink()
            removed.append(candidate)
    return removed


def atomic_write(path: str | os.PathLike[str], data: str | bytes) -> Path:
    """Write ``data`` (text is UTF-8 encoded) to ``path`` atomically; return ``path``."""
    payload = data.encode() if isinstance(data, str) else data
    with atomic_path(path) as tmp:
        tmp.write_bytes(payload)
    return Path(path)


def json_safe(value: Any) -> Any:
    """A copy of ``value`` that JSON can hold: NaN/inf become ``None`` (``null``), numpy and
    torch scalars become Python numbers, tuples become lists, keys become strings."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, str):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def json_text(value: Any) -> str:
    """``value`` as indented, valid JSON (no ``NaN``: see :func:`json_safe`)."""
    return json.dumps(json_safe(value), indent=2, allow_nan=False)


def check_out_dir(value: str | os.PathLike[str] | None, option: str = "--out") -> Path | None:
    """Validate a folder option before any work; create nothing.

    ``None`` stays ``None``. An empty name or an existing file is a ``ValueError`` naming
    ``option``; a folder that cannot be created or written (the nearest existing parent is
    not writable) is an :class:`~kernelapprox.errors.EnvironmentFailure`.
    """
    if value is None:
        return None
    if not str(value).strip():
        raise ValueError(f"{option} must name a folder, got an empty name")
    path = Path(value)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{option} must name a folder, but {str(path)!r} is an existing file")
    parent = path
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise ValueError(f"{option} {str(path)!r}: {str(parent)!r} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise EnvironmentFailure(
            f"{option} {str(path)!r}: cannot write in {str(parent)!r} (permission denied or "
            f"read-only file system); nothing was written; choose another {option}"
        )
    return path


def check_out_file(value: str | os.PathLike[str] | None, option: str) -> Path | None:
    """Validate a file option (written at the end) before any work; create nothing."""
    if value is None:
        return None
    if not str(value).strip():
        raise ValueError(f"{option} must name a file, got an empty name")
    path = Path(value)
    if path.is_dir():
        raise ValueError(f"{option} must name a file, but {str(path)!r} is a folder")
    check_out_dir(path.parent, f"{option}'s folder")
    return path
