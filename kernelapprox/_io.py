"""Atomic file writes: a reader sees the old file or the new one, never a part of either.

The new content goes to a temporary file in the same folder (so the rename cannot cross file
systems), which is flushed and ``fsync``-ed, renamed over the target with ``os.replace``
(atomic on POSIX and Windows), and the folder is ``fsync``-ed so the rename itself survives a
power cut. A failure on the way removes the temporary file and leaves the target as it was.
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
