r"""Bochner's theorem for the Gaussian kernel.

Statement
---------
For $w \sim N(0, I_d)$ and every $\Delta \in \mathbb{R}^d$,
$$\mathbb{E}_w[\cos(w^\top \Delta)] = \exp(-\|\Delta\|^2 / 2),$$
which follows per coordinate from $\mathbb{E}[\cos(w_j \Delta_j)] = e^{-\Delta_j^2/2}$ and
$\mathbb{E}[\sin(w_j \Delta_j)] = 0$, then the product
$\mathbb{E}[e^{i w^\top \Delta}] = \prod_j \mathbb{E}[e^{i w_j \Delta_j}]$.
So $k(x, y) = e^{-\|x - y\|^2/2}$ is the expectation of
$\cos(w^\top x)\cos(w^\top y) + \sin(w^\top x)\sin(w^\top y)$: random Fourier features are
unbiased for the Gaussian kernel.

Source
------
Bochner's theorem; Rahimi & Recht, NIPS 2007, Eq. (2); DiJiang (Chen et al., ICML 2024),
Theorem 3.1 and Eq. (8).

Method
------
sympy integrates $\cos(w\delta)$ and $\sin(w\delta)$ against the standard normal density (one
coordinate, symbolic $\delta$). For $d = 1, 2, 3$ the expectation of
$\cos(w^\top \Delta)$ is then taken exactly by writing it as a sum of products of one-coordinate
exponentials (the normal moment-generating lemma, itself proved by integration) and the
residual against $e^{-\|\Delta\|^2/2}$ is simplified to 0.
"""

from __future__ import annotations

import numpy as np
import sympy as sp

from ._core import Claim, Verdict, docstring_section
from ._symbolic import (
    dot,
    expect_normal,
    input_grid,
    normal_density,
    normal_mgf_lemma,
    package_gap,
    residual,
    residual_verdict,
    vector,
)


def run(*, thorough: bool = False) -> Verdict:
    w = sp.Symbol("w", real=True)
    delta = sp.Symbol("delta", real=True)
    cos_1d = sp.integrate(sp.cos(w * delta) * normal_density(w), (w, -sp.oo, sp.oo))
    sin_1d = sp.integrate(sp.sin(w * delta) * normal_density(w), (w, -sp.oo, sp.oo))
    residuals = {
        "lemma E[exp(αw)] = exp(α²/2)": normal_mgf_lemma(),
        "1-D E[cos(wδ)] - exp(-δ²/2)": residual(cos_1d, sp.exp(-(delta**2) / 2)),
        "1-D E[sin(wδ)]": sp.simplify(sin_1d),
    }
    from kernelapprox import kernels

    gaussian = kernels.Gaussian(1.0)
    dims = (1, 2, 3, 4) if thorough else (1, 2, 3)
    gaps = {}
    for d in dims:
        ws, deltas = vector("w", d), vector("D", d)
        expectation = expect_normal(sp.cos(dot(ws, deltas)), ws)
        target = sp.exp(-dot(deltas, deltas) / 2)
        residuals[f"d={d} E[cos(w·Δ)] - exp(-|Δ|²/2)"] = residual(expectation, target)
        # the package's Gaussian kernel at pairs (y + D, y) against the derived E[cos(w.D)]
        grid, y = input_grid(24, d, low=-1.5, high=1.5), input_grid(24, d) * 0.7
        gaps[f"d={d} Gaussian.paired"] = package_gap(
            expectation, deltas, grid, lambda p, y=y: gaussian.paired(p + y, y)
        )
        gaps[f"d={d} Gaussian Gram diagonal"] = package_gap(
            expectation, deltas, grid, lambda p, y=y: np.diag(gaussian(p + y, y))
        )
    return residual_verdict(residuals, f"d = {', '.join(map(str, dims))}", package_gaps=gaps)


CLAIM = Claim(
    name="bochner_gaussian",
    title="Bochner's theorem for the Gaussian kernel",
    statement=docstring_section(__doc__, "Statement"),
    source="Rahimi & Recht (NIPS 2007) Eq. 2; DiJiang Thm 3.1, Eq. 8",
    method="symbolic",
    expected="holds",
    family="random_features",
    run=run,
    module=__name__,
    verifies=(
        "kernelapprox.kernels.Kernel.paired",
        "kernelapprox.kernels.Kernel._unit_gram",
        "kernelapprox.kernels.Gaussian._profile",
    ),
)
