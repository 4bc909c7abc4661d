"""Spherical-radial frequencies: ``w = r v`` with a QMC radius and QMC or orthogonal directions.

For ``w ~ N(0, I_d)``, ``r = |w| ~ chi_d`` and ``v = w / |w|`` is uniform on the sphere,
independent of ``r``. DiJiang's Theorem 3.2 (Chen et al., ICML 2024) needs exactly this
construction: radii through the ``chi_d`` inverse CDF of one uniform coordinate and
directions that are (asymptotically) uniformly distributed on the sphere.
"""

from __future__ import annotations

import numpy as np

from kernelapprox._validation import check_choice, spawn
from kernelapprox.kernels import SpectralMeasure, clip_uniform
from kernelapprox.sampling._base import PointSetSampler, Sampler
from kernelapprox.sampling.orthogonal import haar_orthogonal, stacked_blocks
from kernelapprox.sampling.qmc import Sobol


class Spherical(Sampler):
    """Spherical-radial sampler.

    Parameters
    ----------
    points : PointSetSampler or its name, default scrambled :class:`Sobol`
        The randomized point set; its first coordinate gives the radius
        ``r = F_{chi_d}^{-1}(u_0)``. A name is one of ``"mc"``, ``"sobol"``, ``"halton"``,
        ``"lattice"``.
    directions : {"qmc", "orthogonal"}
        ``"qmc"``: ``v = Phi^{-1}(u_{1:d}) / |Phi^{-1}(u_{1:d})|`` from the remaining ``d``
        coordinates of the same point set; ``"orthogonal"``: rows of independent Haar
        orthogonal blocks (exactly orthogonal within a block).
    """

    name = "spherical"
    needs_rotation_invariance = True

    def __init__(
        self, *, points: PointSetSampler | str | None = None, directions: str = "qmc"
    ) -> None:
        if isinstance(points, str):
            from kernelapprox.sampling import make_sampler

            points = make_sampler(points)
        if points is not None and not isinstance(points, PointSetSampler):
            raise ValueError(
                "points must be a point set ('mc', 'sobol', 'halton', 'lattice' or a "
                f"PointSetSampler), got {getattr(points, 'name', points)!r}"
            )
        self.points = points if points is not None else Sobol()
        self.directions = check_choice(directions, "directions", ("qmc", "orthogonal"))

    def _spec_default(self, option: str, default: object) -> object:
        return Sobol() if option == "points" else default

    def draw(
        self, measure: SpectralMeasure, n_features: int, dim: int, seed: np.random.SeedSequence
    ) -> np.ndarray:
        m, d = n_features, dim
        point_seed, direction_seed = spawn(seed, 2)
        if self.directions == "qmc":
            u = self.points.points(m, d + 1, point_seed)
            g = measure.ppf(u[:, 1:])
            v = g / np.linalg.norm(g, axis=1, keepdims=True)
        else:
            u = self.points.points(m, 1, point_seed)
            rng = np.random.default_rng(direction_seed)
            v = np.concatenate([haar_orthogonal(d, rng) for _ in range(stacked_blocks(m, d))])[:m]
        radii = measure.radial_ppf(clip_uniform(u[:, 0]), d)
        return radii[:, None] * v
