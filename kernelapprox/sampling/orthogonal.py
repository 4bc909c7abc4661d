"""Orthogonal and structured frequencies for rotation-invariant spectral measures.

Orthogonal Random Features (Yu, Suresh, Choromanski, Holtmann-Rice & Kumar, NIPS 2016):
``W = S Q`` with ``Q`` Haar-distributed orthogonal and ``S`` diagonal with iid ``chi_d``
radii; each row is exactly ``N(0, I_d)`` marginally, so the kernel estimate stays unbiased,
while the rows of one block are exactly orthogonal, which lowers the variance. For
``m > d`` independent blocks are stacked and the last one is truncated.

Structured ORF (SORF, same paper): ``W = sqrt(p) H D_1 H D_2 H D_3`` with ``H`` the
normalized Walsh-Hadamard matrix of size ``p = 2^ceil(log2 d)`` and ``D_i`` diagonal
Rademacher; inputs are zero-padded to ``p``. SORF is only asymptotically unbiased.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import hadamard

from kernelapprox.kernels import SpectralMeasure
from kernelapprox.sampling._base import Sampler


def haar_orthogonal(d: int, rng: np.random.Generator) -> np.ndarray:
    """A Haar-uniform ``d x d`` orthogonal matrix: QR of a Gaussian matrix with the sign fix.

    Multiplying the columns of ``Q`` by ``sign(diag(R))`` makes the factorization unique and
    the law of ``Q`` exactly Haar (Mezzadri, Notices AMS 2007).
    """
    G = rng.standard_normal((d, d))
    Q, R = np.linalg.qr(G)
    signs = np.sign(np.diag(R))
    signs[signs == 0] = 1.0
    return Q * signs


def stacked_blocks(m: int, block: int) -> int:
    """Number of blocks of size ``block`` needed for ``m`` rows."""
    return -(-m // block)


class Orthogonal(Sampler):
    """Orthogonal random features: Haar blocks scaled by independent ``chi_d`` radii."""

    name = "orthogonal"
    needs_rotation_invariance = True

    def draw(
        self, measure: SpectralMeasure, m: int, d: int, seed: np.random.SeedSequence
    ) -> np.ndarray:
        rng = np.random.default_rng(seed)
        blocks = []
        for _ in range(stacked_blocks(m, d)):
            Q = haar_orthogonal(d, rng)
            radii = measure.radial_ppf(rng.random(d), d)
            blocks.append(radii[:, None] * Q)
        return np.concatenate(blocks)[:m]


class StructuredOrthogonal(Sampler):
    """SORF: ``sqrt(p) H D_1 H D_2 H D_3`` blocks, first ``d`` columns (zero-padded input)."""

    name = "sorf"
    needs_rotation_invariance = True

    def draw(
        self, measure: SpectralMeasure, m: int, d: int, seed: np.random.SeedSequence
    ) -> np.ndarray:
        rng = np.random.default_rng(seed)
        p = 1 << max(0, (d - 1).bit_length())
        H = hadamard(p).astype(np.float64) / np.sqrt(p)
        blocks = []
        for _ in range(stacked_blocks(m, p)):
            M = np.sqrt(p) * np.eye(p)
            for _ in range(3):
                M = M @ H * rng.choice([-1.0, 1.0], size=p)
            blocks.append(M[:, :d])
        return np.concatenate(blocks)[:m]
