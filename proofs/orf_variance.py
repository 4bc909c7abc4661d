r"""Orthogonal random features have lower variance than iid random features for d >= 4.

Statement
---------
Let $W = S Q$ with $Q$ a Haar-distributed orthogonal $d \times d$ matrix and $S$ a diagonal of
iid $\chi_d$ radii (so each row is $N(0, I_d)$ but rows are orthogonal), and let
$\hat K = \frac1D \sum_{i=1}^{D} \cos(w_i^\top \Delta)$ with $D = d$. Then $\hat K$ is unbiased
for $e^{-\|\Delta\|^2/2}$ and, for $d \ge 4$,
$$\operatorname{Var}_{\mathrm{ORF}}[\hat K] < \operatorname{Var}_{\mathrm{iid}}[\hat K]
= \frac{(1 - e^{-z^2})^2}{2D},\qquad z = \|\Delta\|.$$
Checked on the grid $d \in \{4, 8, 16, 32\}$, $z \in \{0.5, 1, 2\}$. (Yu et al. give
$\operatorname{Var}_{\mathrm{ORF}} \approx \operatorname{Var}_{\mathrm{iid}} -
\frac{D-1}{2dD} e^{-z^2} z^4$; at $z = 3$ that gap is below 1% and is reported, not asserted.)

Source
------
Yu, Suresh, Choromanski, Holtmann-Rice & Kumar, "Orthogonal Random Features", NIPS 2016
(arXiv 1610.09072), Theorem 1 and Figure 2.

Method
------
Experiment with the package, fixed seed: $R$ independent ORF draws per cell from the
`orthogonal` sampler (`kernelapprox.sampling.Orthogonal`: $Q$ from the QR decomposition of a
Gaussian matrix with the sign fix $Q \operatorname{diag}(\operatorname{sign} R_{ii})$,
Mezzadri 2007, and $\chi_d$ radii), each estimate the package's `sincos` map with those $D = d$
frequencies. Per cell: the mean must lie within 5 standard errors of the kernel, and
the sample variance plus 5 standard errors (fourth-moment formula) must lie below the exact
iid variance. An iid control at $d = 4$, $z = 1$ must match the exact iid variance within 5 SE.

The law the theorem assumes is checked on the same sampler ($d = 4$, $R$ draws of two stacked
blocks), each within 5 standard errors: Haar through a statistic that is not even, the first
coordinate of the first direction, $\mathbb{E}\,[w_1/\|w_1\|]_1 = 0$ (without the sign fix
LAPACK's QR makes it negative; $\cos$ is even and cannot see it); independent blocks,
$\mathbb{E}\,(u^\top v)^2 = 1/d$ for the first directions $u, v$ of the two blocks
($\operatorname{Var} = 3/(d(d+2)) - 1/d^2$; a reused block gives 1); independent radii, the
correlation of two row norms of one block is 0 (SE $1/\sqrt R$).
"""

from __future__ import annotations

import numpy as np

from kernelapprox import features, kernels
from kernelapprox.estimators.replications import mean_and_se, variance_and_se
from kernelapprox.sampling import sample_frequencies

from ._core import Verdict
from ._numerical import Checks, numerical_claim, z_score
from ._stats import uniform_directions
from ._torch import single_threaded

SEED = 20161028
DIMS = (4, 8, 16, 32)
DISTANCES = (0.5, 1.0, 2.0)
GAUSSIAN = kernels.Gaussian(1.0)


def block_estimates(frequencies: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """Estimates of ``exp(-|delta|^2/2)``, one per block of ``D`` frequencies ``(R, D, d)``.

    Each is the average of the package's ``sincos`` per-frequency terms
    ``t_i(delta, 0) = cos(w_i . delta)`` (:meth:`kernelapprox.features.FeatureMap.pair_terms`)
    over its block, i.e. ``SinCos`` with those ``D`` frequencies evaluated at ``(delta, 0)``.
    """
    R, D, d = frequencies.shape
    fm = features.SinCos.from_frequencies(GAUSSIAN, frequencies.reshape(R * D, d))
    terms = fm.pair_terms(delta[None, :], np.zeros((1, d)))
    return terms.reshape(R, D).mean(axis=1)


def law_checks(seed: np.random.SeedSequence, replications: int) -> dict[str, float]:
    """z-scores (statistic - its value under the law) / SE of the sampler's law at d = 4."""
    d = 4
    W = sample_frequencies("orthogonal", GAUSSIAN, 2 * d, d, seed=seed, replications=replications)
    directions = W / np.linalg.norm(W, axis=-1, keepdims=True)
    first = directions[:, 0, 0]  # odd statistic: mean 0 under Haar, sd 1/sqrt(d)
    cross = np.einsum("rj,rj->r", directions[:, 0], directions[:, d]) ** 2
    cross_se = np.sqrt(3 / (d * (d + 2)) - 1 / d**2) / np.sqrt(replications)
    norms = np.linalg.norm(W[:, :2], axis=-1)
    corr = np.corrcoef(norms[:, 0], norms[:, 1])[0, 1]
    first_mean, first_se = mean_and_se(first)
    return {
        "haar_first_coordinate_z": z_score(first_mean, 0.0, first_se),
        "block_independence_z": z_score(cross.mean(), 1 / d, cross_se),
        "radius_correlation_z": z_score(corr, 0.0, 1 / np.sqrt(replications)),
    }


@single_threaded
def run(*, thorough: bool = False, seed: int = SEED) -> Verdict:
    replications = 20000 if thorough else 3000
    root = np.random.SeedSequence(seed)
    children = iter(root.spawn(len(DIMS) * (len(DISTANCES) + 1) + 2))
    cells, checks = {}, Checks()
    for d in DIMS:
        for z in (*DISTANCES, 3.0):
            delta_seed, frequency_seed = next(children).spawn(2)
            delta = z * uniform_directions(np.random.default_rng(delta_seed), 1, d)[0]
            orf = sample_frequencies(
                "orthogonal", GAUSSIAN, d, d, seed=frequency_seed, replications=replications
            )
            est = block_estimates(orf, delta)
            mean, mean_se = mean_and_se(est)
            var, var_se = variance_and_se(est)
            iid_var = (1 - np.exp(-(z**2))) ** 2 / (2 * d)
            key = f"d={d} z={z}"
            cells[key] = {
                "ratio": var / iid_var,
                "ratio_se": var_se / iid_var,
                "bias_z": z_score(mean, np.exp(-(z**2) / 2), mean_se),
            }
            checks.within(cells[key]["bias_z"], 5, f"{key} biased ({cells[key]['bias_z']:.1f} SE)")
            if z in DISTANCES:
                checks.require(
                    var + 5 * var_se < iid_var,
                    f"{key} ORF/iid variance {var / iid_var:.3f} not below 1",
                )
    delta_seed, frequency_seed = next(children).spawn(2)
    delta = uniform_directions(np.random.default_rng(delta_seed), 1, 4)[0]
    iid = sample_frequencies("mc", GAUSSIAN, replications * 4, 4, seed=frequency_seed)
    control_var, control_se = variance_and_se(block_estimates(iid.reshape(-1, 4, 4), delta))
    control_exact = (1 - np.exp(-1.0)) ** 2 / 8
    control_z = z_score(control_var, control_exact, control_se)
    checks.within(control_z, 5, f"iid control off by {control_z:.1f} SE")
    law = law_checks(next(children), replications)
    for k, v in law.items():
        checks.within(v, 5, f"sampler law: {k} = {v:+.1f}")
    asserted = [v["ratio"] for k, v in cells.items() if not k.endswith("z=3.0")]
    reported = ", ".join(f"{v['ratio']:.2f}" for k, v in cells.items() if k.endswith("z=3.0"))
    summary = (
        f"Var_ORF/Var_iid in [{min(asserted):.3f}, {max(asserted):.3f}] over d in "
        f"{list(DIMS)}, z in {list(DISTANCES)} (each + 5 SE < 1), unbiased within 5 SE; "
        f"z=3 ratios {reported}"
        f" (not asserted); iid control {control_z:+.1f} SE; Haar, block independence and "
        f"radius checks {', '.join(f'{v:+.1f}' for v in law.values())} SE; R={replications}"
    )
    return checks.verdict(
        summary,
        cells=cells,
        iid_control_z=control_z,
        law=law,
        replications=replications,
    )


CLAIM = numerical_claim(
    run,
    name="orf_variance",
    title="Orthogonal random features beat iid features in variance (d >= 4)",
    source="Yu et al. (NIPS 2016) Thm 1",
    family="random_features",
    seed=SEED,
    tolerance="5 standard errors (fourth-moment SE of the variance) from R replications",
    verifies=(
        "kernelapprox.sampling.orthogonal.Orthogonal.draw",
        "kernelapprox.sampling.orthogonal.haar_orthogonal",
        "kernelapprox.sampling.orthogonal.stacked_blocks",
        "kernelapprox.kernels.SpectralMeasure.radial_ppf",
        "kernelapprox.features.trigonometric._Trigonometric.per_frequency",
    ),
)
