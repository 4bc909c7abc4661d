"""Built-in data sets for studies, and ``.npy`` files.

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
==============  =====================================================================
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from kernelapprox._validation import as_data_array, check_choice, check_positive_int, spawn

BUILTIN = ("normal", "digits", "qk", "qk_unit")
DEFAULT_DIM = {"normal": 8, "qk": 64, "qk_unit": 64}


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


def content_sha256(name: str) -> str | None:
    """SHA-256 of a ``.npy`` data file's bytes (its identity in a study), ``None`` if built in."""
    if not name.endswith(".npy"):
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
    elif name.endswith(".npy"):
        shape = _read_npy(name, mmap=True).shape
        if len(shape) != 2:
            raise ValueError(f"data file {name!r} must hold an array of shape (n, d), got {shape}")
        actual = shape[1]
    else:
        raise ValueError(
            f"data must be one of {', '.join(map(repr, BUILTIN))} or a path ending in .npy; "
            f"got {name!r}"
        )
    if dim is not None and dim != actual:
        raise ValueError(f"dim={dim} does not match data {name!r}, which has d={actual}")
    return actual


def load_data(
    name: str, *, n_points: int, dim: int | None = None, seed: int = 0, split: str = "test"
) -> np.ndarray:
    """Rows of a built-in data set or a ``.npy`` file, float64, shape ``(n, d)``.

    ``n_points`` takes the first ``n`` rows (file and digits) or draws ``n`` rows (synthetic
    sets, seeded). ``dim`` sets ``d`` for synthetic sets and must match the data otherwise.
    ``split="train"`` gives a disjoint sample of the same size for fitting weights: the next
    ``n`` rows of a file, or an independent draw of a synthetic set.
    """
    n_points = check_positive_int(n_points, "n_points")
    check_choice(split, "split", ("test", "train"))
    if dim is not None:
        dim = check_positive_int(dim, "dim")
    if name in ("normal", "qk", "qk_unit"):
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
    elif name.endswith(".npy"):
        X = as_data_array(_read_npy(name), f"data file {name}")
    else:
        raise ValueError(
            f"data must be one of {', '.join(map(repr, BUILTIN))} or a path ending in .npy; "
            f"got {name!r}"
        )
    if dim is not None and dim != X.shape[1]:
        raise ValueError(f"dim={dim} does not match data {name!r}, which has d={X.shape[1]}")
    start = 0 if split == "test" else n_points
    if start + n_points > X.shape[0]:
        need = "2 * n_points (fitted weights train on a disjoint sample)" if start else "n_points"
        raise ValueError(
            f"data {name!r} has {X.shape[0]} rows, fewer than {need}={start + n_points}"
        )
    return X[start : start + n_points].copy()
