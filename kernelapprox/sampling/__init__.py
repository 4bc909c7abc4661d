"""Samplers: frequencies for a kernel's spectral measure, with a replication axis.

``sample_frequencies(sampler, kernel, m, d, seed=..., replications=R)`` returns standardized
frequencies ``(m, d)`` or ``(R, m, d)`` for the unit kernel (feature maps apply the kernel's
input scale). Samplers by name:

==============  ==============================================================
``mc``          iid (Rahimi & Recht 2007)
``orthogonal``  Haar blocks with ``chi_d`` radii (Yu et al. 2016)
``sorf``        Hadamard-diagonal products ``sqrt(p) H D1 H D2 H D3`` (biased)
``sobol``       scrambled Sobol' (LMS + digital shift, scipy.stats.qmc)
``halton``      scrambled Halton (random permutations, scipy.stats.qmc)
``lattice``     rank-1 lattice (CBC generating vector) with a random shift
``spherical``   ``chi_d`` radius from one QMC coordinate, QMC/orthogonal directions
==============  ==============================================================

Any :class:`scipy.stats.scipy_qmc.QMCEngine` instance is accepted as a sampler too.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.stats import qmc as scipy_qmc

from kernelapprox._validation import check_choice
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
from kernelapprox.sampling.spherical import Spherical
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
}


def make_sampler(sampler: str | Sampler | scipy_qmc.QMCEngine, **options: Any) -> Sampler:
    """A sampler from its name, a :class:`Sampler`, or a scipy ``QMCEngine`` (instance or class)."""
    if isinstance(sampler, Sampler):
        return sampler
    if isinstance(sampler, scipy_qmc.QMCEngine) or (
        isinstance(sampler, type) and issubclass(sampler, scipy_qmc.QMCEngine)
    ):
        return EngineSampler(sampler)
    check_choice(sampler, "sampler", SAMPLERS)
    return SAMPLERS[sampler](**options)


def sample_frequencies(
    sampler: str | Sampler | scipy_qmc.QMCEngine,
    kernel: Kernel | SpectralMeasure,
    m: int,
    d: int,
    *,
    seed: Any = None,
    replications: int | None = None,
) -> np.ndarray:
    """Standardized frequencies of the unit kernel: ``(m, d)`` or ``(R, m, d)``."""
    measure = kernel.spectral_measure if isinstance(kernel, Kernel) else kernel
    return make_sampler(sampler).frequencies(measure, m, d, seed=seed, replications=replications)


__all__ = [
    "SAMPLERS",
    "EngineSampler",
    "Halton",
    "Lattice",
    "MonteCarlo",
    "Orthogonal",
    "PointSetSampler",
    "QMCBalanceWarning",
    "SORFBiasWarning",
    "Sampler",
    "Sobol",
    "Spherical",
    "StructuredOrthogonal",
    "box_weights",
    "cbc_generating_vector",
    "data_box_half_width",
    "fitted_weights",
    "haar_orthogonal",
    "make_sampler",
    "reemit_once",
    "sample_frequencies",
    "uniform_weights",
]
