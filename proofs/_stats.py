"""Random inputs for the numerical claims: uniform directions on the sphere.

The claims' statistics (mean and variance with their standard errors, log-log rate fits) are
the package's own, :mod:`kernelapprox.estimators.replications` and
:mod:`kernelapprox.estimators.rates`; every tolerance is a multiple of such a standard error,
computed from independent replications (``SeedSequence.spawn``), never from the spread inside
one point set.
"""

from __future__ import annotations

import numpy as np


def uniform_directions(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    """``n`` iid directions uniform on the unit sphere ``S^{d-1}`` (normalised Gaussians)."""
    g = rng.standard_normal((n, d))
    return g / np.linalg.norm(g, axis=1, keepdims=True)
