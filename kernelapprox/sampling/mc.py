"""Plain Monte Carlo: independent uniform points, hence iid frequencies."""

from __future__ import annotations

import numpy as np

from kernelapprox.sampling._base import PointSetSampler


class MonteCarlo(PointSetSampler):
    """iid frequencies ``w_i ~ p`` (Rahimi & Recht, NIPS 2007): uniform points through ``F^{-1}``.

    The error of an average of ``m`` iid features decays like ``m^{-1/2}``.
    """

    name = "mc"

    def points(self, n: int, d: int, seed: np.random.SeedSequence) -> np.ndarray:
        return np.random.default_rng(seed).random((n, d))
