"""Samplers: frequencies for a kernel's spectral measure, with a replication axis.

``sample_frequencies(sampler, kernel, n_features, dim, seed=..., replications=R)`` returns
standardized frequencies ``(m, d)`` or ``(R, m, d)`` for the unit kernel, ``m = n_features``
(feature maps apply the kernel's input scale). Samplers by name:

==============  ==============================================================
``mc``          iid (Rahimi & Recht 2007)
``orthogonal``  Haar blocks with ``chi_d`` radii (Yu et al. 2016)
``sorf``        Hadamard-diagonal products ``sqrt(p) H D1 H D2 H D3`` (biased)
``sobol``       scrambled Sobol' (LMS + digital shift, scipy.stats.qmc)
``halton``      scrambled Halton (random permutations, scipy.stats.qmc)
``lattice``     rank-1 lattice (CBC generating vector) with a random shift
``spherical``   ``chi_d`` radius from one QMC coordinate, QMC/orthogonal directions
``simplex``     rotated regular-simplex blocks with ``chi_d`` radii (Reid et al. 2023)
``mub``         rotated mutually unbiased frames, stratified ``chi_d`` radii
==============  ==============================================================

Any :class:`scipy.stats.scipy_qmc.QMCEngine` instance is accepted as a sampler too, and
options can be given in a spec string ``name:option=value,...`` (:func:`from_spec`), e.g.
``"spherical:directions=orthogonal"``; wherever a sampler name is accepted
(:func:`make_sampler`, feature maps, :func:`sample_frequencies`), a spec string is too.
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
from scipy.stats import qmc as scipy_qmc

from kernelapprox._validation import SeedLike, check_choice, renamed_keywords
from kernelapprox.kernels import Kernel, SpectralMeasure
from kernelapprox.sampling._base import PointSetSampler, Sampler, reemit_once
from kernelapprox.sampling.mc import MonteCarlo
from kernelapprox.sampling.orthogonal import (
    Orthogonal,
    SORFBiasWarning,
    StructuredOrthogonal,
    haar_orthogonal,
)
from kernelapprox.sampling.qmc import (
    EngineSampler,
    Halton,
    Lattice,
    QMCBalanceWarning,
    Sobol,
    cbc_generating_vector,
)
from kernelapprox.sampling.simplex import Simplex, simplex_directions
from kernelapprox.sampling.spherical import Spherical
from kernelapprox.sampling.unbiased_bases import MutuallyUnbiased, unbiased_frames
from kernelapprox.sampling.weights import (
    box_weights,
    data_box_half_width,
    fitted_weights,
    uniform_weights,
)

SAMPLERS: dict[str, type[Sampler]] = {
    "mc": MonteCarlo,
    "orthogonal": Orthogonal,
    "sorf": StructuredOrthogonal,
    "sobol": Sobol,
    "halton": Halton,
    "lattice": Lattice,
    "spherical": Spherical,
    "simplex": Simplex,
    "mub": MutuallyUnbiased,
}


def make_sampler(sampler: str | Sampler | scipy_qmc.QMCEngine, **options: Any) -> Sampler:
    """A sampler from its name or spec string (:func:`from_spec`), a :class:`Sampler`, or a
    scipy ``QMCEngine`` (instance or class)."""
    if isinstance(sampler, Sampler):
        return sampler
    if isinstance(sampler, scipy_qmc.QMCEngine) or (
        isinstance(sampler, type) and issubclass(sampler, scipy_qmc.QMCEngine)
    ):
        return EngineSampler(sampler)
    if isinstance(sampler, str) and ":" in sampler:
        if options:
            raise ValueError(
                f"give sampler options either in the spec {sampler!r} or as keywords, not both"
            )
        return from_spec(sampler)
    check_choice(sampler, "sampler", SAMPLERS)
    return SAMPLERS[sampler](**options)


_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


def sampler_options(name: str) -> dict[str, Any]:
    """The keyword options of sampler ``name`` and their defaults."""
    check_choice(name, "sampler", SAMPLERS)
    signature = inspect.signature(SAMPLERS[name].__init__)
    return {
        p.name: p.default
        for p in signature.parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    }


def _option_value(text: str, key: str, raw: str, default: Any) -> Any:
    if isinstance(default, bool):
        word = raw.lower()
        if word not in _TRUE + _FALSE:
            raise ValueError(
                f"sampler spec {text!r}: option {key!r} must be true or false, got {raw!r}"
            )
        return word in _TRUE
    if isinstance(default, int | float):
        try:
            return type(default)(raw)
        except ValueError:
            raise ValueError(
                f"sampler spec {text!r}: option {key!r} must be a {type(default).__name__}, "
                f"got {raw!r}"
            ) from None
    return raw


def from_spec(text: str) -> Sampler:
    """A sampler from a spec string ``name[:option=value[,option=value...]]``.

    ``name`` is one of :data:`SAMPLERS`; the options are the sampler's keyword arguments
    (:func:`sampler_options`). Values are converted by the type of the default: booleans
    from ``true/false`` (also ``yes/no``, ``on/off``, ``1/0``), numbers from their digits;
    the rest stay strings, which the sampler checks (e.g. ``directions``, or ``points``,
    the name of a point set). Every mistake is a ``ValueError`` that names the bad part.

    Examples
    --------
    >>> from kernelapprox import sampling
    >>> sampling.from_spec("spherical:directions=orthogonal").directions
    'orthogonal'
    >>> sampling.from_spec("spherical:directions=orthogonal,points=halton").points.name
    'halton'
    >>> sampling.from_spec("sobol:scramble=false").scramble
    False
    >>> sampling.from_spec("sobol:scrambled=false")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: sampler spec ...: sampler 'sobol' has no option 'scrambled'; its options: scramble
    """
    if not isinstance(text, str):
        raise TypeError(f"a sampler spec must be a string, got {text!r}")
    name, _, rest = text.partition(":")
    name = name.strip()
    if name not in SAMPLERS:
        raise ValueError(
            f"sampler spec {text!r}: sampler must be one of {', '.join(map(repr, SAMPLERS))}; "
            f"got {name!r}"
        )
    allowed = sampler_options(name)
    options: dict[str, Any] = {}
    for item in rest.split(",") if rest.strip() else []:
        key, eq, raw = (part.strip() for part in item.partition("="))
        if not eq or not key or not raw:
            raise ValueError(f"sampler spec {text!r}: option {item.strip()!r} must be key=value")
        if key not in allowed:
            listed = ", ".join(allowed) if allowed else "none"
            raise ValueError(
                f"sampler spec {text!r}: sampler {name!r} has no option {key!r}; its options: "
                f"{listed}"
            )
        if key in options:
            raise ValueError(f"sampler spec {text!r}: option {key!r} is given twice")
        options[key] = _option_value(text, key, raw, allowed[key])
    try:
        return SAMPLERS[name](**options)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"sampler spec {text!r}: {exc}") from None


@renamed_keywords({"m": "n_features", "d": "dim"})
def sample_frequencies(
    sampler: str | Sampler | scipy_qmc.QMCEngine,
    kernel: Kernel | SpectralMeasure,
    n_features: int,
    dim: int,
    *,
    seed: SeedLike = None,
    replications: int | None = None,
) -> np.ndarray:
    """Standardized frequencies of the unit kernel: ``(n_features, dim)`` or
    ``(R, n_features, dim)``.

    The old keywords ``m=`` and ``d=`` still work until kernelapprox 0.2, with a
    ``DeprecationWarning``."""
    measure = kernel.spectral_measure if isinstance(kernel, Kernel) else kernel
    return make_sampler(sampler).frequencies(
        measure, n_features, dim, seed=seed, replications=replications
    )


__all__ = [
    "SAMPLERS",
    "EngineSampler",
    "Halton",
    "Lattice",
    "MonteCarlo",
    "MutuallyUnbiased",
    "Orthogonal",
    "PointSetSampler",
    "QMCBalanceWarning",
    "SORFBiasWarning",
    "Sampler",
    "Simplex",
    "Sobol",
    "Spherical",
    "StructuredOrthogonal",
    "box_weights",
    "cbc_generating_vector",
    "data_box_half_width",
    "fitted_weights",
    "from_spec",
    "haar_orthogonal",
    "make_sampler",
    "reemit_once",
    "sample_frequencies",
    "sampler_options",
    "simplex_directions",
    "unbiased_frames",
    "uniform_weights",
]
