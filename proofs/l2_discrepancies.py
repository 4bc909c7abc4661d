r"""The package's L2 discrepancies are Warnock's and Hickernell's closed forms.

Statement
---------
For points $x_1, \dots, x_n \in [0, 1]^d$ with equal weights, the squared L2-star discrepancy
(Warnock's formula), the centred and the wrap-around L2 discrepancies are
$$D_*^2 = 3^{-d} - \frac{2}{n}\sum_i \prod_k \frac{1 - x_{ik}^2}{2}
+ \frac{1}{n^2}\sum_{i,j} \prod_k \bigl(1 - \max(x_{ik}, x_{jk})\bigr),$$
$$D_C^2 = \Bigl(\tfrac{13}{12}\Bigr)^d - \frac2n \sum_i \prod_k
\Bigl(1 + \tfrac12 c_{ik} - \tfrac12 c_{ik}^2\Bigr) + \frac{1}{n^2}\sum_{i,j}\prod_k
\Bigl(1 + \tfrac12 c_{ik} + \tfrac12 c_{jk} - \tfrac12 |x_{ik} - x_{jk}|\Bigr),$$
$c_{ik} = |x_{ik} - \tfrac12|$, and
$D_W^2 = -(4/3)^d + n^{-2}\sum_{i,j}\prod_k \bigl(\tfrac32 - |x_{ik} - x_{jk}|
(1 - |x_{ik} - x_{jk}|)\bigr)$. A weighted point set with weights $\xi_i = c_i / \sum_j c_j$
for integers $c_i$ has the discrepancy of the unweighted set holding $x_i$ $c_i$ times.

Source
------
Warnock, "Computational investigations of low-discrepancy point sets", 1972; Hickernell,
"A generalized discrepancy and quadrature error bound", Math. Comp. 67 (1998) (centred and
wrap-around discrepancies); `scipy.stats.qmc.discrepancy` implements all three.

Method
------
The package's `l2_star`, `centered` and `wrap_around` against `scipy.stats.qmc.discrepancy`
(`"L2-star"`, which returns $D_*$, `"CD"` and `"WD"`, which return $D^2$) on seeded uniform
point sets, $d = 1, 2, 3, 5$, $n = 7, 32$: the squared values must agree to $10^{-12} (4/3)^d$
absolute (the rounding allowance of sums of $n^2$ terms of size at most $(4/3)^d$); and with
integer multiplicities $c_i \in \{1, 2, 3\}$ the weighted discrepancy must equal the one of the
repeated point set, to the same allowance.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import qmc

from kernelapprox.discrepancy import centered, l2_star, wrap_around

from ._core import Verdict
from ._numerical import Checks, numerical_claim

SEED = 19981001
RTOL = 1e-12
#: Package function and the scipy method with the power of D it returns.
METHODS = {"l2_star": (l2_star, "L2-star", 1), "centered": (centered, "CD", 2),
           "wrap_around": (wrap_around, "WD", 2)}  # fmt: skip


def run(*, thorough: bool = False, seed: int = SEED) -> Verdict:
    checks = Checks()
    gaps: dict[str, float] = {}
    dims, sizes = (1, 2, 3, 5), (7, 32)
    children = iter(np.random.SeedSequence(seed).spawn(len(dims) * len(sizes)))
    for d in dims:
        allowance = RTOL * (4.0 / 3.0) ** d
        for n in sizes:
            rng = np.random.default_rng(next(children))
            x = rng.random((n, d))
            counts = rng.integers(1, 4, n)
            repeated = np.repeat(x, counts, axis=0)
            for name, (package, method, power) in METHODS.items():
                value = package(x, squared=True)
                reference = qmc.discrepancy(x, method=method, workers=1) ** (2 // power)
                weighted = package(x, weights=counts / counts.sum(), squared=True)
                expanded = package(repeated, squared=True)
                for what, gap in (
                    (f"{name} d={d} n={n} vs scipy", abs(value - reference) / allowance),
                    (
                        f"{name} d={d} n={n} weighted vs repeated",
                        abs(weighted - expanded) / allowance,
                    ),
                ):
                    gaps[what] = gap * RTOL
                    checks.require(
                        gap <= 1.0, f"{what}: gap {gap * allowance:.1e} above {allowance:.1e}"
                    )
    worst = max(gaps.values())
    return checks.verdict(
        f"l2_star, centered and wrap_around equal scipy's and their repeated-point forms in "
        f"{len(gaps)} cases, worst gap {worst:.1e} (4/3)ᵈ (limit {RTOL:.0e} (4/3)ᵈ)",
        gaps=gaps,
    )


CLAIM = numerical_claim(
    run,
    name="l2_discrepancies",
    title="L2-star, centred and wrap-around discrepancies: Warnock's and Hickernell's forms",
    source="Warnock (1972); Hickernell, Math. Comp. 67 (1998); scipy.stats.qmc.discrepancy",
    family="qmc",
    seed=SEED,
    tolerance="1e-12 (4/3)ᵈ absolute on the squared discrepancies",
    verifies=(
        "kernelapprox.discrepancy.l2_star",
        "kernelapprox.discrepancy.centered",
        "kernelapprox.discrepancy.wrap_around",
    ),
)
