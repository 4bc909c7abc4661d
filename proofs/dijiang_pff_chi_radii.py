r"""DiJiang Theorem 3.2 with chi_d radii: the PFF estimate converges to the Gaussian kernel.

Statement
---------
With $t_i \sim U(0, 1)$, $\Phi^{-1}$ the inverse CDF of the $\chi_d$ distribution and
directions $v_i$ uniform on $S^{d-1}$, the positive fixed features
$\phi(x) = \frac{e^{-\|x\|^2}}{\sqrt m}\big[e^{\Phi^{-1}(t_i)\, x^\top v_i}\big]_{i \le m}$
satisfy
$$\mathbb{E}\big[\phi(x)^\top \phi(y)\big] = e^{-\|x\|^2 - \|y\|^2}\, e^{\|x + y\|^2/2}
= e^{-\|x - y\|^2/2} = K_G(x, y),$$
and $\phi(x)^\top\phi(y) \to K_G(x, y)$ as $m \to \infty$ with RMSE $O(m^{-1/2})$.

Source
------
DiJiang (Chen et al., ICML 2024, arXiv 2403.19928), Theorem 3.2, Eq. 9 and Appendix A
(Eqs. 15-20); the radial law must be $\chi_d$ for $r v \sim N(0, I_d)$.

Method
------
Experiment with the package's Gaussian positive map (`features.Positive`, which is exactly
$e^{w^\top x - \|x\|^2}$) on frequencies from its spherical-radial sampler with Monte Carlo
points (`sampling.Spherical`: $\chi_d$ inverse-CDF radius, uniform direction), fixed seed, at
$d = 16$, $\|x\| = \|y\| = 0.8$, with
$m \in \{16, 64, 256, 1024, 4096\}$ and $R$ independent replications per $m$
(`SeedSequence.spawn`): at every $m$ the mean estimate must lie within 5 standard errors of
$K_G$; the fitted log-log slope of the RMSE must be within 5 standard errors of $-1/2$; and the
relative RMSE at the largest $m$ must be below 5%.
"""

from __future__ import annotations

import numpy as np

from kernelapprox.estimators.rates import fit_rmse_rate
from kernelapprox.estimators.replications import mean_and_se

from ._core import Verdict
from ._numerical import numerical_claim, z_score
from ._pff import gaussian_kernel, input_pair, pff_estimate, pff_frequencies
from ._torch import single_threaded

SEED = 20240329
DIM, NORM = 16, 0.8
FEATURES = (16, 64, 256, 1024, 4096)


@single_threaded
def run(*, thorough: bool = False, seed: int = SEED) -> Verdict:
    replications = 400 if thorough else 100
    x, y = input_pair(seed, DIM, NORM)
    target = gaussian_kernel(x, y)
    root = np.random.SeedSequence(seed)
    errors, z_scores = [], []
    for m, child in zip(FEATURES, root.spawn(len(FEATURES)), strict=True):
        estimates = np.array(
            [
                pff_estimate(x, y, pff_frequencies(s, m, DIM, radial="chi"))
                for s in child.spawn(replications)
            ]
        )
        mean, se = mean_and_se(estimates)
        z_scores.append(z_score(mean, target, se))
        errors.append(estimates - target)
    fit = fit_rmse_rate(np.array(FEATURES), np.array(errors).T)
    rel_rmse = fit.rmse[-1] / target
    unbiased = all(abs(z) <= 5 for z in z_scores)
    rate_ok = abs(fit.slope + 0.5) <= 5 * fit.stderr
    ok = unbiased and rate_ok and rel_rmse < 0.05
    summary = (
        f"d={DIM}, K_G={target:.4f}: mean within {max(abs(z) for z in z_scores):.1f} SE of K_G "
        f"at every m (limit 5); RMSE slope {fit.slope:.3f} ± {fit.stderr:.3f} (target -0.5, 5 SE); "
        f"relative RMSE {rel_rmse:.3f} at m={FEATURES[-1]} (limit 0.05); R={replications}"
    )
    return Verdict.decide(
        ok,
        summary,
        dim=DIM,
        target=target,
        features=list(FEATURES),
        z_scores=z_scores,
        rmse=list(fit.rmse),
        slope=fit.slope,
        slope_se=fit.stderr,
        relative_rmse_at_max_m=rel_rmse,
        replications=replications,
    )


CLAIM = numerical_claim(
    run,
    name="dijiang_pff_chi_radii",
    title="DiJiang Theorem 3.2 with chi_d radii converges to the Gaussian kernel",
    source="DiJiang (ICML 2024) Thm 3.2, Eq. 9, App. A",
    family="dijiang",
    seed=SEED,
    tolerance="5 standard errors from independent replications (mean and slope); 5% rel. RMSE",
    verifies=(
        "kernelapprox.features.exponential._Exponential.log_per_frequency",
        "kernelapprox.kernels.gaussian_softmax_log_factor",
        "kernelapprox.kernels.SpectralMeasure.radial_ppf",
        "kernelapprox.sampling.spherical.Spherical.draw",
    ),
)
