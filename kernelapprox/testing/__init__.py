"""Property tests for random feature maps and attention implementations, yours or ours.

The helpers raise :class:`AssertionError` with a readable report, so they work in any test
runner; every tolerance comes from a standard error or from the dtype's rounding, never from
tuning.

==============================  ===========================================================
:func:`assert_unbiased`         ``E[phi(x) . phi(y)] = k(x, y)`` entry by entry (means and
                                standard errors over independent draws)
:func:`assert_variance_matches` the estimate's variance equals an analytic variance (standard
                                error from the fourth moment)
:func:`assert_psd_gram`         a Gram matrix is Hermitian positive semi-definite
:func:`assert_causal`           perturbing future tokens leaves past outputs bit-identical
:func:`assert_resumable`        segments resumed from the returned state equal one pass
==============================  ===========================================================

Hypothesis strategies for data matrices, kernels, feature-map configurations and attention
shapes live in :mod:`kernelapprox.testing.strategies` (which needs ``hypothesis``).

Examples
--------
>>> import numpy as np
>>> from kernelapprox import features, kernels
>>> from kernelapprox.testing import assert_psd_gram, assert_unbiased
>>> X = np.random.default_rng(0).normal(size=(5, 2)) * 0.5
>>> k = kernels.Softmax()
>>> def make(seed):
...     return features.make("positive", k, 32, dim=2, seed=seed)
>>> assert_unbiased(make, k, X).passed
True
>>> _ = assert_psd_gram(make(0).gram(X))
"""

from kernelapprox.testing.attention import assert_causal, assert_resumable, default_rtol
from kernelapprox.testing.gram import assert_psd_gram
from kernelapprox.testing.moments import (
    MomentCheck,
    assert_unbiased,
    assert_variance_matches,
    family_threshold,
)

__all__ = [
    "MomentCheck",
    "assert_causal",
    "assert_psd_gram",
    "assert_resumable",
    "assert_unbiased",
    "assert_variance_matches",
    "default_rtol",
    "family_threshold",
]
