"""Hypothesis strategies for kernel, feature-map and attention tests.

Every strategy shrinks towards small, simple cases (few rows, low dimension, short sequences)
and draws randomness through hypothesis (never from a global random state), so a failure
replays exactly.

==========================  ================================================================
:func:`data_matrices`        finite float64 matrices ``(n, d)`` with row norms ``<= max_norm``
:func:`data_pairs`           ``(X, Y)`` with the same ``d``
:func:`kernels`              :mod:`kernelapprox.kernels` instances with moderate parameters
:func:`feature_map_configs`  valid (map, kernel, sampler, weights) combinations
:func:`attention_shapes`     ``(B, T, H, D)`` with awkward sizes (1, primes, 2^k +- 1)
:func:`attention_inputs`     ``(q, k, v)`` torch tensors of such a shape
==========================  ================================================================

Examples
--------
>>> from hypothesis import given, settings
>>> from kernelapprox.testing import assert_psd_gram, strategies
>>> @settings(max_examples=5)
... @given(X=strategies.data_matrices(max_rows=6), kernel=strategies.kernels())
... def test_exact_grams_are_psd(X, kernel):
...     assert_psd_gram(kernel, X)
>>> test_exact_grams_are_psd()
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from kernelapprox import features
from kernelapprox import kernels as _kernels
from kernelapprox._validation import check_positive_float, check_positive_int
from kernelapprox.sampling import SAMPLERS

__all__ = [
    "AWKWARD_SIZES",
    "FeatureMapConfig",
    "attention_inputs",
    "attention_shapes",
    "data_matrices",
    "data_pairs",
    "feature_map_configs",
    "kernels",
]

#: Sizes that break assumptions: 1, primes, and one either side of powers of two and of
#: typical chunk sizes (16, 64).
AWKWARD_SIZES = (1, 2, 3, 5, 7, 13, 15, 16, 17, 31, 33, 63, 64, 65)

#: Samplers whose every frequency is marginally exactly the spectral measure, so maps that are
#: unbiased under Monte Carlo stay unbiased (randomized QMC included); SORF is not. Each
#: sampler says so itself (``Sampler.unbiased``).
UNBIASED_SAMPLERS = tuple(name for name, cls in SAMPLERS.items() if cls.unbiased)


@st.composite
def data_matrices(
    draw: st.DrawFn,
    *,
    min_rows: int = 1,
    max_rows: int = 8,
    dim: int | st.SearchStrategy[int] | None = None,
    max_dim: int = 6,
    max_norm: float = 1.0,
) -> np.ndarray:
    """Finite float64 data matrices ``(n, d)`` whose rows have Euclidean norm ``<= max_norm``.

    Entries are drawn in ``[-1, 1]`` (no NaN, infinity or subnormal numbers) and rows longer
    than ``max_norm`` are scaled back onto that sphere, so exponential kernels stay in range.

    Parameters
    ----------
    min_rows, max_rows : int
        Range of ``n``.
    dim : int or strategy, optional
        The dimension ``d``, or a strategy for it; default ``integers(1, max_dim)``.
    max_dim : int, default 6
        Largest ``d`` when ``dim`` is not given.
    max_norm : float, default 1.0
        Bound on the row norms.
    """
    min_rows = check_positive_int(min_rows, "min_rows")
    max_rows = check_positive_int(max_rows, "max_rows", minimum=min_rows)
    max_norm = check_positive_float(max_norm, "max_norm")
    if dim is None:
        d = draw(st.integers(1, check_positive_int(max_dim, "max_dim")))
    elif isinstance(dim, st.SearchStrategy):
        d = draw(dim)
    else:
        d = check_positive_int(dim, "dim")
    n = draw(st.integers(min_rows, max_rows))
    elements = st.floats(-1.0, 1.0, allow_nan=False, allow_infinity=False, allow_subnormal=False)
    X = draw(arrays(np.float64, (n, d), elements=elements))
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    shrink = np.where(norms > max_norm, max_norm / np.where(norms > 0, norms, 1.0), 1.0)
    return X * shrink


@st.composite
def data_pairs(draw: st.DrawFn, *, max_dim: int = 6, **options: Any) -> tuple[np.ndarray, ...]:
    """``(X, Y)``: two :func:`data_matrices` of the same dimension (options passed on)."""
    d = draw(st.integers(1, check_positive_int(max_dim, "max_dim")))
    return draw(data_matrices(dim=d, **options)), draw(data_matrices(dim=d, **options))


def kernels(
    families: tuple[str, ...] = ("gaussian", "laplacian", "softmax"),
) -> st.SearchStrategy[_kernels.Kernel]:
    """Kernels of the named families with moderate parameters.

    Length scales in ``[0.5, 4]`` (Gaussian, Laplacian) and softmax scales in ``[0.05, 1]``
    (``1/sqrt(head_dim)`` for head dims from 1 to 400), so that inputs of norm ``<= 1`` give
    kernel values far from under- and overflow.
    """
    options = []
    for name in families:
        if name not in _kernels.KERNELS:
            raise ValueError(
                f"families must name kernels in {sorted(_kernels.KERNELS)}; got {name!r}"
            )
        if name == "softmax":
            options.append(st.floats(0.05, 1.0).map(lambda s: _kernels.Softmax(scale=s)))
        else:
            cls = _kernels.KERNELS[name]
            options.append(st.floats(0.5, 4.0).map(lambda ls, cls=cls: cls(length_scale=ls)))
    if not options:
        raise ValueError("families must name at least one kernel")
    return st.one_of(options)


@dataclass(frozen=True)
class FeatureMapConfig:
    """A valid feature-map configuration; :meth:`make` builds the map for a seed.

    Attributes
    ----------
    map : str
        Name in :data:`kernelapprox.features.MAPS`.
    kernel : Kernel
        The target kernel.
    sampler : str
        Sampler name (:data:`kernelapprox.sampling.SAMPLERS`).
    weights : str
        ``"uniform"`` or ``"box"``.
    n_features : int
        Number of frequencies.
    dim : int
        Input dimension.
    """

    map: str
    kernel: _kernels.Kernel
    sampler: str
    weights: str
    n_features: int
    dim: int

    @property
    def unbiased(self) -> bool:
        """Whether ``E[phi(x) . phi(y)] = k(x, y)`` exactly for this configuration."""
        return (
            features.MAPS[self.map].unbiased
            and self.sampler in UNBIASED_SAMPLERS
            and self.weights == "uniform"
        )

    def make(self, seed: Any) -> features.FeatureMap:
        """The feature map drawn with ``seed`` (QMC balance warnings silenced)."""
        import warnings

        from kernelapprox.sampling import QMCBalanceWarning

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", QMCBalanceWarning)
            return features.make(
                self.map,
                self.kernel,
                self.n_features,
                dim=self.dim,
                sampler=self.sampler,
                weights=self.weights,
                seed=seed,
            )


@st.composite
def feature_map_configs(
    draw: st.DrawFn,
    *,
    maps: tuple[str, ...] | None = None,
    kernel_families: tuple[str, ...] = ("gaussian", "laplacian", "softmax"),
    samplers: tuple[str, ...] | None = None,
    weights: tuple[str, ...] = ("uniform",),
    n_features: st.SearchStrategy[int] | None = None,
    dim: st.SearchStrategy[int] | None = None,
    unbiased_only: bool = False,
) -> FeatureMapConfig:
    """Valid (map, kernel, sampler, weights) combinations with small sizes.

    Only combinations that :func:`kernelapprox.features.incompatibility` accepts (the
    single source of the compatibility rules the study uses) are drawn; ``unbiased_only``
    further keeps the configurations whose estimate is exactly unbiased
    (:attr:`FeatureMapConfig.unbiased`).

    Parameters
    ----------
    maps, samplers : tuple of str, optional
        Candidate names (default: all).
    kernel_families : tuple of str
        Candidate kernel families (see :func:`kernels`).
    weights : tuple of str, default ("uniform",)
        Candidate weights (``"uniform"``, ``"box"``).
    n_features, dim : strategy of int, optional
        Defaults: ``sampled_from((1, 2, 3, 4, 8, 16))`` and ``integers(1, 5)``.
    unbiased_only : bool, default False
        Only configurations with an exactly unbiased estimate.
    """
    from kernelapprox.features import incompatibility
    from kernelapprox.sampling import SAMPLERS

    map_names = tuple(features.MAPS) if maps is None else tuple(maps)
    sampler_names = tuple(SAMPLERS) if samplers is None else tuple(samplers)
    combos = [
        (m, k, s, w)
        for m in map_names
        for k in kernel_families
        for s in sampler_names
        for w in weights
        if not incompatibility(k, m, s, w)
        and (
            not unbiased_only
            or (features.MAPS[m].unbiased and s in UNBIASED_SAMPLERS and w == "uniform")
        )
    ]
    if not combos:
        raise ValueError("no valid feature-map configuration among the given names")
    map_name, family, sampler, weight = draw(st.sampled_from(combos))
    kernel = draw(kernels((family,)))
    m = draw(n_features if n_features is not None else st.sampled_from((1, 2, 3, 4, 8, 16)))
    d = draw(dim if dim is not None else st.integers(1, 5))
    return FeatureMapConfig(map_name, kernel, sampler, weight, m, d)


@st.composite
def attention_shapes(
    draw: st.DrawFn,
    *,
    max_batch: int = 3,
    max_tokens: int = 65,
    max_heads: int = 3,
    max_head_dim: int = 33,
    min_tokens: int = 1,
) -> tuple[int, int, int, int]:
    """``(B, T, H, D)`` with awkward sizes: half the time from :data:`AWKWARD_SIZES`.

    Parameters
    ----------
    max_batch, max_tokens, max_heads, max_head_dim : int
        Upper bounds of ``B``, ``T``, ``H``, ``D``.
    min_tokens : int, default 1
        Lower bound of ``T`` (2 for causality and resumability checks).
    """

    def size(low: int, high: int) -> st.SearchStrategy[int]:
        awkward = [s for s in AWKWARD_SIZES if low <= s <= high]
        plain = st.integers(low, high)
        return st.one_of(st.sampled_from(awkward), plain) if awkward else plain

    B = draw(size(1, check_positive_int(max_batch, "max_batch")))
    T = draw(
        size(
            check_positive_int(min_tokens, "min_tokens"),
            check_positive_int(max_tokens, "max_tokens", minimum=min_tokens),
        )
    )
    H = draw(size(1, check_positive_int(max_heads, "max_heads")))
    D = draw(size(1, check_positive_int(max_head_dim, "max_head_dim")))
    return B, T, H, D


@st.composite
def attention_inputs(
    draw: st.DrawFn,
    *,
    shapes: st.SearchStrategy[tuple[int, int, int, int]] | None = None,
    dtype: Any = None,
    value_dim: int | None = None,
    scale: float = 1.0,
) -> tuple[Any, Any, Any]:
    """``(q, k, v)`` torch tensors of a drawn ``(B, T, H, D)`` shape, entries ``N(0, scale^2)``.

    The values come from a ``torch.Generator`` seeded by hypothesis, so examples replay.
    ``v`` has head dim ``value_dim`` (default ``D``); ``dtype`` defaults to float64.
    """
    import torch

    B, T, H, D = draw(shapes if shapes is not None else attention_shapes())
    dtype = torch.float64 if dtype is None else dtype
    scale = check_positive_float(scale, "scale")
    Dv = D if value_dim is None else check_positive_int(value_dim, "value_dim")
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**32 - 1)))
    q, k = (torch.randn(B, T, H, D, generator=gen, dtype=torch.float64) * scale for _ in "qk")
    v = torch.randn(B, T, H, Dv, generator=gen, dtype=torch.float64) * scale
    return q.to(dtype), k.to(dtype), v.to(dtype)
