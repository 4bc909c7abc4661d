r"""Scrambled Sobol' points beat Monte Carlo's rate on a smooth 4-D integrand.

Statement
---------
For the smooth product integrand $f(x) = \exp\big(\sum_{j=1}^{4} x_j / j\big)$ on $[0, 1)^4$,
with $I = \prod_j j(e^{1/j} - 1)$, the RMSE over independent randomisations of the equal-weight
rule with $n = 2^k$ points satisfies
$$\mathrm{RMSE}_{\text{scrambled Sobol'}}(n) = O(n^{-3/2 + \varepsilon})
\quad(\text{fitted slope} < -1.2),\qquad
\mathrm{RMSE}_{\text{MC}}(n) = \sigma(f)\, n^{-1/2}\quad(\text{slope} \approx -1/2).$$

Source
------
Owen, "Scrambled net variance for integrals of smooth functions", Annals of Statistics 25(4),
1997 (RMSE $O(n^{-3/2}(\log n)^{(s-1)/2})$ for nested uniform scrambling); Matousek (1998) for
the LMS + digital shift scrambling used by `scipy.stats.qmc.Sobol`.

Method
------
Experiment with the package's point sets (`kernelapprox.sampling.Sobol`, which wraps
`scipy.stats.qmc.Sobol`, and `MonteCarlo`), fixed seed: $n = 2^5, \dots, 2^{12}$, $R$
independent scrambles (and $R$ iid Monte Carlo samples) per $n$ from `SeedSequence.spawn`; weighted
log-log slope with a delta-method standard error. Sobol' passes when slope $+ 3\,\mathrm{SE}
< -1.2$; Monte Carlo when $|\text{slope} + 1/2| \le 5\,\mathrm{SE}$.
"""

from __future__ import annotations

import numpy as np

from kernelapprox.estimators.rates import fit_rmse_rate
from kernelapprox.sampling import MonteCarlo, Sobol

from ._core import Verdict
from ._numerical import numerical_claim
from ._text import superscript

SEED = 19970801
DIM = 4
_A = 1.0 / np.arange(1, DIM + 1)
EXACT = float(np.prod((np.exp(_A) - 1.0) / _A))
#: The package's point sets: scrambled Sobol' (LMS + digital shift) and iid uniforms.
SOBOL, MC = Sobol(), MonteCarlo()


def integrand(x: np.ndarray) -> np.ndarray:
    return np.exp(x @ _A)


def run(*, thorough: bool = False, seed: int = SEED) -> Verdict:
    log2_ns = range(5, 15 if thorough else 13)
    replications = 100 if thorough else 32
    ns = 2 ** np.array(list(log2_ns))
    sobol_err = np.empty((len(ns), replications))
    mc_err = np.empty_like(sobol_err)
    for i, (k, child) in enumerate(
        zip(log2_ns, np.random.SeedSequence(seed).spawn(len(ns)), strict=True)
    ):
        for r, s in enumerate(child.spawn(replications)):
            sobol_seed, mc_seed = s.spawn(2)
            points = SOBOL.uniform_points(2**k, DIM, seed=sobol_seed)
            sobol_err[i, r] = integrand(points).mean() - EXACT
            mc_err[i, r] = integrand(MC.uniform_points(2**k, DIM, seed=mc_seed)).mean() - EXACT
    sobol, mc = fit_rmse_rate(ns, sobol_err.T), fit_rmse_rate(ns, mc_err.T)
    sobol_ok = sobol.slope + 3 * sobol.stderr < -1.2
    mc_ok = abs(mc.slope + 0.5) <= 5 * mc.stderr
    summary = (
        f"scrambled Sobol' slope {sobol.slope:.3f} ± {sobol.stderr:.3f} (need slope + 3 SE "
        f"< -1.2), MC slope {mc.slope:.3f} ± {mc.stderr:.3f} (need within 5 SE of -0.5); "
        f"n = 2{superscript(log2_ns[0])} to 2{superscript(log2_ns[-1])}, R={replications}"
    )
    return Verdict.decide(
        sobol_ok and mc_ok,
        summary,
        sobol_slope=sobol.slope,
        sobol_slope_se=sobol.stderr,
        mc_slope=mc.slope,
        mc_slope_se=mc.stderr,
        sobol_rmse=list(sobol.rmse),
        mc_rmse=list(mc.rmse),
        n=ns.tolist(),
        replications=replications,
    )


CLAIM = numerical_claim(
    run,
    name="sobol_rmse_rate",
    title="Scrambled Sobol' RMSE slope below -1.2; Monte Carlo slope -1/2",
    source="Owen (Ann. Stat. 1997); Matousek (1998)",
    family="qmc",
    seed=SEED,
    tolerance="3 SE (Sobol' bound) and 5 SE (MC slope), SE by the delta method over R scrambles",
    verifies=(
        "kernelapprox.sampling.qmc.Sobol.points",
        "kernelapprox.sampling.mc.MonteCarlo.points",
    ),
)
