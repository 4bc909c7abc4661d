"""Simplex random features: block directions at the vertices of a rotated regular simplex.

Reid, Choromanski, Likhosherstov & Weller, "Simplex Random Features", ICML 2023
(arXiv 2301.13856): within a block of ``d`` frequencies, ``w_i = r_i R^T s_i`` with
``s_1..s_d`` unit vectors whose pairwise inner products are all ``-1/(d - 1)`` (the
vertices of a regular simplex, centred at the origin, spanning a ``(d-1)``-dimensional
subspace), ``R`` a Haar-random rotation and ``r_i`` i.i.d. ``chi_d`` radii. Each ``R^T s_i``
is uniform on the sphere, so each ``w_i ~ N(0, I_d)`` marginally and every unbiased map
stays unbiased; the directions of a block are more spread out than orthogonal ones (the
most negative equal inner product ``d`` unit vectors can have), which Reid et al. show
lowers the mean squared error of positive random features below ORF's. For ``m > d``,
independent blocks are stacked and the last one truncated.

The vertices used here are ``s_i = sqrt(d / (d - 1)) (e_i - 1/d)``, the centred standard
basis: ``|s_i| = 1`` and ``s_i . s_j = -1/(d - 1)``; any other regular simplex is a rotation
of it, which the Haar ``R`` absorbs. For ``d = 1`` the single direction is ``+-1`` with a
random sign (the Haar law on ``O(1)``), i.e. Monte Carlo.
"""

from __future__ import annotations

import numpy as np

from kernelapprox.kernels import SpectralMeasure
from kernelapprox.sampling._base import Sampler
from kernelapprox.sampling.orthogonal import haar_orthogonal, stacked_blocks


def simplex_directions(d: int) -> np.ndarray:
    """The ``d`` vertices of a regular simplex centred at the origin, as unit rows ``(d, d)``.

    ``S = sqrt(d / (d - 1)) (I - 11^T / d)``, so ``S S^T = (d I - 11^T) / (d - 1)``: unit
    rows with pairwise inner products ``-1/(d - 1)``. ``d = 1`` gives ``[[1]]``.
    """
    if d == 1:
        return np.ones((1, 1))
    return np.sqrt(d / (d - 1.0)) * (np.eye(d) - 1.0 / d)


class Simplex(Sampler):
    """Simplex random features (SimRFs): rotated simplex directions with ``chi_d`` radii."""

    name = "simplex"
    needs_rotation_invariance = True

    def draw(
        self, measure: SpectralMeasure, n_features: int, dim: int, seed: np.random.SeedSequence
    ) -> np.ndarray:
        m, d = n_features, dim
        rng = np.random.default_rng(seed)
        S = simplex_directions(d)
        blocks = []
        for _ in range(stacked_blocks(m, d)):
            R = haar_orthogonal(d, rng)
            radii = measure.radial_ppf(rng.random(d), d)
            blocks.append(radii[:, None] * (S @ R))
        return np.concatenate(blocks)[:m]
