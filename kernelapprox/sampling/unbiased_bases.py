r"""Randomly rotated mutually unbiased bases with stratified ``chi_d`` radii.

Orthogonal random features (:class:`~kernelapprox.sampling.Orthogonal`) use independent
Haar frames: each frame is orthonormal, which removes the degree-2 part of the direction
error exactly (``sum_i (q_i . x)^2 = |x|^2`` for every ``x``), but the frames are
independent of each other. Here the frames are *mutually unbiased*: every direction of one
frame has inner product exactly ``+-1/sqrt(d)`` with every direction of another, the
smallest possible largest inner product between two orthonormal bases, so the union of the
frames spreads over the sphere more evenly than independent frames do (a smaller
degree-4 frame potential ``sum_ij (v_i . v_j)^4``). One Haar rotation ``R`` per group of
frames keeps the law of every single direction uniform on the sphere, and the radii are
``chi_d`` quantiles of a stratified sample (``u_i = (pi(i) + U_i) / m``, ``pi`` a random
permutation): every frequency is exactly ``N(0, I_d)``, so unbiased maps stay unbiased.

Construction (Calderbank, Cameron, Kantor & Seidel, Proc. London Math. Soc. 1997, real
mutually unbiased bases from quadratic forms): for ``d = 2^k`` with ``k`` even (``d`` a
power of 4) and a binary alternating ``k x k`` matrix ``S``, the frame
``B_S = H diag((-1)^{Q_S(x)}) / sqrt(d)``, ``H_{bx} = (-1)^{b . x}`` (Sylvester Hadamard),
``Q_S(x) = sum_{i<j} S_ij x_i x_j``, is orthonormal, and ``|<B_S row, B_T row>| =
1/sqrt(d)`` whenever ``S + T`` is non-singular over GF(2). A fixed greedy search (seeded)
picks alternating matrices with pairwise non-singular differences; the standard basis is
unbiased to every ``B_S`` and comes first. When ``m`` needs more frames than the set has,
further groups reuse it under independent rotations. For ``d`` not a power of 4 the frames
are independent Haar frames (the ORF law) with the same stratified radii.

``antithetic=True`` draws each frequency with its negative (same radius): for maps whose
per-frequency term is not even in ``w`` (``positive``), this cancels every odd-degree part of
the direction error; for ``sincos``/``fourier``, whose terms are even, it only halves the
number of distinct frequencies, so it is off by default.

"""

from __future__ import annotations

import functools

import numpy as np
from scipy.linalg import hadamard

from kernelapprox._validation import check_bool, check_choice
from kernelapprox.kernels import SpectralMeasure
from kernelapprox.sampling._base import Sampler
from kernelapprox.sampling.orthogonal import haar_orthogonal

#: Most frames in one group (the standard basis included) when ``d > 64``; up to ``d = 64``
#: the complete set of ``d/2 + 1`` real mutually unbiased bases is used.
MAX_FRAMES = 17
#: Candidate alternating matrices tried by the greedy search when they are too many to list.
SEARCH_BUDGET = 4000


def is_power_of_four(d: int) -> bool:
    """Whether ``d = 4^j`` for some ``j >= 1``."""
    return d >= 4 and d & (d - 1) == 0 and (d.bit_length() - 1) % 2 == 0


def gf2_rank(rows: list[int]) -> int:
    """Rank over GF(2) of a matrix given as integer bit masks, one per row."""
    rows = list(rows)
    rank = 0
    while rows:
        pivot = rows.pop()
        if pivot == 0:
            continue
        rank += 1
        low = pivot & -pivot
        rows = [r ^ pivot if r & low else r for r in rows]
    return rank


def alternating_rows(bits: int, k: int) -> list[int]:
    """The binary alternating (symmetric, zero-diagonal) ``k x k`` matrix whose upper
    triangle, read row by row, is the bit string ``bits``; rows as bit masks."""
    rows = [0] * k
    index = 0
    for i in range(k):
        for j in range(i + 1, k):
            if bits >> index & 1:
                rows[i] |= 1 << j
                rows[j] |= 1 << i
            index += 1
    return rows


def unbiased_alternating_set(k: int, size: int, *, restarts: int = 2000) -> list[int]:
    """Alternating ``k x k`` matrices (as upper-triangle bit strings), the zero matrix first,
    whose pairwise sums are non-singular over GF(2); ``size`` of them when found.

    Randomized greedy with seeded restarts: add a random candidate compatible with every
    chosen matrix, drop the candidates it excludes, repeat; keep the largest set. Candidates
    are every non-singular alternating matrix when ``k(k-1)/2 <= 16`` (``k = 6``: a complete
    Kerdock set of 32 is found within a few hundred restarts), else :data:`SEARCH_BUDGET`
    random ones. At most ``2^(k-1)`` exist (Kerdock sets).
    """
    n_bits = k * (k - 1) // 2
    rng = np.random.default_rng(0)
    pool = (
        np.arange(1 << n_bits, dtype=np.int64)
        if n_bits <= 16
        else rng.integers(1, 1 << n_bits, SEARCH_BUDGET, dtype=np.int64)
    )

    def nonsingular(bits: np.ndarray) -> np.ndarray:
        return np.array([gf2_rank(alternating_rows(int(b), k)) == k for b in bits], dtype=bool)

    table = nonsingular(pool) if n_bits <= 16 else None
    pool = pool[table] if table is not None else pool[nonsingular(pool)]
    best = [0]
    for _ in range(restarts if table is not None else 1):
        chosen, candidates = [0], pool
        while candidates.size and len(chosen) < size:
            bits = int(candidates[rng.integers(candidates.size)])
            chosen.append(bits)
            compatible = (
                table[candidates ^ bits] if table is not None else nonsingular(candidates ^ bits)
            )
            candidates = candidates[compatible]
        if len(chosen) > len(best):
            best = chosen
        if len(best) >= size:
            break
    return best


@functools.lru_cache(maxsize=16)
def unbiased_frames(d: int) -> np.ndarray:
    """Mutually unbiased orthonormal frames of ``R^d`` (``d`` a power of 4): ``(F, d, d)``.

    The standard basis, then ``H diag((-1)^{Q_S(x)}) / sqrt(d)`` for the matrices ``S`` of
    :func:`unbiased_alternating_set` (the first is ``S = 0``, the plain Hadamard basis):
    ``d/2 + 1`` frames, the most real mutually unbiased bases there are, for ``d <= 64``;
    at most :data:`MAX_FRAMES` beyond.
    """
    if not is_power_of_four(d):
        raise ValueError(f"mutually unbiased Hadamard frames need d = 4^j, got d={d}")
    k = d.bit_length() - 1
    H = hadamard(d).astype(np.float64) / np.sqrt(d)
    x = (np.arange(d)[:, None] >> np.arange(k)[None, :]) & 1  # bits of each index
    frames = [np.eye(d)]
    size = 1 << (k - 1) if d <= 64 else MAX_FRAMES - 1
    for bits in unbiased_alternating_set(k, size):
        upper = np.array(alternating_rows(bits, k))[:, None] >> np.arange(k)[None, :] & 1
        upper = np.triu(upper, 1)
        q = ((x @ upper) * x).sum(1) % 2
        frames.append(H * np.where(q == 1, -1.0, 1.0)[None, :])
    return np.stack(frames)


class MutuallyUnbiased(Sampler):
    """Randomly rotated mutually unbiased frames with stratified ``chi_d`` radii.

    Parameters
    ----------
    antithetic : bool, default False
        Draw each frequency together with its negative (same radius): for maps whose terms
        are not even in ``w`` (``positive``). Useless for ``sincos``/``fourier``/
        ``cos_offset``, whose terms are even.
    radii : {"stratified", "frame"}, default "stratified"
        ``"stratified"``: one radius per frequency (per antithetic pair), ``chi_d``
        quantiles of a stratified sample over all of them. ``"frame"``: one radius per frame
        (``d`` directions, or ``2d`` rows when antithetic), stratified over the frames: the
        frame's degree-2 direction error then cancels exactly, at the price of fewer radii.

    Notes
    -----
    Measured against ORF (``benchmarks/sampler_moonshot.py``: mean of 10 replications,
    +- its standard error). Gram error of 500 digits (d = 64), Gaussian kernel with the
    median length scale, ``sincos``, 1024 frequencies, relative Frobenius: ORF 0.00746
    +- 0.00020, ``mub`` 0.00554 +- 0.00005 (0.74x ORF; ``spherical`` with orthogonal
    directions 0.96x, ``simplex`` 1.04x). Attention error of ``positive`` features on 256
    ``qk_unit`` rows (d = 64, softmax scale 1/8), m = 4d: ORF 0.1262 +- 0.0021,
    ``mub:antithetic=true`` 0.0912 +- 0.0020 (0.72x), ``mub:antithetic=true,radii=frame``
    0.0797 +- 0.0052 (0.63x; ``simplex`` 0.89x).
    """

    name = "mub"
    needs_rotation_invariance = True

    def __init__(self, *, antithetic: bool = False, radii: str = "stratified") -> None:
        self.antithetic = check_bool(antithetic, "antithetic")
        self.radii = check_choice(radii, "radii", ("stratified", "frame"))

    def directions(self, n: int, d: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` unit directions: groups of rotated unbiased frames (``(n, d)``), every row
        with an independent random sign (so that frames' sums are not aligned)."""
        frames = unbiased_frames(d) if is_power_of_four(d) else None
        groups, total = [], 0
        while total < n:
            R = haar_orthogonal(d, rng)
            if frames is None:
                group = R
            else:
                used = frames[: -(-(n - total) // d)]
                group = used.reshape(-1, d) @ R
            groups.append(group)
            total += len(group)
        V = np.concatenate(groups)[:n]
        return V * rng.choice([-1.0, 1.0], size=(n, 1))

    def draw(
        self, measure: SpectralMeasure, n_features: int, dim: int, seed: np.random.SeedSequence
    ) -> np.ndarray:
        m, d = n_features, dim
        rng = np.random.default_rng(seed)
        n = -(-m // 2) if self.antithetic else m
        V = self.directions(n, d, rng)
        if self.radii == "stratified":
            u = (rng.permutation(n) + rng.random(n)) / n  # each u_i ~ U[0, 1)
        else:
            n_frames = -(-n // d)
            u = np.repeat((rng.permutation(n_frames) + rng.random(n_frames)) / n_frames, d)[:n]
        W = measure.radial_ppf(u, d)[:, None] * V
        if self.antithetic:
            W = np.stack((W, -W), axis=1).reshape(2 * n, d)
        return W[:m]
