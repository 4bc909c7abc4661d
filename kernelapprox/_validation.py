"""Input checks shared by the whole package.

Every public function validates its input here, so that bad input always raises a
``ValueError`` or ``TypeError`` that names the offending parameter and the allowed values,
instead of producing a NaN or a silently wrong answer.

Parameter names are one per concept (docs/guide/architecture.md, "Names"): ``n_features``
is the number of frequencies ``m``, ``output_dim`` the number of output columns, ``dim`` the
input dimension and ``seed`` a :data:`SeedLike`. A renamed keyword keeps working for one
release through :func:`renamed_keywords`.
"""

from __future__ import annotations

import functools
import inspect
import numbers
import sys
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar, Union

import numpy as np

if TYPE_CHECKING:  # torch is imported only where a torch.Generator is really used
    import torch

#: Everything a ``seed=`` parameter accepts (:func:`as_seed_sequence`): ``None`` for fresh
#: entropy, a non-negative integer, a ``numpy.random.SeedSequence`` or ``Generator``, or a
#: ``torch.Generator``. The same seed gives the same draws on every device.
#:
#: Defaults follow one rule, by what the randomness is for:
#:
#: * ``seed=None`` (fresh entropy, like numpy and scipy.stats.qmc) where the random draw *is*
#:   the product handed to the caller: samplers and their frequencies, feature maps, modules
#:   with random initial weights, factorizations, random problems, masks and data splits;
#: * ``seed=0`` where the randomness is only a means to a reported number: experiments,
#:   verifications, studies, commands, benchmarks, and statistics of given data computed from
#:   a random subsample or resample (a median distance, fitted weights, a bootstrap
#:   interval), so that the same input gives the same number twice;
#: * no default where a protocol method receives a seed already spawned by its caller
#:   (``Sampler.draw``, ``PointSetSampler.points``).
#:
#: ``tests/test_names.py`` checks every public signature against this rule.
SeedLike = Union[
    int, np.integer, np.random.SeedSequence, np.random.Generator, "torch.Generator", None
]


def check_positive_int(value: Any, name: str, *, minimum: int = 1) -> int:
    """Return ``value`` as an ``int`` after checking that it is an integer ``>= minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value}")
    return int(value)


def check_positive_float(value: Any, name: str) -> float:
    """Return ``value`` as a ``float`` after checking that it is finite and ``> 0``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a positive real number, got {value!r}")
    value = float(value)
    if not np.isfinite(value) or value <= 0.0:
        raise ValueError(f"{name} must be a finite number > 0, got {value}")
    return value


def check_nonnegative_float(value: Any, name: str) -> float:
    """Return ``value`` as a ``float`` after checking that it is finite and ``>= 0``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a non-negative real number, got {value!r}")
    value = float(value)
    if not np.isfinite(value) or value < 0.0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value}")
    return value


def check_bool(value: Any, name: str) -> bool:
    """Return ``value`` after checking that it is a boolean (``bool`` or ``numpy.bool_``).

    Anything else is a ``TypeError``: a string such as ``"no"`` or a number would otherwise
    be taken by its truth value.
    """
    if not isinstance(value, bool | np.bool_):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def check_choice(value: Any, name: str, choices: Iterable[str]) -> str:
    """Check that ``value`` is one of ``choices`` and return it."""
    choices = tuple(choices)
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}")
    return value


def _is_tensor(value: Any) -> bool:
    """Whether ``value`` is a ``torch.Tensor`` (without importing torch when it is not loaded)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.Tensor)


def check_real_finite(value: Any, name: str) -> None:
    """Check that a numpy array or a torch tensor holds real, finite numbers.

    The one check of the numpy and the torch path: complex entries are a ``TypeError`` (an
    imaginary part would be dropped), NaN or infinite entries a ``ValueError``. Tensors are
    checked where they are (no copy to the host).
    """
    if _is_tensor(value):
        complex_valued = value.is_complex()
        finite = complex_valued or bool(value.isfinite().all())
    else:
        value = np.asarray(value)
        complex_valued = np.iscomplexobj(value)
        finite = complex_valued or bool(np.all(np.isfinite(value)))
    if complex_valued:
        raise TypeError(f"{name} must be real-valued, got complex values ({value.dtype})")
    if not finite:
        raise ValueError(f"{name} contains NaN or infinite values")


def as_finite_array(value: Any, name: str, *, shape_hint: str = "") -> np.ndarray:
    """``value`` as a float64 array with real, finite entries (tensors are moved to the host).

    ``shape_hint`` completes the ``TypeError`` message, e.g. ``" of shape (n, d)"``.
    """
    if _is_tensor(value):
        check_real_finite(value, name)
        return value.detach().cpu().double().numpy()
    try:
        arr = np.asarray(value)
        if not np.iscomplexobj(arr):
            arr = arr.astype(np.float64, copy=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be a numeric array{shape_hint}: {exc}") from None
    check_real_finite(arr, name)
    return arr


def as_data_array(X: Any, name: str = "X", *, n_features: int | None = None) -> np.ndarray:
    """Validate a data matrix of shape ``(n, d)`` with finite entries; return it as float64.

    Torch tensors are accepted and moved to the host. ``n_features`` fixes ``d``.
    """
    arr = as_finite_array(X, name, shape_hint=" of shape (n, d)")
    if arr.ndim != 2:
        raise ValueError(f"{name} must have shape (n, d) (2 dimensions), got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name} must have at least one row and one column, got shape {arr.shape}")
    if n_features is not None and arr.shape[1] != n_features:
        raise ValueError(
            f"{name} must have {n_features} columns (the dimension d), got {arr.shape[1]}"
        )
    return arr


def as_seed_sequence(seed: Any, name: str = "seed") -> np.random.SeedSequence:
    """Turn any accepted seed into a :class:`numpy.random.SeedSequence`.

    Accepted: ``None`` (fresh entropy), a non-negative ``int``, a ``SeedSequence``
    (copied), a ``numpy.random.Generator`` (its bit generator's seed sequence) or a
    ``torch.Generator`` (its ``initial_seed()``). Independent streams are derived from the
    result with ``SeedSequence.spawn``, never by continuing one stream.
    """
    if seed is None:
        return np.random.SeedSequence()
    if isinstance(seed, np.random.SeedSequence):
        # a fresh copy: a seed's identity is (entropy, spawn_key), and consumers such as
        # scipy's QMC engines spawn from it, which would change the object passed in
        return np.random.SeedSequence(
            seed.entropy, spawn_key=seed.spawn_key, pool_size=seed.pool_size
        )
    if isinstance(seed, np.random.Generator):
        seq = seed.bit_generator.seed_seq
        if isinstance(seq, np.random.SeedSequence):
            return seq
        return np.random.SeedSequence(int(seed.integers(2**63)))
    if type(seed).__name__ == "Generator" and hasattr(seed, "initial_seed"):
        return np.random.SeedSequence(int(seed.initial_seed()))
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(
            f"{name} must be None, a non-negative int, a numpy SeedSequence/Generator or a "
            f"torch.Generator, got {type(seed).__name__}"
        )
    if seed < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {seed}")
    return np.random.SeedSequence(int(seed))


def spawn(seed: Any, n: int, name: str = "seed") -> list[np.random.SeedSequence]:
    """``n`` independent child seed sequences of ``seed`` (``SeedSequence.spawn``).

    The children depend only on the seed's entropy and spawn key, not on how many children
    were spawned from it before, so the same seed always yields the same children.
    """
    root = as_seed_sequence(seed, name)
    return [
        np.random.SeedSequence(
            root.entropy, spawn_key=(*root.spawn_key, i), pool_size=root.pool_size
        )
        for i in range(n)
    ]


F = TypeVar("F", bound=Callable[..., Any])

#: The release in which keywords deprecated by :func:`renamed_keywords` stop being accepted.
REMOVED_IN = "0.2"


def renamed_keywords(
    renames: Mapping[str, str], *, notes: Mapping[str, str] | None = None
) -> Callable[[F], F]:
    """Accept old keyword names for one release, with a ``DeprecationWarning`` naming the new.

    ``renames`` maps each old keyword to its new name; ``notes`` adds a sentence to the
    warning of an old keyword (e.g. that the value it took had another meaning). Passing an
    old and its new keyword together is a ``TypeError``. The wrapper keeps the function's
    signature (``inspect.signature`` shows the new names only) and lists the renames in its
    ``__renamed_keywords__`` attribute, which ``tests/test_names.py`` reads.

    Examples
    --------
    >>> import warnings
    >>> @renamed_keywords({"m": "n_features"})
    ... def count(*, n_features: int) -> int:
    ...     return n_features
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     count(m=3), str(caught[0].message).split(";")[0]
    (3, "count(): the keyword 'm' is deprecated")
    """
    renames = dict(renames)
    notes = dict(notes or {})
    unknown = set(notes) - set(renames)
    if unknown:
        raise ValueError(f"notes name keywords that are not renamed: {sorted(unknown)}")

    def decorate(func: F) -> F:
        params = inspect.signature(func).parameters
        for old, new in renames.items():
            if new not in params:
                raise ValueError(
                    f"{func.__qualname__} has no parameter {new!r} (new name of {old!r})"
                )
            if old in params:
                raise ValueError(f"{func.__qualname__} still has the old parameter {old!r}")

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            for old in renames.keys() & kwargs.keys():
                new = renames[old]
                if new in kwargs:
                    raise TypeError(
                        f"{func.__qualname__}() got {old}= and {new}=: pass only {new}= "
                        f"({old}= is its deprecated name)"
                    )
                note = f" {notes[old]}" if old in notes else ""
                warnings.warn(
                    f"{func.__qualname__}(): the keyword {old!r} is deprecated; pass "
                    f"{new}= instead ({old}= stops working in kernelapprox {REMOVED_IN}).{note}",
                    DeprecationWarning,
                    stacklevel=2,
                )
                kwargs[new] = kwargs.pop(old)
            return func(*args, **kwargs)

        wrapper.__renamed_keywords__ = dict(renames)  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate
