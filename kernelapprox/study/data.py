"""Built-in data sets for studies, and ``.npy`` / ``.csv`` files.

==============  =====================================================================
``normal``      ``n x d`` standard normal rows (``d = --dim``, default 8)
``digits``      scikit-learn's handwritten digits scaled to ``[0, 1]`` (``d = 64``),
                shipped inside scikit-learn (no download)
``qk``          attention-like queries/keys: ``N(0, I_d)`` rows (norm about ``sqrt(d)``),
                meant for ``Softmax(scale=1/sqrt(d))`` (``d = --dim``, default 64)
``qk_unit``     the same rows normalized to norm ``d^{1/4}``: unit norm after the
                attention scaling ``1/sqrt(d)`` is split between q and k, DiJiang's
                "x is usually normalized" assumption
``PATH.npy``    any float array of shape ``(n, d)``
``PATH.csv``    comma-separated numbers, one row per line (a non-numeric first line is
                taken as a header and skipped)
==============  =====================================================================

Rows of a file (and of ``digits``) are a seeded random subsample (:data:`SUBSAMPLE`), never
the first rows: files are often sorted (wine by class). ``n_points="all"`` takes every row; a
set with fewer rows than ``n_points`` uses all of them, with a :class:`SmallDataWarning`.
"""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from kernelapprox._validation import as_data_array, check_choice, check_positive_int, spawn

BUILTIN = ("normal", "digits", "qk", "qk_unit")
SYNTHETIC = ("normal", "qk", "qk_unit")
DEFAULT_DIM = {"normal": 8, "qk": 64, "qk_unit": 64}
FILE_SUFFIXES = (".npy", ".csv")
#: How the rows of a file or of ``digits`` are chosen (part of a study's identity, so a
#: stored study made under another rule is never resumed): a permutation drawn from the
#: third child of the study seed; the first ``n`` permuted rows are the test rows, the next
#: ``n`` the training rows of fitted weights.
SUBSAMPLE = "seeded-permutation"


class SmallDataWarning(UserWarning):
    """The data set has fewer rows than ``n_points``: all of its rows are used."""


def is_file(name: str) -> bool:
    return name.endswith(FILE_SUFFIXES)


def is_builtin(name: str) -> bool:
    return name in BUILTIN


def _read_npy(name: str, *, mmap: bool = False) -> np.ndarray:
    """The array in the ``.npy`` file ``name``, refusing what cannot be study data.

    A missing file is a ``FileNotFoundError``; an empty, truncated or pickled file, and a
    complex array (its imaginary part would be dropped silently), a ``ValueError`` naming
    the file.
    """
    path = Path(name)
    if not path.is_file():
        raise FileNotFoundError(f"data file {name!r} does not exist")
    try:
        arr = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (EOFError, ValueError, OSError) as exc:  # empty, truncated, pickled, not .npy
        if isinstance(exc, OSError) and exc.errno is not None:
            raise  # a read failure (permission, I/O), not a bad file
        reason = str(exc).strip() or "the file is empty"
        raise ValueError(f"data file {name!r} is not a readable .npy array: {reason}") from None
    if np.iscomplexobj(arr):
        raise ValueError(
            f"data file {name!r} holds complex numbers ({arr.dtype}); studies need real data "
            "(save np.real(X), or the real and imaginary parts as columns)"
        )
    return arr


def _read_csv(name: str) -> np.ndarray:
    """The numbers of a ``.csv`` file, shape ``(n, d)``; a non-numeric first line is a header."""
    path = Path(name)
    if not path.is_file():
        raise FileNotFoundError(f"data file {name!r} does not exist")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise ValueError(f"data file {name!r} is not a UTF-8 text .csv file") from None
    lines = [line for line in lines if line.strip()]

    def numbers(line: str) -> list[float] | None:
        try:
            return [float(v) for v in line.split(",")]
        except ValueError:
            return None

    rows = [numbers(line) for line in lines]
    header = bool(rows) and rows[0] is None
    for i, row in enumerate(rows[1:] if header else rows):
        if row is None:
            line = lines[i + header]
            raise ValueError(
                f"data file {name!r}: line {i + 1 + header} holds non-numbers: {line!r}"
            )
    rows = rows[1:] if header else rows
    if not rows:
        raise ValueError(f"data file {name!r} holds no rows of numbers")
    widths = {len(r) for r in rows}
    if len(widths) != 1:
        raise ValueError(f"data file {name!r}: rows of different lengths {sorted(widths)}")
    return np.asarray(rows, dtype=np.float64)


def _read_file(name: str, *, mmap: bool = False) -> np.ndarray:
    return _read_npy(name, mmap=mmap) if name.endswith(".npy") else _read_csv(name)


def content_sha256(name: str) -> str | None:
    """SHA-256 of a data file's bytes (its identity in a study), ``None`` if built in."""
    if not is_file(name):
        return None
    digest = hashlib.sha256()
    with Path(name).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def resolve_dim(name: str, dim: int | None) -> int:
    """The dimension ``d`` that :func:`load_data` will return for ``name`` and ``dim``."""
    if name in DEFAULT_DIM:
        return dim if dim is not None else DEFAULT_DIM[name]
    if name == "digits":
        actual = 64
    elif is_file(name):
        shape = _read_file(name, mmap=True).shape
        if len(shape) != 2:
            raise ValueError(f"data file {name!r} must hold an array of shape (n, d), got {shape}")
        actual = shape[1]
    else:
        raise ValueError(
            f"data must be one of {', '.join(map(repr, BUILTIN))} or a path ending in .npy "
            f"or .csv; got {name!r}"
        )
    if dim is not None and dim != actual:
        raise ValueError(f"dim={dim} does not match data {name!r}, which has d={actual}")
    return actual


def check_n_points(n_points: Any) -> int | str:
    """``n_points`` as a count >= 2 or ``"all"``; a ``ValueError`` naming it otherwise."""
    if n_points == "all":
        return "all"
    if isinstance(n_points, str):
        raise ValueError(f"n_points must be an integer >= 2 or 'all', got {n_points!r}")
    return check_positive_int(n_points, "n_points", minimum=2)


def load_data(
    name: str,
    *,
    n_points: int | str,
    dim: int | None = None,
    seed: int = 0,
    split: str = "test",
    fitted: bool = False,
) -> np.ndarray:
    """Rows of a built-in data set or a ``.npy``/``.csv`` file, float64, shape ``(n, d)``.

    Synthetic sets draw ``n_points`` rows (seeded). Files and ``digits`` give a seeded random
    subsample (:data:`SUBSAMPLE`) of ``n_points`` rows, or all rows for ``"all"``; a set
    with fewer rows than asked uses all of them (:class:`SmallDataWarning`). ``dim`` sets
    ``d`` for synthetic sets and must match the data otherwise. With ``fitted=True`` the
    study also fits weights: ``split="train"`` gives a disjoint sample of the same size (the
    next rows of the permutation, or an independent draw of a synthetic set), and a set
    with fewer than ``2 * n_points`` rows is split in halves.
    """
    n_points = check_n_points(n_points)
    check_choice(split, "split", ("test", "train"))
    if dim is not None:
        dim = check_positive_int(dim, "dim")
    if name in SYNTHETIC:
        if n_points == "all":
            raise ValueError(
                f"n_points='all' needs a data set with rows; {name!r} is drawn at random: "
                "give a number of points"
            )
        d = dim if dim is not None else DEFAULT_DIM[name]
        test_child, train_child = spawn(seed, 2)
        child = test_child if split == "test" else train_child
        X = np.random.default_rng(child).standard_normal((n_points, d))
        if name == "qk_unit":
            X *= d**0.25 / np.linalg.norm(X, axis=1, keepdims=True)
        return X
    if name == "digits":
        from sklearn.datasets import load_digits

        X = load_digits().data / 16.0
    elif is_file(name):
        X = as_data_array(_read_file(name), f"data file {name}")
    else:
        raise ValueError(
            f"data must be one of {', '.join(map(repr, BUILTIN))} or a path ending in .npy "
            f"or .csv; got {name!r}"
        )
    if dim is not None and dim != X.shape[1]:
        raise ValueError(f"dim={dim} does not match data {name!r}, which has d={X.shape[1]}")
    return X[subsample_rows(name, X.shape[0], n_points, seed, split, fitted)].copy()


def subsample_rows(
    name: str, rows: int, n_points: int | str, seed: int, split: str, fitted: bool
) -> np.ndarray:
    """Indices (increasing) of the rows :func:`load_data` takes from a set of ``rows`` rows."""
    parts = 2 if fitted else 1
    n = rows // parts if n_points == "all" else n_points
    if min(n, rows // parts) < 2:
        halves = " (fitted weights need two disjoint halves)" if fitted else ""
        raise ValueError(
            f"data {name!r} has {rows} row{'s' if rows != 1 else ''}: too few for a study "
            f"(2 points at least{halves})"
        )
    if n * parts > rows:
        n = rows // parts
        need = "2 * n_points (fitted weights train on a disjoint sample)" if fitted else "n_points"
        warnings.warn(
            f"data {name!r} has {rows} rows, fewer than {need}={n_points * parts}: using "
            f"{n * parts} rows" + (" (two halves)" if fitted else " (all of them)"),
            SmallDataWarning,
            stacklevel=3,
        )
    order = np.random.default_rng(spawn(seed, 3)[2]).permutation(rows)
    start = 0 if split == "test" else n
    return np.sort(order[start : start + n])


#: The share of a study's rows held out to test learning metrics (the rest trains them).
TEST_FRACTION = 0.25
#: How learning metrics split a study's rows (part of the identity of such a study).
LEARNING_SPLIT = "seeded-permutation-quarter-test"


def _read_targets(target: str, rows: int) -> np.ndarray:
    y = _read_file(target)
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or y.shape[0] != rows:
        raise ValueError(
            f"target file {target!r} must hold one value per data row, shape ({rows},), "
            f"got {y.shape}"
        )
    if not np.all(np.isfinite(y.astype(np.float64))):
        raise ValueError(f"target file {target!r} holds NaN or infinite values")
    return y


def load_targets(
    name: str,
    *,
    target: str | None,
    n_points: int | str,
    seed: int = 0,
    fitted: bool = False,
) -> np.ndarray | None:
    """Targets of the rows :func:`load_data` returns (same subsample), or ``None``.

    ``digits`` has its class labels (0-9); a data file has the values of the ``target``
    file (``.npy`` or ``.csv``, one value per row of the data file); synthetic sets have none.
    """
    if name in SYNTHETIC:
        return None
    if is_file(name):
        if target is None:
            return None
        rows = resolve_rows(name)
        y = _read_targets(target, rows)
    else:
        from sklearn.datasets import load_digits

        y = load_digits().target
        rows = y.shape[0]
    with warnings.catch_warnings():  # load_data has warned about a small set already
        warnings.simplefilter("ignore", SmallDataWarning)
        return y[subsample_rows(name, rows, n_points, seed, "test", fitted)].copy()


def resolve_rows(name: str) -> int:
    """The number of rows of a data file."""
    return int(_read_file(name, mmap=True).shape[0])


def learning_split(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) row indices of a study's ``n`` rows for learning metrics.

    A permutation from the fourth child of the study seed (:data:`LEARNING_SPLIT`); the
    first ``ceil(n * TEST_FRACTION)`` permuted rows test, the rest train.
    """
    order = np.random.default_rng(spawn(seed, 4)[3]).permutation(n)
    n_test = int(np.ceil(n * TEST_FRACTION))
    if n_test < 1 or n - n_test < 2:
        raise ValueError(f"learning metrics need at least 4 data points, got n_points={n}")
    return np.sort(order[n_test:]), np.sort(order[:n_test])
