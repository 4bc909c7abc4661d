"""Statistical behaviour against exact softmax attention (fixed seeds, SE-derived margins)."""

from __future__ import annotations

import itertools
import os

import numpy as np
import pytest
import torch
from attention_helpers import qkv

from kernelapprox import features, kernels
from kernelapprox._validation import spawn
from kernelapprox.attention import feature_attention, relative_rms, softmax_attention
from kernelapprox.estimators.replications import mean_and_se

#: Same switch as tests/conftest.py: KERNELAPPROX_THOROUGH=1 scales the replications.
THOROUGH = os.environ.get("KERNELAPPROX_THOROUGH", "") not in ("", "0")

REPLICATIONS = 64 if THOROUGH else 16
#: Margin in standard errors of the difference of two means.
Z = 5.0


def _errors(name: str, sampler: str, m: int, *, causal: bool, root: int) -> np.ndarray:
    """Relative-RMS error of feature attention vs exact attention, one per replication."""
    q, k, v = qkv(2, 48, 2, 2, 16, 8, seed=123, std=0.5)
    exact = softmax_attention(q, k, v, causal=causal)
    errs = []
    for seed in spawn(root, REPLICATIONS):
        fm = features.make(name, kernels.Softmax(), m, dim=16, sampler=sampler, seed=seed)
        errs.append(relative_rms(feature_attention(q, k, v, fm, causal=causal), exact))
    return np.asarray(errs)


@pytest.mark.parametrize("name", ["positive", "hyperbolic"])
@pytest.mark.parametrize("causal", [True, False])
def test_error_against_softmax_falls_with_the_number_of_features(name, causal):
    """Each 8-fold increase of m cuts the mean error (the estimator's rate is m^{-1/2},
    i.e. a factor ~0.35) by more than Z standard errors of the difference."""
    means = [mean_and_se(_errors(name, "mc", m, causal=causal, root=m)) for m in (8, 64, 512)]
    for (a, sa), (b, sb) in itertools.pairwise(means):
        assert a - b > Z * np.hypot(sa, sb), f"error did not fall: {means}"


@pytest.mark.parametrize("sampler", ["orthogonal", "sobol", "halton"])
def test_structured_samplers_are_no_worse_than_iid(sampler):
    """Orthogonal (Yu et al., 2016) and randomized QMC frequencies at equal m: mean error not
    above iid's by more than Z standard errors (one-sided)."""
    iid, s_iid = mean_and_se(_errors("positive", "mc", 64, causal=True, root=1))
    other, s_other = mean_and_se(_errors("positive", sampler, 64, causal=True, root=2))
    assert other - iid < Z * np.hypot(s_iid, s_other), (sampler, other, iid)


def test_torch_seed_gives_a_reproducible_map():
    """A torch.Generator seed is accepted and reproduces the same frequencies."""
    a, b = (
        features.make("positive", kernels.Softmax(), 8, dim=4, seed=g)
        for g in (torch.Generator().manual_seed(3), torch.Generator().manual_seed(3))
    )
    assert np.array_equal(a.standard_frequencies, b.standard_frequencies)
