r"""Per-frequency variance of a random Fourier feature for the Gaussian kernel.

Statement
---------
For $w \sim N(0, I_d)$, $\Delta = x - y$ and $z = \|\Delta\|$,
$$\operatorname{Var}[\cos(w^\top \Delta)] = \frac{1 + k(2\Delta)}{2} - k(\Delta)^2
= \frac{(1 - e^{-z^2})^2}{2},\qquad k(\Delta) = e^{-\|\Delta\|^2/2},$$
so the estimate $\frac1D\sum_{i \le D}\cos(w_i^\top\Delta)$ with iid frequencies has variance
$(1 - e^{-z^2})^2 / (2D)$.

Source
------
Yu et al., "Orthogonal Random Features", NIPS 2016 (arXiv 1610.09072), Lemma 1; Sutherland &
Schneider, UAI 2015 (arXiv 1506.02785), Section 2.

Method
------
Exact second and first moments with sympy for $d = 1, 2, 3$ (normal moment-generating lemma
plus independence); both the general form $(1 + k(2\Delta))/2 - k(\Delta)^2$ and the Gaussian
closed form are checked, residuals simplified to 0.
"""

from __future__ import annotations

import numpy as np
import sympy as sp

from ._core import Claim, Verdict, docstring_section
from ._symbolic import (
    dot,
    expect_normal,
    input_grid,
    normal_mgf_lemma,
    package_gap,
    residual,
    residual_verdict,
    vector,
)


def run(*, thorough: bool = False) -> Verdict:
    residuals = {"lemma E[exp(αw)] = exp(α²/2)": normal_mgf_lemma()}
    from kernelapprox.estimators import analytic

    def norms(p: np.ndarray) -> np.ndarray:
        return np.sqrt(np.sum(p**2, axis=1))

    gaps = {}
    dims = (1, 2, 3, 4) if thorough else (1, 2, 3)
    for d in dims:
        ws, deltas = vector("w", d), vector("D", d)
        z2 = dot(deltas, deltas)

        def k(scale: int, z2: sp.Expr = z2) -> sp.Expr:
            return sp.exp(-(scale**2) * z2 / 2)

        feature = sp.cos(dot(ws, deltas))
        variance = expect_normal(feature**2, ws) - expect_normal(feature, ws) ** 2
        residuals[f"d={d} Var - ((1 + k(2Δ))/2 - k(Δ)²)"] = residual(
            variance, (1 + k(2)) / 2 - k(1) ** 2
        )
        residuals[f"d={d} Var - (1 - exp(-z²))²/2"] = residual(variance, (1 - sp.exp(-z2)) ** 2 / 2)
        # the package's variance formulas against the derived Var[cos(w.D)]
        grid = input_grid(24, d, low=-1.5, high=1.5)
        gaps[f"d={d} gaussian_cos_variance"] = package_gap(
            variance, deltas, grid, lambda p: analytic.gaussian_cos_variance(norms(p))
        )
        # (1 + k2)/2 - k^2 cancels to ~z^4/2 as z -> 0: compare it where |D| >= 0.6
        gaps[f"d={d} cos_variance"] = package_gap(
            variance,
            deltas,
            input_grid(24, d, low=0.6, high=1.5),
            lambda p: analytic.cos_variance(
                np.exp(-(norms(p) ** 2) / 2), np.exp(-2 * norms(p) ** 2)
            ),
        )
    return residual_verdict(residuals, f"d = {', '.join(map(str, dims))}", package_gaps=gaps)


CLAIM = Claim(
    name="cos_variance",
    title="Per-frequency variance (1 - exp(-z^2))^2 / 2",
    statement=docstring_section(__doc__, "Statement"),
    source="Yu et al. (NIPS 2016) Lemma 1; Sutherland & Schneider (UAI 2015) Sec. 2",
    method="symbolic",
    expected="holds",
    family="random_features",
    run=run,
    module=__name__,
    verifies=(
        "kernelapprox.estimators.analytic.gaussian_cos_variance",
        "kernelapprox.estimators.analytic.cos_variance",
    ),
)
