"""The single-curve rate fit is ordinary least squares with n - 2 residual degrees of freedom.

Exact check against :func:`scipy.stats.linregress` (slope, its standard error) and the
two-sided Student-t interval with ``n - 2`` degrees of freedom.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from kernelapprox.estimators import fit_rate


def test_rate_fit_equals_linregress_with_n_minus_2_dof() -> None:
    m = np.array([16, 32, 64, 128, 256, 512])
    errors = np.exp(-0.5 * np.log(m)) * np.exp(np.random.default_rng(3).normal(0, 0.1, m.size))
    fit = fit_rate(m, errors, level=0.9)
    ref = stats.linregress(np.log(m), np.log(errors))
    assert abs(fit.slope - ref.slope) <= 1e-12 * abs(ref.slope)
    assert abs(fit.stderr - ref.stderr) <= 1e-12 * ref.stderr
    half = stats.t.ppf(0.95, df=m.size - 2) * ref.stderr
    assert abs((fit.ci_high - fit.ci_low) / 2 - half) <= 1e-12 * half
