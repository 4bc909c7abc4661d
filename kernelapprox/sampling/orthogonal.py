"""Orthogonal and structured frequencies for rotation-invariant spectral measures.

Orthogonal Random Features (Yu, Suresh, Choromanski, Holtmann-Rice & Kumar, NIPS 2016):
``W = S Q`` with ``Q`` Haar-distributed orthogonal and ``S`` diagonal with iid ``chi_d``
radii; each row is exactly ``N(0, I_d)`` marginally, so the kernel estimate stays unbiased,
while the rows of one block are exactly orthogonal, which lowers the variance. For
``m > d`` independent blocks are stacked and the last one is truncated.

Structured ORF (SORF, same paper): ``W = sqrt(p) H D_1 H D_2 H D_3`` with ``H`` the
normalized Walsh-Hadamard matrix of size ``p = 2^ceil(log2 d)`` and ``D_i`` diagonal
Rademacher; inputs are zero-padded to ``p``. SORF is **biased** (:attr:`Sampler.unbiased` is
``False``): its rows have the fixed norm ``sqrt(p)`` instead of ``chi_d`` radii, and for small
``p`` the sign products reach only a few directions; the bias vanishes only as ``d`` grows
(see :class:`StructuredOrthogonal` for the measured error floors).
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.linalg import hadamard

from kernelapprox._validation import SeedLike, renamed_keywords
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


@renamed_keywords({"m": "n_features"})
def stacked_blocks(n_features: int, block: int) -> int:
    """Number of blocks of size ``block`` needed for ``n_features`` rows (frequencies)."""
    return -(-n_features // block)


class Orthogonal(Sampler):
    """Orthogonal random features: Haar blocks scaled by independent ``chi_d`` radii."""

    name = "orthogonal"
    needs_rotation_invariance = True

    def draw(
        self, measure: SpectralMeasure, n_features: int, dim: int, seed: np.random.SeedSequence
    ) -> np.ndarray:
        m, d = n_features, dim
        rng = np.random.default_rng(seed)
        blocks = []
        for _ in range(stacked_blocks(m, d)):
            Q = haar_orthogonal(d, rng)
            radii = measure.radial_ppf(rng.random(d), d)
            blocks.append(radii[:, None] * Q)
        return np.concatenate(blocks)[:m]


class SORFBiasWarning(UserWarning):
    """SORF frequencies are biased at this dimension: the Gram error stops falling with ``m``."""


#: SORF warns (:class:`SORFBiasWarning`) when the input dimension is at most this.
SORF_WARN_MAX_DIM = 32

#: Measured error floors of SORF (see :class:`StructuredOrthogonal`), by input dimension.
SORF_ERROR_FLOORS = {2: 0.2685, 4: 0.0953, 8: 0.0395, 16: 0.0175, 32: 0.0083, 64: 0.0040}


class StructuredOrthogonal(Sampler):
    """SORF: ``sqrt(p) H D_1 H D_2 H D_3`` blocks, first ``d`` columns (zero-padded input).

    **Biased.** Every row has norm ``sqrt(p)`` (for ``d = p``) where an unbiased sampler has
    ``chi_d`` radii, and the ``2^{3p}`` sign patterns reach few directions when ``p`` is
    small: at ``d = 2`` there are exactly 4 frequencies ``(+-1, +-1)``, every block holds
    ``+-(1, 1)`` and ``+-(1, -1)``, so for an even ``m`` the ``sincos`` estimate is the
    deterministic kernel ``cos(u_1 - v_1) cos(u_2 - v_2)`` for every seed. The Gram error
    therefore reaches a floor ``|E K_hat - K|_F / |K|_F`` that no number of frequencies
    removes. Floors on 200 points of ``N(0, I_d)`` (seed 0), Gaussian kernel with the median
    length scale, ``sincos`` map: exact at ``d = 2`` (the closed form above) and ``d = 4``
    (the expectation over all ``2^12`` sign patterns, which give 24 distinct frequencies);
    for ``d >= 8`` measured from the mean Gram matrix of 40 replications of ``m = 4096``
    frequencies, its noise (``+-0.0005``) subtracted in quadrature. MC's *total* error at
    ``m = 4096`` is 0.010-0.012 for every ``d``:

    =====  ======  ======  ======  ======  ======  ======
    d      2       4       8       16      32      64
    floor  0.2685  0.0953  0.0395  0.0175  0.0083  0.0040
    =====  ======  ======  ======  ======  ======  ======

    The floor falls roughly like ``1/d``. Drawing frequencies for ``d <=``
    :data:`SORF_WARN_MAX_DIM` emits one :class:`SORFBiasWarning` per sampler object.
    """

    name = "sorf"
    needs_rotation_invariance = True
    unbiased = False

    def __init__(self) -> None:
        self._warned = False

    @renamed_keywords({"m": "n_features", "d": "dim"})
    def frequencies(
        self,
        measure: SpectralMeasure,
        n_features: int,
        dim: int,
        *,
        seed: SeedLike = None,
        replications: int | None = None,
    ) -> np.ndarray:
        W = super().frequencies(measure, n_features, dim, seed=seed, replications=replications)
        d = dim
        if d <= SORF_WARN_MAX_DIM and not self._warned:
            self._warned = True
            floor = SORF_ERROR_FLOORS.get(d)
            measured = "" if floor is None else f" (measured floor at d={d}: {floor})"
            warnings.warn(
                f"SORF is biased at d={d}: its rows have the fixed norm sqrt(p) and few "
                "distinct directions, so the relative Gram error stops falling with n_features "
                f"at a floor{measured}; see StructuredOrthogonal. Use 'orthogonal' for an "
                "unbiased estimate",
                SORFBiasWarning,
                stacklevel=3,  # past the renamed_keywords wrapper
            )
        return W

    def draw(
        self, measure: SpectralMeasure, n_features: int, dim: int, seed: np.random.SeedSequence
    ) -> np.ndarray:
        m, d = n_features, dim
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
