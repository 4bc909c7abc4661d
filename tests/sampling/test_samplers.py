import math
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats
from scipy.stats import qmc

from kernelapprox.kernels import CAUCHY, NORMAL, Gaussian, Laplacian
from kernelapprox.sampling import (
    SAMPLERS,
    Halton,
    Lattice,
    QMCBalanceWarning,
    Sobol,
    Spherical,
    cbc_generating_vector,
    make_sampler,
    sample_frequencies,
)
from tests.conftest import THOROUGH

POINT_SAMPLERS = ["mc", "sobol", "halton", "lattice"]


@pytest.fixture(autouse=True)
def _quiet_balance():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", QMCBalanceWarning)
        yield


@given(
    name=st.sampled_from(sorted(SAMPLERS)),
    m=st.integers(1, 40),
    d=st.integers(1, 9),
    reps=st.one_of(st.none(), st.integers(1, 3)),
)
def test_shapes_dtypes_and_finiteness(name, m, d, reps):
    W = sample_frequencies(name, Gaussian(), m, d, seed=3, replications=reps)
    assert W.shape == ((m, d) if reps is None else (reps, m, d))
    assert W.dtype == np.float64
    assert np.all(np.isfinite(W))


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_same_seed_same_frequencies_and_independent_replications(name):
    a = sample_frequencies(name, Gaussian(), 16, 4, seed=7, replications=3)
    b = sample_frequencies(name, Gaussian(), 16, 4, seed=np.random.SeedSequence(7), replications=3)
    np.testing.assert_array_equal(a, b)
    c = sample_frequencies(name, Gaussian(), 16, 4, seed=torch.Generator().manual_seed(7))
    d = sample_frequencies(name, Gaussian(), 16, 4, seed=7)
    np.testing.assert_array_equal(c, d)
    assert not np.array_equal(a[0], a[1]) and not np.array_equal(a[1], a[2])
    assert not np.array_equal(
        a, sample_frequencies(name, Gaussian(), 16, 4, seed=8, replications=3)
    )


def test_replications_are_spawned_children():
    ss = np.random.SeedSequence(11)
    children = ss.spawn(2)
    W = sample_frequencies("sobol", Gaussian(), 8, 2, seed=11, replications=2)
    np.testing.assert_array_equal(
        W[1], sample_frequencies("sobol", Gaussian(), 8, 2, seed=children[1])
    )


def test_sobol_matches_scipy_engine_with_the_same_generator():
    ours = Sobol().points(16, 3, np.random.SeedSequence(5))
    ref = qmc.Sobol(d=3, scramble=True, rng=np.random.default_rng(np.random.SeedSequence(5)))
    np.testing.assert_array_equal(ours, ref.random(16))
    # a seed object passed twice gives the same points (scipy spawns from it internally)
    ss = np.random.SeedSequence(5)
    np.testing.assert_array_equal(Sobol().points(16, 3, ss), Sobol().points(16, 3, ss))


def test_unscrambled_sequences_equal_the_reference_points():
    sobol = Sobol(scramble=False).points(8, 2, np.random.SeedSequence(0))
    expected = [(0, 0), (.5, .5), (.75, .25), (.25, .75), (.375, .375), (.875, .875),
                (.625, .125), (.125, .625)]  # fmt: skip
    np.testing.assert_array_equal(sobol, expected)
    halton = Halton(scramble=False).points(5, 2, np.random.SeedSequence(0))
    np.testing.assert_allclose(
        halton, [(0, 0), (0.5, 1 / 3), (0.25, 2 / 3), (0.75, 1 / 9), (0.125, 4 / 9)]
    )
    # the origin never becomes -inf
    W = make_sampler(Sobol(scramble=False)).frequencies(NORMAL, 8, 2, seed=0)
    assert np.all(np.isfinite(W)) and np.all(np.abs(W) < 6.5)


def test_sobol_warns_when_the_size_breaks_the_net():
    with warnings.catch_warnings():
        warnings.simplefilter("error", QMCBalanceWarning)
        Sobol().points(16, 2, np.random.SeedSequence(0))
        with pytest.raises(QMCBalanceWarning, match="power of 2"):
            Sobol().points(12, 2, np.random.SeedSequence(0))


def test_any_scipy_engine_is_accepted():
    W = sample_frequencies(
        qmc.LatinHypercube(d=1, strength=1), Gaussian(), 10, 3, seed=0, replications=2
    )
    assert W.shape == (2, 10, 3)
    with pytest.raises(TypeError, match="QMCEngine"):
        from kernelapprox.sampling import EngineSampler

        EngineSampler(object())


@pytest.mark.parametrize("name", POINT_SAMPLERS)
def test_randomized_point_sets_have_uniform_marginals(name):
    # every point of a randomized set is U[0,1)^d: check the first point across replications
    R = 2000 if THOROUGH else 400
    pts = make_sampler(name).uniform_points(8, 3, seed=1, replications=R)
    first = pts[:, 0, :]
    se = math.sqrt(1 / 12 / R)
    assert np.all(np.abs(first.mean(0) - 0.5) < 5 * se)
    for j in range(3):
        assert stats.kstest(first[:, j], "uniform").pvalue > 1e-4
    assert np.all((pts >= 0) & (pts < 1))


def test_lattice_rule_structure():
    n, d = 64, 6
    z = cbc_generating_vector(n, d)
    assert z[0] == 1 and all(math.gcd(zj, n) == 1 for zj in z)
    base = Lattice(shift=False).points(n, d, np.random.SeedSequence(0))
    # each coordinate of a rank-1 lattice with z_j coprime to n is the full grid {k/n}
    for j in range(d):
        np.testing.assert_allclose(np.sort(base[:, j]), np.arange(n) / n)
    shifted = Lattice().points(n, d, np.random.SeedSequence(3))
    diff = (shifted - base) % 1.0
    np.testing.assert_allclose(diff, np.broadcast_to(diff[0], diff.shape), atol=1e-12)


def test_lattice_cbc_beats_a_bad_vector_on_its_criterion():
    n, d = 128, 4
    z = np.array(cbc_generating_vector(n, d))
    k = np.arange(n)[:, None]

    def err2(zv):
        x = (k * zv % n) / n
        return -1 + np.mean(np.prod(1 + 0.05 * 2 * np.pi**2 * (x**2 - x + 1 / 6), 1))

    assert err2(z) < err2(np.array([1, 1, 1, 1])) / 10
    assert err2(z) < err2(np.array([1, 3, 5, 7]))


def test_lattice_components_are_distinct_in_high_dimension():
    """Repeated components would make frequency coordinates identical (see the docstring)."""
    z = cbc_generating_vector(256, 64)
    assert len(set(z)) == 64


def test_orthogonal_blocks_are_orthogonal_with_chi_radii():
    d, m = 6, 15
    W = sample_frequencies("orthogonal", Gaussian(), m, d, seed=2)
    for start in range(0, m, d):
        block = W[start : start + d]
        G = block @ block.T
        np.testing.assert_allclose(G - np.diag(np.diag(G)), 0, atol=1e-10)
    R = 300
    norms = np.linalg.norm(
        sample_frequencies("orthogonal", Gaussian(), d, d, seed=0, replications=R), axis=-1
    )
    assert stats.kstest(norms.ravel(), stats.chi(df=d).cdf).pvalue > 1e-4
    rows = sample_frequencies("orthogonal", Gaussian(), d, d, seed=1, replications=R)
    # Haar: each entry has mean 0 and variance 1 (w = r q, E r^2 = d, E q^2 = 1/d)
    assert np.all(np.abs(rows.mean(0)) < 5 / np.sqrt(R))
    assert np.abs((rows**2).mean() - 1.0) < 5 * np.sqrt(2 / (R * d * d))


def test_sorf_rows_have_norm_sqrt_p_and_pad_odd_dimensions():
    W = sample_frequencies("sorf", Gaussian(), 8, 8, seed=0)
    np.testing.assert_allclose(np.linalg.norm(W, axis=1), np.sqrt(8))
    G = W @ W.T
    np.testing.assert_allclose(G - np.diag(np.diag(G)), 0, atol=1e-10)
    assert sample_frequencies("sorf", Gaussian(), 20, 5, seed=0).shape == (20, 5)


@pytest.mark.parametrize("directions", ["qmc", "orthogonal"])
def test_spherical_radii_follow_chi_and_directions_are_unit(directions):
    d, R = 5, 200
    W = Spherical(directions=directions).frequencies(NORMAL, 16, d, seed=0, replications=R)
    norms = np.linalg.norm(W, axis=-1)
    assert stats.kstest(norms[:, 3], stats.chi(df=d).cdf).pvalue > 1e-4
    assert np.all(np.abs(W[:, 2, :].mean(0)) < 5 * np.sqrt(1.0 / R))


def test_laplacian_spectral_measure_is_cauchy():
    W = sample_frequencies("mc", Laplacian(), 4000, 1, seed=0)
    assert stats.kstest(W[:, 0], "cauchy").pvalue > 1e-4
    assert Laplacian.spectral_measure is CAUCHY


@pytest.mark.parametrize("name", ["orthogonal", "sorf", "spherical"])
def test_rotation_samplers_reject_the_laplacian_kernel(name):
    with pytest.raises(ValueError, match="rotation-invariant"):
        sample_frequencies(name, Laplacian(), 4, 2, seed=0)


def test_bad_arguments_name_the_parameter():
    with pytest.raises(ValueError, match="sampler must be one of"):
        make_sampler("random")
    with pytest.raises(ValueError, match="n_features"):
        sample_frequencies("mc", Gaussian(), 0, 2)
    with pytest.raises(ValueError, match="replications"):
        sample_frequencies("mc", Gaussian(), 3, 2, replications=0)
    with pytest.raises(ValueError, match="directions"):
        Spherical(directions="random")
    with pytest.raises(ValueError, match="seed"):
        sample_frequencies("mc", Gaussian(), 3, 2, seed=-1)
