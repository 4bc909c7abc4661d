"""The on-disk result store of a study: ``spec.json`` and an append-only ``results.csv``.

Format (version :data:`FORMAT_VERSION`)
---------------------------------------
``spec.json``
    ``{"store": "kernelapprox study", "version": 2, "spec": {...}}`` where ``spec`` is
    :meth:`StudySpec.identity`: every option that changes a row or the set of rows,
    including the SHA-256 of each ``.npy`` data file. It is written atomically when the
    study is created and when ``--extend`` grows it, and never otherwise.
``results.csv``
    A header line and one line per (cell, replication, metric): the tidy columns
    :data:`~kernelapprox.study.runner.COLUMNS` followed by ``crc32``, the CRC-32 (8 hex
    digits) of the line's bytes before its last comma. Lines end with ``\\n``. The file is
    created atomically with its header and afterwards only appended to (each cell in one
    write followed by ``fsync``); nothing ever rewrites or truncates it.

Reading verifies every line: a line without its terminator (a write cut short; the next
append first closes it with the mark :data:`TORN`, so it can never verify), with a wrong
checksum, undecodable bytes, more than :data:`MAX_LINE` bytes, or a row outside the
stored spec is skipped, with one :class:`StoreWarning` counting the skipped lines. A
(cell, replication, metric) is done when an intact line holds it; the first intact line of
each wins, so a row appended again after a skipped one is never counted twice. A cell is
complete when all its replications and metrics are done; a resume runs only the missing
replications and appends only the missing rows.

Stores of format 1 (``spec.json`` without a ``version``, rows without checksums) are refused
with a message, never converted: rerun such a study into a new ``--out``.

Concurrency: the folder itself is locked (``flock(LOCK_EX | LOCK_NB)`` on the directory, so
the lock creates no file) for as long as a run writes to it. A second run fails at once
with :class:`StoreBusy`; the kernel releases the lock of a killed process, so there is no
stale lock to clean up. On systems without ``fcntl`` (Windows) runs are not locked. Under
the lock a run also removes the temporary files that a killed run's atomic writes left
(:func:`kernelapprox._io.remove_stale_temporaries`; only names of the exact form it creates).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import warnings
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from kernelapprox._io import atomic_write, remove_stale_temporaries
from kernelapprox.errors import EnvironmentFailure
from kernelapprox.study.spec import AXES, FIXED, OPTION, Cell, StudySpec

try:  # pragma: no cover - platform dependent
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

FORMAT_VERSION = 2
STORE_NAME = "kernelapprox study"
#: The tidy columns of a row, in file order (the verification column follows them).
#: ``n_features`` is the number of frequencies ``m`` of the cell's map (never its output
#: columns): the meaning stored results were written with, so that resuming keeps working.
COLUMNS = (
    "data", "kernel", "map", "sampler", "weights", "dim",
    "n_features", "replication", "metric", "value",
)  # fmt: skip
CHECKSUM = "crc32"
HEADER = (",".join((*COLUMNS, CHECKSUM)) + "\n").encode()
#: Longest line the reader accepts; a row is about 100 bytes, longer lines are corrupt.
MAX_LINE = 64 * 1024
#: Appended to a last line that lacks its terminator (a write cut short) before new rows
#: are appended: the line can then never verify, even if only its ``\n`` was missing, and
#: later reads skip it without a warning.
TORN = b" [torn]"

RowKey = tuple[str, int, str]  # (cell key, replication, metric)


class StoreWarning(UserWarning):
    """Lines of ``results.csv`` were skipped because they are torn, corrupt or oversized."""


class StoreBusy(EnvironmentFailure):
    """Another run holds the lock on the study's folder."""


def figure_name(metric: str, metrics: list[str]) -> str:
    """File name of one metric's figure: ``convergence.png`` for the first metric."""
    return "convergence.png" if metric == metrics[0] else f"convergence_{metric}.png"


def encode_row(row: dict[str, Any]) -> bytes:
    """One line of ``results.csv``: the tidy fields, their CRC-32, and the terminator."""
    fields = [row[k] for k in COLUMNS[:-1]] + [repr(float(row["value"]))]
    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow(fields)
    body = buf.getvalue().encode()
    return body + b"," + f"{zlib.crc32(body):08x}".encode() + b"\n"


def decode_line(line: bytes) -> dict[str, Any] | None:
    """The row of one line (without its terminator), or ``None`` if it does not verify."""
    if len(line) > MAX_LINE:
        return None
    body, _, crc = line.rpartition(b",")
    if len(crc) != 8 or crc.strip(b"0123456789abcdef") or int(crc, 16) != zlib.crc32(body):
        return None
    try:
        fields = next(csv.reader([body.decode()]))
        if len(fields) != len(COLUMNS):
            return None
        row: dict[str, Any] = dict(zip(COLUMNS, fields, strict=True))
        for k in ("dim", "n_features", "replication"):
            row[k] = int(row[k])
        row["value"] = float(row["value"])
    except (UnicodeDecodeError, ValueError, csv.Error):
        return None
    return row


def row_cell(row: dict[str, Any]) -> Cell:
    """The cell a row belongs to."""
    return Cell(*(row[k] for k in Cell.__dataclass_fields__))


def differences(stored: dict[str, Any], new: dict[str, Any], *, extend: bool) -> list[str]:
    """What keeps ``new`` from continuing the stored study, one phrase per option.

    Without ``extend`` every entry must be equal. With ``extend`` the sweep axes may only
    gain values, ``replications`` may only grow, and everything else (the fixed options and
    the content of data files already in the study) must be equal.
    """
    problems = []
    for name in (*AXES, *FIXED, "replications", "rules", "learning"):
        old, now = stored.get(name), new.get(name)
        if old == now:
            continue
        if (
            extend
            and name in AXES
            and isinstance(old, list)
            and set(map(str, old)) <= set(map(str, now))
        ):
            continue
        if extend and name == "replications" and isinstance(old, int) and now > old:
            continue
        if name == "learning":
            if extend and old is None:  # the stored rows have no learning metric to contradict
                continue
            problems.append(
                f"learning (--target, --ridge: the learning metrics' targets, ridge and "
                f"split): stored {old!r}, given {now!r}"
            )
            continue
        if name == "rules":
            problems.append(
                f"rules (how data rows are subsampled, how the Laplacian's median length scale "
                f"is measured): stored {old!r}, now {now!r}; the stored rows were computed "
                "under other rules (an older kernelapprox): rerun into a new --out"
            )
            continue
        how = " (--extend only adds values)" if extend and name in AXES else ""
        how = " (--extend only adds replications)" if extend and name == "replications" else how
        problems.append(f"{name} ({OPTION[name]}): stored {old!r}, given {now!r}{how}")
    hashes = stored.get("data_sha256")
    hashes = hashes if isinstance(hashes, dict) else {}
    old_data = stored.get("data") if isinstance(stored.get("data"), list) else []
    for name, digest in new["data_sha256"].items():
        # a file new to the study has no stored rows to contradict ("data" names it)
        if name in old_data and hashes.get(name) != digest:
            problems.append(
                f"data file {name!r} (--data) changed since the study stored its rows "
                f"(sha256 stored {str(hashes.get(name))[:12]}..., now {digest[:12]}...)"
            )
    return problems


def check_out(out: str | os.PathLike[str]) -> Path:
    """``out`` as a folder path that a study may use; refuse what names the wrong thing.

    Creates nothing. An empty name, an existing file, and ``results.csv`` or ``spec.json``
    inside it that are not files are ``ValueError``\\ s naming ``out``.
    """
    if not str(out).strip():
        raise ValueError("out must name a folder, got an empty name")
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise ValueError(f"out={str(path)!r} is an existing file, not a folder")
    parent = path.absolute()
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise ValueError(f"out={str(path)!r} lies inside {str(parent)!r}, which is a file")
    for name in ("results.csv", "spec.json"):
        inner = path / name
        if inner.exists() and not inner.is_file():
            raise ValueError(
                f"out={str(path)!r} holds {name} that is not a file; it is left untouched; "
                "choose another --out"
            )
    return path


@contextlib.contextmanager
def locked(out: Path) -> Iterator[None]:
    """Hold the exclusive lock on the folder ``out`` (which must exist), or raise StoreBusy."""
    if fcntl is None:  # pragma: no cover - Windows
        yield
        return
    fd = os.open(out, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StoreBusy(
                f"another kernelapprox study is writing to {str(out)!r} (the folder is locked); "
                "nothing was written; wait for it to finish, then rerun with --resume, or "
                "choose another --out"
            ) from None
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


class ResultStore:
    """The verified rows of a study folder, and appends to it.

    Use :func:`open_store`; the constructor only reads (see the module docstring for the
    format and the rules).
    """

    def __init__(self, out: Path, spec: StudySpec, identity: dict[str, Any]) -> None:
        self.out = out
        self.csv = out / "results.csv"
        self.spec_file = out / "spec.json"
        self.spec = spec
        self.identity = identity
        self.rows: dict[RowKey, dict[str, Any]] = {}
        self.skipped_lines = 0
        self._needs_newline = False

    # ------------------------------------------------------------------ reading
    def read_spec(self) -> dict[str, Any] | None:
        """The stored identity, ``None`` when there is no ``spec.json``; refuse a bad one."""
        if not self.spec_file.exists():
            return None
        where = str(self.spec_file)
        try:
            stored = json.loads(self.spec_file.read_bytes().decode())
        except (UnicodeDecodeError, json.JSONDecodeError):
            stored = None
        if not isinstance(stored, dict) or not stored:
            raise ValueError(
                f"{where} is not a kernelapprox study spec (empty or not a JSON object); it is "
                "left untouched; choose another --out"
            )
        if stored.get("store") != STORE_NAME or "version" not in stored:
            raise ValueError(
                f"{where} was written by another program or by an older kernelapprox (store "
                f"format 1, rows without checksums); it is left untouched; rerun the study "
                "into a new --out"
            )
        if stored["version"] != FORMAT_VERSION or not isinstance(stored.get("spec"), dict):
            raise ValueError(
                f"{where} has store format {stored['version']!r}; this kernelapprox reads "
                f"format {FORMAT_VERSION}; it is left untouched; choose another --out"
            )
        return stored["spec"]

    def read_rows(self) -> None:
        """Load every intact row of ``results.csv`` that belongs to the spec (first wins)."""
        data = self.csv.read_bytes()  # its header was checked by _check_state
        lines = data[len(HEADER) :].split(b"\n")
        tail = lines.pop()  # the bytes after the last terminator: a torn line, or b""
        self._needs_newline = bool(tail)
        lines = [line for line in lines if not line.endswith(TORN)]  # closed by an append
        wanted_cells = {c.key for c in self.spec.cells()[0]}
        metrics = set(self.spec.metrics)
        bad = int(bool(tail))
        for line in lines:
            row = decode_line(line)
            if row is None:
                bad += 1
                continue
            key = (row_cell(row).key, row["replication"], row["metric"])
            if (
                key[0] not in wanted_cells
                or not 0 <= key[1] < self.spec.replications
                or key[2] not in metrics
            ):
                bad += 1
                continue
            self.rows.setdefault(key, row)
        self.skipped_lines = bad
        if bad:
            warnings.warn(
                f"{self.csv}: skipped {bad} unreadable line{'s' if bad > 1 else ''} (torn, "
                "corrupt, oversized or outside the spec; the file is never rewritten); cells "
                "missing rows are run again and their rows appended",
                StoreWarning,
                stacklevel=3,
            )

    def missing(self, cell: Cell) -> list[int]:
        """The replications of ``cell`` with at least one metric not on disk."""
        return [
            r
            for r in range(self.spec.replications)
            if any((cell.key, r, m) not in self.rows for m in self.spec.metrics)
        ]

    def sorted_rows(self, cells: Iterable[Cell]) -> list[dict[str, Any]]:
        """The stored rows in sweep order: cells, then replications, then metrics."""
        return [
            self.rows[(c.key, r, m)]
            for c in cells
            for r in range(self.spec.replications)
            for m in self.spec.metrics
            if (c.key, r, m) in self.rows
        ]

    # ------------------------------------------------------------------ writing
    def append(self, rows: list[dict[str, Any]]) -> None:
        """Append the rows not yet stored in one write, then ``fsync``."""
        fresh = {}
        for row in rows:
            key = (row_cell(row).key, row["replication"], row["metric"])
            if key not in self.rows and key not in fresh:
                fresh[key] = row
        if not fresh:
            return
        payload = b"".join(encode_row(r) for r in fresh.values())
        if self._needs_newline:  # close the torn line, so the new rows start on their own
            payload = TORN + b"\n" + payload
        try:
            with self.csv.open("ab") as fh:
                fh.write(payload)
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            raise EnvironmentFailure(
                f"cannot append to {self.csv}: {exc.strerror or exc}; every cell written "
                "before is kept; fix this and rerun with --resume"
            ) from None
        self._needs_newline = False
        self.rows.update(fresh)


@contextlib.contextmanager
def open_store(
    out: Path, spec: StudySpec, identity: dict[str, Any], *, resume: bool, extend: bool
) -> Iterator[ResultStore]:
    """The store in ``out``, locked for the duration; refuse anything but this study.

    Creates ``out``, ``spec.json`` and ``results.csv`` as needed (each atomically), after
    checking, under the lock, that what is there is this study (or, with ``extend``, a
    study this spec extends).
    """
    store = ResultStore(out, spec, identity)
    _check_state(store, resume=resume, extend=extend)  # refuse before creating anything
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EnvironmentFailure(
            f"cannot create out={str(out)!r}: {exc.strerror or exc}; nothing was written; "
            "choose another --out"
        ) from None
    with locked(out):
        stored = _check_state(store, resume=resume, extend=extend)  # again, now authoritative
        try:
            figures = [figure_name(m, spec.metrics) for m in spec.metrics]
            for name in ("spec.json", "results.csv", "summary.json", *figures):
                remove_stale_temporaries(out / name)  # left by a run killed mid-write
            if stored != identity:
                atomic_write(store.spec_file, _spec_document(identity))
            if not store.csv.exists():
                atomic_write(store.csv, HEADER)
        except OSError as exc:
            raise EnvironmentFailure(
                f"cannot write to out={str(out)!r}: {exc.strerror or exc}; the files already "
                "there are untouched; fix this (or choose another --out) and rerun"
            ) from None
        store.read_rows()
        yield store


def load_results(out: str | os.PathLike[str]) -> tuple[StudySpec, list[dict[str, Any]]]:
    """The stored spec of the study in ``out`` and its verified rows (read-only, no lock).

    Each (cell, replication, metric) appears once (its first intact line), in sweep order;
    skipped lines are counted in a :class:`StoreWarning`.
    """
    folder = check_out(out)
    probe = ResultStore(folder, StudySpec(), {})
    stored = probe.read_spec()
    if stored is None:
        raise FileNotFoundError(f"out={str(folder)!r} holds no study (no spec.json)")
    try:
        spec = StudySpec.from_identity(stored)
    except (KeyError, TypeError) as exc:
        raise ValueError(
            f"{probe.spec_file} lacks the option {exc}; it is left untouched"
        ) from None
    store = ResultStore(folder, spec, stored)
    if store.csv.exists():
        _check_state(store, resume=True, extend=False)
        store.read_rows()
    return spec, store.sorted_rows(spec.cells()[0])


def _spec_document(identity: dict[str, Any]) -> str:
    doc = {"store": STORE_NAME, "version": FORMAT_VERSION, "spec": identity}
    return json.dumps(doc, indent=2, allow_nan=False) + "\n"


def _check_state(store: ResultStore, *, resume: bool, extend: bool) -> dict[str, Any] | None:
    """Refuse a folder that does not hold this study (or one it extends); the stored spec."""
    where = str(store.out)
    stored = store.read_spec()
    if stored is None:
        if store.csv.exists():
            raise ValueError(
                f"out={where!r} holds a results.csv that kernelapprox study did not write (no "
                "spec.json beside it); it is left untouched; choose another --out"
            )
        return None
    if store.csv.exists():
        with store.csv.open("rb") as fh:
            if fh.read(len(HEADER)) != HEADER:
                raise ValueError(
                    f"{store.csv} does not start with the header of a kernelapprox study "
                    f"({HEADER.decode().strip()}); it is left untouched; choose another --out"
                )
    if not (resume or extend):
        raise ValueError(
            f"out={where!r} already holds a study; pass --resume to continue it, --extend to "
            "grow it, or choose another --out"
        )
    problems = differences(stored, store.identity, extend=extend)
    if problems:
        verb = "extend" if extend else "resume"
        hint = (
            "give the stored values"
            if extend
            else "give the stored options, --extend to grow "
            "the study (more replications, or more data, kernels, maps, samplers, weights, "
            "dims, features or metrics)"
        )
        raise ValueError(
            f"cannot {verb} the study in {where!r}: {'; '.join(problems)}; {hint}, or choose "
            "another --out"
        )
    return stored
