r"""DiJiang Theorem 3.2 as released (standard-normal radii) does not converge to the kernel.

Statement
---------
Claim tested: Theorem 3.2's estimate is unbiased (in the limit $m \to \infty$) for
$K_G(x, y) = e^{-\|x - y\|^2/2}$ when the radii are drawn as in the released code,
$r_i = \Phi_{N(0,1)}^{-1}(t_i)$, $t_i \sim U(0, 1)$. Refuted: with uniform directions the
estimate converges instead to
$$L(x, y) = e^{-\|x\|^2 - \|y\|^2}\; {}_1F_1\!\Big(\tfrac12; \tfrac d2; \tfrac{\|x + y\|^2}{2}\Big)
\ne K_G(x, y),$$
because $\mathbb{E}_r[e^{r c}] = e^{c^2/2}$ for $r \sim N(0,1)$ and
$(v^\top s)^2/\|s\|^2 \sim \mathrm{Beta}(\tfrac12, \tfrac{d-1}2)$ for $v$ uniform on $S^{d-1}$.

Source
------
YuchuanTian/DiJiang `modeling_gpt_neox_dijiang.py`, `_build_projection`
(`torch.distributions.Normal(0, 1).icdf(torch.rand(...))`); DiJiang Theorem 3.2, Eq. 9.

Method
------
Experiment with the package's Gaussian positive map (`features.Positive`) on the released
code's frequencies: standard-normal inverse-CDF radii of Monte Carlo uniforms times the uniform
directions of the package's spherical sampler (assembled in `proofs/_pff.py`, the one
construction that is not a package sampler); fixed seed, same inputs as `dijiang_pff_chi_radii`
($d = 16$, $\|x\| = \|y\| = 0.8$): for $m$ up to 4096 with $R$ replications, the counterexample
is that the mean estimate at the largest $m$ is more than 10 standard errors away from $K_G$
while lying within 5 standard errors of the predicted limit $L$ (the claim fails for the reason
stated, not by noise).
"""

from __future__ import annotations

import numpy as np

from kernelapprox.estimators.replications import mean_and_se

from ._core import Verdict
from ._numerical import numerical_claim, z_score
from ._pff import (
    gaussian_kernel,
    input_pair,
    normal_radii_limit,
    pff_estimate,
    pff_frequencies,
)
from ._torch import single_threaded

#: The root seed of the replications; the inputs come from ``SEED - 1`` (the inputs of
#: ``dijiang_pff_chi_radii``).
SEED = 20240330
DIM, NORM = 16, 0.8
FEATURES = (64, 1024, 4096)


@single_threaded
def run(*, thorough: bool = False, seed: int = SEED) -> Verdict:
    replications = 400 if thorough else 100
    x, y = input_pair(seed - 1, DIM, NORM)
    target, limit = gaussian_kernel(x, y), normal_radii_limit(x, y)
    root = np.random.SeedSequence(seed)
    rows = []
    for m, child in zip(FEATURES, root.spawn(len(FEATURES)), strict=True):
        estimates = np.array(
            [
                pff_estimate(x, y, pff_frequencies(s, m, DIM, radial="normal"))
                for s in child.spawn(replications)
            ]
        )
        mean, se = mean_and_se(estimates)
        rows.append(
            {
                "m": m,
                "mean": mean,
                "se": se,
                "z_vs_K_G": z_score(mean, target, se),
                "z_vs_limit": z_score(mean, limit, se),
            }
        )
    last = rows[-1]
    refuted = abs(last["z_vs_K_G"]) > 10 and abs(last["z_vs_limit"]) <= 5
    summary = (
        f"d={DIM}: at m={last['m']} the estimate is {last['mean']:.4f} ± {last['se']:.4f} "
        f"vs K_G={target:.4f} ({abs(last['z_vs_K_G']):.0f} SE away) and the predicted limit "
        f"₁F₁ form {limit:.4f} ({abs(last['z_vs_limit']):.1f} SE); K_G/limit = "
        f"{target / limit:.2f}; R={replications}"
    )
    status = "refuted" if refuted else "fails"
    return Verdict(
        status,
        summary,
        {"dim": DIM, "K_G": target, "limit": limit, "rows": rows, "replications": replications},
    )


CLAIM = numerical_claim(
    run,
    name="dijiang_pff_normal_radii",
    title="DiJiang Theorem 3.2 with the released code's normal radii is biased",
    source="YuchuanTian/DiJiang _build_projection; DiJiang Thm 3.2, Eq. 9",
    expected="refuted",
    family="dijiang",
    seed=SEED,
    tolerance="more than 10 SE from K_G and within 5 SE of the predicted limit",
    verifies=(
        "kernelapprox.features.exponential._Exponential.log_per_frequency",
        "kernelapprox.kernels.gaussian_softmax_log_factor",
        "kernelapprox.kernels.SpectralMeasure.ppf",
        "kernelapprox.sampling.spherical.Spherical.draw",
    ),
)
