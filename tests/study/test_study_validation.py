"""Validation of the study's error bars and of weighted QMC against the reference numbers."""

import warnings

import numpy as np
import pytest

from kernelapprox import features, kernels
from kernelapprox.estimators import replication_interval
from kernelapprox.sampling import QMCBalanceWarning
from kernelapprox.study import StudySpec, run_study, summarize
from tests.conftest import THOROUGH


@pytest.mark.parametrize("sampler", ["mc", "sobol"])
def test_replication_interval_coverage_for_a_kernel_entry(sampler):
    """95% t-intervals over R=8 randomizations cover k(x, y) in 0.90-0.99 of the trials.

    Reference (notes §3.9): d=8, 256 frequencies, 400 trials: MC 0.968, Sobol' 0.955.
    """
    trials = 400 if THOROUGH else 200
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(2, 1, 8)) * 0.4
    kernel = kernels.Gaussian(1.0)
    truth = float(kernel(x, y)[0, 0])
    covered = 0
    for t in range(trials):
        seeds = np.random.SeedSequence(1000 + t).spawn(8)
        est = [
            features.make("sincos", kernel, 256, dim=8, sampler=sampler, seed=s).gram(x, y)[0, 0]
            for s in seeds
        ]
        covered += replication_interval(est).covers(truth)
    assert 0.90 <= covered / trials <= 0.99


def test_fitted_weights_lower_held_out_error_on_digits():
    spec = StudySpec(
        data=["digits"],
        maps=["sincos"],
        samplers=["mc"],
        weights=["uniform", "fitted"],
        features=[64],
        replications=4,
        n_points=200,
        metrics=["rel_fro"],
    )
    cells = {c["weights"]: c for c in summarize(run_study(spec, progress=False))["cells"]}
    assert cells["fitted"]["ci_high"] < cells["uniform"]["ci_low"]


def test_orthogonal_beats_mc_on_digits_as_in_the_reference_table():
    """Reference §4.3, digits d=64: ORF about 3.5x below MC at every s; assert a 2x margin."""
    spec = StudySpec(
        data=["digits"],
        maps=["sincos"],
        samplers=["mc", "orthogonal"],
        features=[128],
        replications=3,
        n_points=200,
        metrics=["rel_spectral"],
    )
    mean = {c["sampler"]: c["mean"] for c in summarize(run_study(spec, progress=False))["cells"]}
    assert mean["orthogonal"] < 0.5 * mean["mc"]


def test_box_weights_never_raise_the_box_discrepancy_of_the_study_frequencies():
    from kernelapprox.discrepancy import box

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", QMCBalanceWarning)
        for sampler in ("mc", "sobol", "halton"):
            fm = features.make(
                "sincos", kernels.Gaussian(), 48, dim=3, sampler=sampler, weights="box", seed=0
            )
            W = fm.standard_frequencies
            weighted = box(W, scale=1.0, b=3.0, weights=fm.weights)
            uniform = box(W, scale=1.0, b=3.0)
            assert weighted <= uniform * (1 + 1e-9)
            np.testing.assert_allclose(fm.weights.sum(), 1.0)
