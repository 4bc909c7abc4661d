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
Experiment (numpy, fixed seed): $R$ independent ORF draws per cell ($Q$ from the QR
decomposition of a Gaussian matrix with the sign fix $Q \operatorname{diag}(\operatorname{sign}
R_{ii})$, Mezzadri 2007). Per cell: the mean must lie within 5 standard errors of the kernel, and
the sample variance plus 5 standard errors (fourth-moment formula) must lie below the exact
iid variance. An iid control at $d = 4$, $z = 1$ must match the exact iid variance within 5 SE.
"""

from __future__ import annotations

import numpy as np

from proofs._core import Claim, Verdict, docstring_section
from proofs._stats import mean_and_se, uniform_directions, variance_and_se

SEED = 20161028
DIMS = (4, 8, 16, 32)
DISTANCES = (0.5, 1.0, 2.0)


def haar_orthogonal(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    """``n`` Haar-distributed orthogonal ``d x d`` matrices (QR with the sign fix)."""
    q, r = np.linalg.qr(rng.standard_normal((n, d, d)))
    return q * np.sign(np.diagonal(r, axis1=1, axis2=2))[:, None, :]


def orf_estimates(rng: np.random.Generator, n: int, delta: np.ndarray) -> np.ndarray:
    """``n`` independent ORF estimates of ``exp(-|delta|^2/2)`` with ``D = d`` features."""
    d = delta.size
    frequencies = np.sqrt(rng.chisquare(d, (n, d)))[:, :, None] * np.swapaxes(
        haar_orthogonal(rng, n, d), 1, 2
    )
    return np.cos(frequencies @ delta).mean(axis=1)


def iid_estimates(rng: np.random.Generator, n: int, delta: np.ndarray) -> np.ndarray:
    d = delta.size
    return np.cos(rng.standard_normal((n, d, d)) @ delta).mean(axis=1)


def run(*, thorough: bool = False) -> Verdict:
    replications = 20000 if thorough else 3000
    root = np.random.SeedSequence(SEED)
    children = iter(root.spawn(len(DIMS) * (len(DISTANCES) + 1) + 1))
    cells, failures = {}, []
    for d in DIMS:
        for z in (*DISTANCES, 3.0):
            rng = np.random.default_rng(next(children))
            delta = z * uniform_directions(rng, 1, d)[0]
            est = orf_estimates(rng, replications, delta)
            mean, mean_se = mean_and_se(est)
            var, var_se = variance_and_se(est)
            iid_var = (1 - np.exp(-(z**2))) ** 2 / (2 * d)
            key = f"d={d} z={z}"
            cells[key] = {
                "ratio": var / iid_var,
                "ratio_se": var_se / iid_var,
                "bias_z": (mean - np.exp(-(z**2) / 2)) / mean_se,
            }
            if abs(cells[key]["bias_z"]) > 5:
                failures.append(f"{key} biased ({cells[key]['bias_z']:.1f} SE)")
            if z in DISTANCES and var + 5 * var_se >= iid_var:
                failures.append(f"{key} ORF/iid variance {var / iid_var:.3f} not below 1")
    rng = np.random.default_rng(next(children))
    delta = uniform_directions(rng, 1, 4)[0]
    control_var, control_se = variance_and_se(iid_estimates(rng, replications, delta))
    control_exact = (1 - np.exp(-1.0)) ** 2 / 8
    control_z = (control_var - control_exact) / control_se
    if abs(control_z) > 5:
        failures.append(f"iid control off by {control_z:.1f} SE")
    asserted = [v["ratio"] for k, v in cells.items() if not k.endswith("z=3.0")]
    reported = ", ".join(f"{v['ratio']:.2f}" for k, v in cells.items() if k.endswith("z=3.0"))
    summary = (
        f"Var_ORF/Var_iid in [{min(asserted):.3f}, {max(asserted):.3f}] over d in "
        f"{list(DIMS)}, z in {list(DISTANCES)} (each + 5 SE < 1), unbiased within 5 SE; "
        f"z=3 ratios {reported}"
        f" (not asserted); iid control {control_z:+.1f} SE; R={replications}"
    )
    if failures:
        summary = "; ".join(failures)
    return Verdict.decide(
        not failures, summary, cells=cells, iid_control_z=control_z, replications=replications
    )


CLAIM = Claim(
    name="orf_variance",
    title="Orthogonal random features beat iid features in variance (d >= 4)",
    statement=docstring_section(__doc__, "Statement"),
    source="Yu et al. (NIPS 2016) Thm 1",
    method="numerical",
    expected="holds",
    family="random_features",
    run=run,
    module=__name__,
    seed=SEED,
    tolerance="5 standard errors (fourth-moment SE of the variance) from R replications",
    verifies=("kernelapprox.sampling",),
)
