"""The law of the orthogonal samplers: Haar blocks, independent blocks, chi radii, SORF's HD^3.

Each statistic is chosen so that a plausible bug moves it by many standard errors: a QR
without the sign fix is not Haar (its ``Q[0, 0]`` is never positive with LAPACK's Householder
QR), a Haar block reused for every stacked block makes blocks identical, a radius shared by a
block makes its row norms equal, and SORF with two HD blocks has another fourth moment.
Tolerances are 5 standard errors of independent replications (seeds).
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np
from scipy import special
from scipy.linalg import hadamard

from kernelapprox import kernels
from kernelapprox.estimators.replications import mean_and_se
from kernelapprox.sampling import sample_frequencies
from kernelapprox.sampling.orthogonal import SORFBiasWarning, haar_orthogonal

NORMAL = kernels.Gaussian(1.0)
SEEDS = range(400)


def test_haar_first_entry_has_mean_zero_odd_statistic() -> None:
    """``E Q[0, 0] = 0`` for Haar ``Q`` (an odd statistic: the sign fix matters, cos would not)."""
    d = 4
    rng = np.random.default_rng(0)
    q00 = np.array([haar_orthogonal(d, rng)[0, 0] for _ in range(2000)])
    se = mean_and_se(q00)[1]  # sd is 1/sqrt(d) for Haar
    assert abs(q00.mean()) < 5 * se
    # and through the sampler: the first frequency's direction has a zero-mean first coordinate
    first = np.array(
        [sample_frequencies("orthogonal", NORMAL, d, d, seed=s)[0] for s in range(2000)]
    )
    u = first[:, 0] / np.linalg.norm(first, axis=1)
    assert abs(u.mean()) < 5 * mean_and_se(u)[1]


def test_stacked_blocks_are_independent() -> None:
    """Row 0 of block 1 and row 0 of block 2: ``E (u . v)^2 = 1/d`` for independent Haar blocks.

    For independent uniform directions ``Var (u.v)^2 = 3/(d(d+2)) - 1/d^2``; a reused block
    gives ``(u.v)^2 = 1``.
    """
    d = 4
    stats = []
    for s in SEEDS:
        W = sample_frequencies("orthogonal", NORMAL, 2 * d, d, seed=s)
        u, v = W[0] / np.linalg.norm(W[0]), W[d] / np.linalg.norm(W[d])
        stats.append((u @ v) ** 2)
    stats = np.array(stats)
    se = np.sqrt(3 / (d * (d + 2)) - 1 / d**2) / np.sqrt(stats.size)
    assert abs(stats.mean() - 1 / d) < 5 * se


def test_radii_within_a_block_are_independent_chi() -> None:
    """Norms of two rows of one block: uncorrelated, each with the chi_d mean."""
    d = 4
    norms = np.array(
        [np.linalg.norm(sample_frequencies("orthogonal", NORMAL, d, d, seed=s), axis=1)
         for s in SEEDS]
    )  # fmt: skip
    r0, r1 = norms[:, 0], norms[:, 1]
    corr = np.corrcoef(r0, r1)[0, 1]
    assert abs(corr) < 5 / np.sqrt(len(SEEDS))  # SE of a correlation at rho = 0
    chi_mean = np.sqrt(2) * special.gamma((d + 1) / 2) / special.gamma(d / 2)
    assert abs(r0.mean() - chi_mean) < 5 * mean_and_se(r0)[1]


def _hd3_fourth_moment(p: int, n_blocks: int) -> float:
    """Exact ``E w_1^4`` of ``sqrt(p) (H D)^n`` rows, enumerating every sign pattern."""
    H = hadamard(p) / np.sqrt(p)
    total, count = 0.0, 0
    for signs in itertools.product([-1.0, 1.0], repeat=p * n_blocks):
        M = np.sqrt(p) * np.eye(p)
        for b in range(n_blocks):
            M = M @ H * np.array(signs[b * p : (b + 1) * p])
        total += float(np.sum(M[:, 0] ** 4))
        count += p
    return total / count


def test_sorf_uses_three_hd_blocks() -> None:
    """SORF rows at d = 4 have the fourth moment of ``H D_1 H D_2 H D_3`` (1.75; HD^2: 2.5)."""
    d = 4
    exact = _hd3_fourth_moment(d, 3)
    assert abs(exact - _hd3_fourth_moment(d, 2)) > 0.5  # the statistic separates the two
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SORFBiasWarning)
        W = sample_frequencies("sorf", NORMAL, 4 * d * 1000, d, seed=0)
    per_block = (W[:, 0] ** 4).reshape(-1, d).mean(axis=1)  # blocks are independent
    se = mean_and_se(per_block)[1]
    assert abs(per_block.mean() - exact) < 5 * se
