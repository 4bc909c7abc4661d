r"""DiJiang's rate claim "QMC is O(1/m)" for positive fixed features, measured.

Statement
---------
Claim tested (DiJiang, text after Theorem 3.2): the quasi-Monte Carlo estimate of the kernel
has error $O(1/m)$ in the number of features $m$, against $O(m^{-1/2})$ for Monte Carlo, with no
condition on the dimension. Measured here for the positive features of Theorem 3.2 with
scrambled Sobol' frequencies $w_i = \Phi^{-1}(u_i)$ (coordinatewise normal inverse CDF, which
gives the $\chi_d$ radius and uniform direction of the theorem in distribution):
$$\mathrm{RMSE}(m) = \Big(\mathbb{E}\big[(\phi(x)^\top\phi(y) - K_G(x, y))^2\big]\Big)^{1/2}
\overset{?}{=} O(m^{-1}),\qquad d \in \{2, 8, 64\}.$$
Refuted as stated: the fitted slope is significantly above $-1$ for some dimensions and input
norms; the verdict lists where $O(1/m)$ is consistent with the measurements.

Source
------
DiJiang (Chen et al., ICML 2024, arXiv 2403.19928), Section 3.2, after Theorem 3.2 (citing
Asmussen & Glynn 2007); Koksma-Hlawka needs bounded Hardy-Krause variation, which the mapped
exponential integrand does not have.

Method
------
Experiment with the package: the Gaussian positive map `features.make("positive",
kernels.Gaussian(1.0), m, sampler="sobol" | "mc")` (`sampling.Sobol` wraps
`scipy.stats.qmc.Sobol`, LMS + digital shift), fixed seed: for each
$d \in \{2, 8, 64\}$ and $\|x\| = \|y\| \in \{0.3, 0.6\}$, $m = 2^4, \dots, 2^{12}$ and $R$
independent scrambles per $m$, fit the weighted log-log slope of the RMSE and its standard
error (delta method). $O(1/m)$ counts as consistent at a cell when slope $- 3\,\mathrm{SE} \le -1$.
Plain Monte Carlo slopes are reported alongside. The claim is refuted when some cell is
inconsistent; it would hold if every cell were consistent.
"""

from __future__ import annotations

import numpy as np

from kernelapprox import features

from ._core import Claim, Verdict, docstring_section
from ._pff import GAUSSIAN, gaussian_kernel, input_pair
from ._stats import rmse_slope
from ._torch import single_threaded

SEED = 20240401
DIMS = (2, 8, 64)
NORMS = (0.3, 0.6)


def _errors(
    x: np.ndarray, y: np.ndarray, log2_ms: range, replications: int, seed: np.random.SeedSequence
) -> tuple[np.ndarray, np.ndarray]:
    """Signed errors, shape (levels, R), of the package's Gaussian positive map (PFF) with
    scrambled Sobol' and with iid normal frequencies."""
    d, target = x.size, gaussian_kernel(x, y)
    qmc_err = np.empty((len(log2_ms), replications))
    mc_err = np.empty_like(qmc_err)
    for i, (k, child) in enumerate(zip(log2_ms, seed.spawn(len(log2_ms)), strict=True)):
        for r, s in enumerate(child.spawn(replications)):
            qmc_seed, mc_seed = s.spawn(2)
            for errors, sampler, sub in ((qmc_err, "sobol", qmc_seed), (mc_err, "mc", mc_seed)):
                fm = features.make("positive", GAUSSIAN, 2**k, dim=d, sampler=sampler, seed=sub)
                errors[i, r] = float(fm.gram(x[None, :], y[None, :])[0, 0]) - target
    return qmc_err, mc_err


@single_threaded
def run(*, thorough: bool = False) -> Verdict:
    log2_ms = range(4, 15 if thorough else 13)
    replications = 48 if thorough else 16
    ns = 2 ** np.array(list(log2_ms))
    root = np.random.SeedSequence(SEED)
    cells, consistent = {}, {}
    children = iter(root.spawn(len(DIMS) * len(NORMS)))
    for d in DIMS:
        for norm in NORMS:
            x, y = input_pair(SEED + d, d, norm)
            qmc_err, mc_err = _errors(x, y, log2_ms, replications, next(children))
            fit_q, fit_m = rmse_slope(ns, qmc_err), rmse_slope(ns, mc_err)
            key = f"d={d} |x|={norm}"
            consistent[key] = fit_q.slope - 3 * fit_q.se <= -1.0
            cells[key] = {
                "qmc_slope": fit_q.slope,
                "qmc_slope_se": fit_q.se,
                "mc_slope": fit_m.slope,
                "mc_slope_se": fit_m.se,
                "qmc_rmse": list(fit_q.rmse),
                "consistent_with_1_over_m": consistent[key],
            }
    holds_at = [k for k, v in consistent.items() if v]
    table = "; ".join(
        f"{k}: QMC {c['qmc_slope']:.2f}+-{c['qmc_slope_se']:.2f} (MC {c['mc_slope']:.2f})"
        for k, c in cells.items()
    )
    where = ", ".join(holds_at) if holds_at else "none of the tested cells"
    faster = sum(c["qmc_slope"] < c["mc_slope"] for c in cells.values())
    summary = (
        f"O(1/m) consistent at: {where}; QMC slope steeper than MC in {faster}/{len(cells)} "
        f"cells. Slopes: {table}"
    )
    status = "holds" if len(holds_at) == len(consistent) else "refuted"
    return Verdict(
        status,
        summary,
        {
            "cells": cells,
            "features": ns.tolist(),
            "replications": replications,
            "consistent_at": holds_at,
        },
    )


CLAIM = Claim(
    name="dijiang_qmc_rate",
    title="DiJiang's 'QMC is O(1/m)' rate, measured for d = 2, 8, 64",
    statement=docstring_section(__doc__, "Statement"),
    source="DiJiang (ICML 2024) Sec. 3.2, after Thm 3.2",
    method="refuted",
    expected="refuted",
    family="dijiang",
    run=run,
    module=__name__,
    seed=SEED,
    tolerance="slope - 3 SE <= -1 (SE by the delta method over R independent scrambles)",
    verifies=(
        "kernelapprox.features.exponential._Exponential.log_per_frequency",
        "kernelapprox.sampling.qmc.Sobol.points",
        "kernelapprox.sampling.mc.MonteCarlo.points",
        "kernelapprox.kernels.SpectralMeasure.ppf",
    ),
)
