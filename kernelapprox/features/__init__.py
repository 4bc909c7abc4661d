"""Feature maps ``phi`` with ``phi(x) . phi(y) ~ k(x, y)``: one torch implementation each.

==================  ==================================================  ==========  ========
name                per-frequency block ``g_i(u)``                       targets     unbiased
==================  ==================================================  ==========  ========
``sincos``          ``[cos w.u, sin w.u]``                               G, L, S     yes
``cos_offset``      ``sqrt(2) cos(w.u + b)`` (sklearn ``RBFSampler``)     G, L, S     yes
``fourier``         ``exp(-i w.u)`` (complex)                            G, L, S     yes
``positive``        ``exp(w.u - |u|^2/2)`` (FAVOR+)                      S, G        yes
``hyperbolic``      ``exp(-|u|^2/2) [e^{w.u}, e^{-w.u}] / sqrt 2``       S, G        yes
``dct``             DiJiang paper: DCT directions, ``chi_d`` radii        G, S        limit
``dct_released``    DiJiang code: ``softmax(x C diag(t))``                S (rows)    no
==================  ==================================================  ==========  ========

G: Gaussian, L: Laplacian, S: softmax. Softmax targets of trigonometric maps and Gaussian
targets of exponential maps go through the relation
``exp(-|u-v|^2/2) = exp(-|u|^2/2) exp(-|v|^2/2) exp(u.v)``.
"""

from __future__ import annotations

from typing import Any

# The import order is the registry's order (the order of choices on the command line and in
# the docs): trigonometric maps, then exponential ones, then DiJiang's.
from kernelapprox.features.trigonometric import CosOffset, Fourier, SinCos  # isort: skip
from kernelapprox.features.exponential import Hyperbolic, Positive  # isort: skip
from kernelapprox.features.dct import (  # isort: skip
    DCT,
    DCTReleased,
    dct2_ortho,
    dct3_ortho,
    dct_matrix,
)
from kernelapprox._validation import SeedLike, check_choice
from kernelapprox.features._base import REGISTRY, FeatureMap, check_weights
from kernelapprox.kernels import KERNELS, Kernel, make_kernel
from kernelapprox.sampling import PointSetSampler, make_sampler

#: Every registered feature map by name: each class defined with ``register=True``
#: (:meth:`FeatureMap.__init_subclass__`), so adding a map is one class.
MAPS: dict[str, type[FeatureMap]] = REGISTRY


def make(
    name: str,
    kernel: Kernel | str,
    n_features: int,
    *,
    dim: int,
    sampler: Any = "mc",
    weights: Any = "uniform",
    seed: SeedLike = None,
    **options: Any,
) -> FeatureMap:
    """A feature map by name, for ``kernel``, with ``n_features`` frequencies in dimension ``dim``.

    The map has ``output_dim = n_features * components`` output columns (2 per frequency
    for ``sincos`` and ``hyperbolic``).

    Examples
    --------
    >>> import numpy as np
    >>> from kernelapprox import features, kernels
    >>> X = np.random.default_rng(0).normal(size=(5, 3))
    >>> phi = features.make("sincos", kernels.Gaussian(2.0), 4096, dim=3, sampler="sobol", seed=0)
    >>> phi(X).shape
    (5, 8192)
    >>> bool(np.abs(phi.gram(X) - kernels.Gaussian(2.0)(X)).max() < 0.01)
    True
    """
    check_choice(name, "map", MAPS)
    kernel = make_kernel(kernel)
    return MAPS[name](
        kernel, n_features, dim=dim, sampler=sampler, weights=weights, seed=seed, **options
    )


def incompatibility(kernel: str, map_name: str, sampler: str, weights: str = "uniform") -> str:
    """Why a (kernel, map, sampler, weights) combination of registry names cannot run, or ``""``.

    Used to skip combinations in sweeps and to generate only valid ones in property tests.
    """
    cls = MAPS[map_name]
    unit = KERNELS[kernel].unit
    if unit not in cls.supported_kernels:
        return f"map {map_name!r} cannot target the {kernel} kernel"
    measure = KERNELS[kernel].spectral_measure
    s = make_sampler(sampler)
    if s.needs_rotation_invariance and not measure.rotation_invariant:
        return (
            f"sampler {sampler!r} needs a rotation-invariant spectral measure ({kernel} has none)"
        )
    if weights == "box" and measure.family != "normal":
        return f"box weights need the normal spectral measure ({kernel}: no)"
    if cls.needs_point_set and not isinstance(s, PointSetSampler):
        return f"map {map_name!r} draws radii from a point set; sampler {sampler!r} is not one"
    return ""


from kernelapprox.features.sklearn import RandomFeatures  # noqa: E402  (needs make)

__all__ = [
    "DCT",
    "MAPS",
    "CosOffset",
    "DCTReleased",
    "FeatureMap",
    "Fourier",
    "Hyperbolic",
    "Positive",
    "RandomFeatures",
    "SinCos",
    "check_weights",
    "dct2_ortho",
    "dct3_ortho",
    "dct_matrix",
    "incompatibility",
    "make",
]
