r"""Log-log rate fits: least-squares slopes with Student-t intervals on k - 2 degrees of freedom.

Statement
---------
For one curve of $k$ points $(x_i, y_i) = (\log m_i, \log e_i)$ the least-squares slope
$\hat\beta = S_{xy}/S_{xx}$ has standard error
$\mathrm{SE}(\hat\beta) = \sqrt{\sum_i r_i^2 / ((k - 2) S_{xx})}$ (residuals $r_i$), and
$\hat\beta \pm t_{k-2,\,1-(1-\ell)/2}\, \mathrm{SE}(\hat\beta)$ is an exact level-$\ell$ interval
when the errors are independent $N(0, \sigma^2)$: its coverage is $\ell$. With $R$ independent
curves the slope is the mean of the $R$ per-curve slopes with the interval
$\bar\beta \pm t_{R-1}\, s/\sqrt R$. The RMSE fit is weighted least squares with weights
$w_i$: $\hat\beta = \sum w_i (x_i - \bar x_w) y_i / \sum w_i (x_i - \bar x_w)^2$ with
$\mathrm{SE} = (\sum w_i (x_i - \bar x_w)^2)^{-1/2}$.

Source
------
Draper & Smith, *Applied Regression Analysis*, 3rd ed., Wiley 1998, Sections 1.4 (the slope's
$t$ interval on $n - 2$ degrees of freedom) and 9.2 (weighted least squares).

Method
------
Against independent references: `scipy.stats.linregress` (slope, intercept, standard error)
and `scipy.stats.t` for the interval of the single-curve fit `fit_rate`, on a fixed curve of
$k = 5$ points, to $10^{-10}$ relative; `scipy.stats.t.interval` over per-curve
`linregress` slopes for the replicated fit; `numpy.polyfit` with weights
$\sqrt{w_i}$ and `cov="unscaled"` for `fit_rmse_rate`. Then the coverage of the package's
95 % interval over $R$ simulated curves with Gaussian noise (true slope known) must lie within
5 binomial standard errors $\sqrt{0.95 \cdot 0.05 / R}$ of $0.95$.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from kernelapprox.estimators.rates import fit_rate, fit_rmse_rate
from kernelapprox.estimators.replications import mean_and_se

from ._core import Verdict
from ._numerical import Checks, numerical_claim, z_score

SEED = 19980101
SIZES = np.array([16, 32, 64, 128, 256])
TRUE_SLOPE = -0.5
RTOL = 1e-10


def _relative(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-300)


def run(*, thorough: bool = False, seed: int = SEED) -> Verdict:
    checks = Checks()
    reference_seed, replicated_seed, rmse_seed, coverage_seed = np.random.SeedSequence(seed).spawn(
        4
    )
    x = np.log(SIZES)
    noise = np.random.default_rng(reference_seed).normal(0.0, 0.1, SIZES.size)
    curve = np.exp(1.0 + TRUE_SLOPE * x + noise)
    fit, ref = fit_rate(SIZES, curve), stats.linregress(x, np.log(curve))
    half = stats.t.ppf(0.975, df=SIZES.size - 2) * ref.stderr
    gaps = {
        "slope": _relative(fit.slope, ref.slope),
        "intercept": _relative(fit.intercept, ref.intercept),
        "stderr": _relative(fit.stderr, ref.stderr),
        "ci_low": _relative(fit.ci_low, ref.slope - half),
        "ci_high": _relative(fit.ci_high, ref.slope + half),
    }
    # replicated curves: the mean slope and a t interval over the replications
    curves = np.exp(
        1.0 + TRUE_SLOPE * x + np.random.default_rng(replicated_seed).normal(0.0, 0.1, (8, x.size))
    )
    slopes = np.array([stats.linregress(x, np.log(c)).slope for c in curves])
    low, high = stats.t.interval(0.95, slopes.size - 1, loc=slopes.mean(), scale=stats.sem(slopes))
    replicated = fit_rate(SIZES, curves)
    gaps["replicated slope"] = _relative(replicated.slope, float(slopes.mean()))
    gaps["replicated ci_low"] = _relative(replicated.ci_low, float(low))
    gaps["replicated ci_high"] = _relative(replicated.ci_high, float(high))
    # the weighted RMSE fit against numpy's weighted polynomial fit
    signed = SIZES**TRUE_SLOPE * np.random.default_rng(rmse_seed).standard_normal((64, SIZES.size))
    rmse_fit = fit_rmse_rate(SIZES, signed)
    mse, se_mse = mean_and_se(signed**2, axis=0)
    sd_log = se_mse / (2.0 * mse)
    coef, cov = np.polyfit(x, 0.5 * np.log(mse), 1, w=1.0 / sd_log, cov="unscaled")
    gaps["rmse slope"] = _relative(rmse_fit.slope, float(coef[0]))
    gaps["rmse stderr"] = _relative(rmse_fit.stderr, float(np.sqrt(cov[0, 0])))
    worst = max(gaps.values())
    for key, gap in gaps.items():
        checks.require(gap <= RTOL, f"{key} differs from the reference by {gap:.1e} (relative)")
    # coverage of the single-curve 95 % interval
    R = 4000 if thorough else 1000
    noise = np.random.default_rng(coverage_seed).normal(0.0, 0.2, (R, SIZES.size))
    covered = np.empty(R, dtype=bool)
    for r in range(R):
        f = fit_rate(SIZES, np.exp(TRUE_SLOPE * x + noise[r]))
        covered[r] = f.ci_low <= TRUE_SLOPE <= f.ci_high
    coverage = float(covered.mean())
    coverage_se = float(np.sqrt(0.95 * 0.05 / R))
    z = z_score(coverage, 0.95, coverage_se)
    checks.within(z, 5, f"coverage {coverage:.3f} is {z:+.1f} binomial SE from 0.95")
    return checks.verdict(
        f"fit_rate, its replicated form and fit_rmse_rate equal scipy/numpy to {worst:.1e} "
        f"(limit {RTOL:.0e}); 95 % interval coverage {coverage:.3f} over {R} curves "
        f"({z:+.1f} SE from 0.95)",
        gaps=gaps,
        coverage=coverage,
        coverage_se=coverage_se,
        z=z,
        curves=R,
    )


CLAIM = numerical_claim(
    run,
    name="rate_fit_interval",
    title="Rate fits: least-squares slope with a Student-t interval on k - 2 degrees of freedom",
    source="Draper & Smith, Applied Regression Analysis (1998), Sec. 1.4 and 9.2",
    family="qmc",
    seed=SEED,
    tolerance="1e-10 relative to scipy/numpy; coverage within 5 binomial standard errors",
    verifies=(
        "kernelapprox.estimators.rates.fit_rate",
        "kernelapprox.estimators.rates.fit_rmse_rate",
    ),
)
