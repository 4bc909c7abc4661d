r"""Positive random features are unbiased for the softmax kernel.

Statement
---------
For $w \sim N(0, I_d)$ and all $x, y \in \mathbb{R}^d$,
$$\mathbb{E}_w\!\left[e^{w^\top x - \|x\|^2/2}\, e^{w^\top y - \|y\|^2/2}\right] = e^{x^\top y},$$
so $\phi^+(x) = m^{-1/2} e^{-\|x\|^2/2}[e^{w_i^\top x}]_{i \le m}$ gives an unbiased estimate
$\phi^+(x)^\top \phi^+(y)$ of the softmax kernel $\mathrm{SM}(x, y) = e^{x^\top y}$.

Source
------
Choromanski et al., "Rethinking attention with Performers", ICLR 2021 (arXiv 2009.14794),
Lemma 1; DiJiang Eq. (5).

Method
------
Exact expectation with sympy for $d = 1, 2, 3$ (one-coordinate normal moment-generating
lemma proved by integration, then independence); the residual against $e^{x^\top y}$ is
simplified to 0.
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
    from kernelapprox import features, kernels

    softmax = kernels.Softmax(1.0)

    def package_term(p: np.ndarray, d: int) -> np.ndarray:
        """The package's positive map with the single frequency p[:d], at the pair (x, y)."""
        return np.array(
            [
                features.Positive.from_frequencies(softmax, row[None, :d]).pair_terms(
                    row[None, d : 2 * d], row[None, 2 * d :]
                )[0, 0]
                for row in p
            ]
        )

    gaps = {}
    dims = (1, 2, 3, 4) if thorough else (1, 2, 3)
    for d in dims:
        ws, xs, ys = vector("w", d), vector("x", d), vector("y", d)
        feature_x = sp.exp(dot(ws, xs) - dot(xs, xs) / 2)
        feature_y = sp.exp(dot(ws, ys) - dot(ys, ys) / 2)
        expectation = expect_normal(feature_x * feature_y, ws)
        residuals[f"d={d} E[φ(x) φ(y)] - exp(x·y)"] = residual(expectation, sp.exp(dot(xs, ys)))
        # the package's map, one frequency w at a time, against phi_w(x) phi_w(y) ...
        gaps[f"d={d} Positive.pair_terms"] = package_gap(
            feature_x * feature_y,
            (*ws, *xs, *ys),
            input_grid(12, 3 * d),
            lambda p, d=d: package_term(p, d),
        )
        # ... and the package's softmax kernel against the derived expectation
        gaps[f"d={d} Softmax.paired"] = package_gap(
            expectation,
            (*xs, *ys),
            input_grid(16, 2 * d),
            lambda p, d=d: softmax.paired(p[:, :d], p[:, d:]),
        )
    return residual_verdict(residuals, f"d = {', '.join(map(str, dims))}", package_gaps=gaps)


CLAIM = Claim(
    name="positive_features",
    title="Positive random features are unbiased for exp(x.y)",
    statement=docstring_section(__doc__, "Statement"),
    source="Choromanski et al. (ICLR 2021) Lemma 1; DiJiang Eq. 5",
    method="symbolic",
    expected="holds",
    family="random_features",
    run=run,
    module=__name__,
    verifies=(
        "kernelapprox.features.exponential._Exponential.log_per_frequency",
        "kernelapprox.features._base.FeatureMap.pair_terms",
        "kernelapprox.kernels.Kernel.paired",
    ),
)
