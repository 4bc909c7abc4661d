r"""SORF blocks are orthogonal, with the law of three Hadamard-sign products.

Statement
---------
Structured orthogonal random features (SORF) use blocks
$$W = \sqrt{p}\, H D_1 H D_2 H D_3,$$
$H$ the normalised $p \times p$ Walsh-Hadamard matrix and $D_1, D_2, D_3$ independent diagonal
matrices of Rademacher signs. Every block is orthogonal with rows of norm $\sqrt p$,
$W W^\top = p I$, and its entries have the law of the three-fold product: at $p = 4$ the exact
fourth moment over all $2^{12}$ sign patterns is $E[W_{ij}^4] = 7/4$ (two products $H D_1 H D_2$
give $5/2$, a Gaussian $3$). The estimate $\cos(w^\top\Delta)$ is biased: its exact mean under
this law differs from the Gaussian kernel $e^{-\|\Delta\|^2/2}$.

Source
------
Yu, Suresh, Choromanski, Holtmann-Rice & Kumar, "Orthogonal Random Features", NIPS 2016
(arXiv 1610.09072), Section 4 (the SORF construction $\sqrt{d}\,HD_1HD_2HD_3$ and its bias).

Method
------
The reference law is enumerated here: all $2^{12}$ sign patterns of $p = d = 4$, each block
built from `scipy.linalg.hadamard`, giving the exact $E[W_{ij}^4]$ and the exact mean of
$\cos(w^\top\Delta)$. The package's sampler (`kernelapprox.sampling.StructuredOrthogonal`) draws
$R$ independent blocks; (i) $\max |W W^\top / p - I| \le 10^{-12}$ for every block; (ii) the
mean of $W_{ij}^4$ over the $R$ blocks (one value per block: the average over its 16 entries)
lies within 5 standard errors of the exact value; (iii) so does the mean of the
$\cos(w^\top \Delta)$ estimate (the average over the block's rows) at a fixed $\Delta$, and the
exact SORF mean is reported against the Gaussian kernel (the bias).
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np
from scipy.linalg import hadamard

from kernelapprox.estimators.replications import mean_and_se
from kernelapprox.kernels import Gaussian
from kernelapprox.sampling.orthogonal import SORFBiasWarning, StructuredOrthogonal

from ._core import Verdict
from ._numerical import Checks, numerical_claim, z_score

SEED = 20161205
P = 4
DELTA = np.array([0.7, -0.3, 0.5, 0.2])


def exact_sorf_law(p: int = P, products: int = 3) -> np.ndarray:
    """Every block ``sqrt(p) H D_1 ... H D_products``, one per sign pattern: ``(2^(p k), p, p)``."""
    H = hadamard(p).astype(np.float64) / np.sqrt(p)
    patterns = np.array(list(itertools.product((-1.0, 1.0), repeat=products * p)))
    blocks = np.empty((patterns.shape[0], p, p))
    for n, signs in enumerate(patterns):
        block = np.sqrt(p) * np.eye(p)
        for k in range(products):
            block = block @ H @ np.diag(signs[k * p : (k + 1) * p])
        blocks[n] = block
    return blocks


def run(*, thorough: bool = False, seed: int = SEED) -> Verdict:
    law = exact_sorf_law()
    exact_m4 = float(np.mean(law**4))
    exact_cos = float(np.mean(np.cos(law @ DELTA)))
    kernel_value = float(np.exp(-0.5 * DELTA @ DELTA))
    replications = 20000 if thorough else 4000
    measure = Gaussian().spectral_measure
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SORFBiasWarning)  # the bias is what is measured here
        W = StructuredOrthogonal().frequencies(
            measure, P, P, seed=np.random.SeedSequence(seed), replications=replications
        )
    checks = Checks()
    gram = np.einsum("rij,rkj->rik", W, W) / P
    orth = float(np.max(np.abs(gram - np.eye(P))))
    checks.require(orth <= 1e-12, f"blocks not orthogonal with row norm √p: {orth:.2e}")
    m4, m4_se = mean_and_se(np.mean(W**4, axis=(1, 2)))
    z_m4 = z_score(m4, exact_m4, m4_se)
    checks.within(z_m4, 5, f"E[Wᵢⱼ⁴] {m4:.4f} is {z_m4:+.1f} SE from the exact {exact_m4:.4f}")
    cos_mean, cos_se = mean_and_se(np.mean(np.cos(W @ DELTA), axis=1))
    z_cos = z_score(cos_mean, exact_cos, cos_se)
    checks.within(
        z_cos,
        5,
        f"mean cos estimate {cos_mean:.5f} is {z_cos:+.1f} SE from the exact {exact_cos:.5f}",
    )
    return checks.verdict(
        f"{replications} blocks orthogonal to {orth:.1e}; E[W⁴] {m4:.4f} ± {m4_se:.4f} vs exact "
        f"{exact_m4:.4f} ({z_m4:+.1f} SE); mean cos {cos_mean:.5f} vs exact {exact_cos:.5f} "
        f"({z_cos:+.1f} SE); exact SORF bias {exact_cos - kernel_value:+.5f}",
        orthogonality=orth,
        fourth_moment=m4,
        fourth_moment_se=m4_se,
        fourth_moment_exact=exact_m4,
        z_fourth_moment=z_m4,
        cos_mean=cos_mean,
        cos_se=cos_se,
        cos_exact=exact_cos,
        z_cos=z_cos,
        kernel=kernel_value,
        bias=exact_cos - kernel_value,
        replications=replications,
    )


CLAIM = numerical_claim(
    run,
    name="sorf_law",
    title="SORF blocks sqrt(p) H D1 H D2 H D3: orthogonal, with the three-product law",
    source="Yu et al., Orthogonal Random Features (NIPS 2016), Sec. 4",
    family="random_features",
    seed=SEED,
    tolerance="orthogonality 1e-12; moments within 5 standard errors of R blocks",
    verifies=(
        "kernelapprox.sampling.orthogonal.StructuredOrthogonal.draw",
        "kernelapprox.sampling.orthogonal.StructuredOrthogonal.frequencies",
    ),
)
