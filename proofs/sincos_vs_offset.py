r"""Sin/cos features are never worse than cos+offset features for the Gaussian kernel.

Statement
---------
With $D$ output features, $w_j \sim N(0, I_d)$ iid and $b_j \sim U[0, 2\pi)$, the embeddings
$\tilde z(x) = \sqrt{2/D}\,[\sin w_j^\top x, \cos w_j^\top x]_{j \le D/2}$ and
$\breve z(x) = \sqrt{2/D}\,[\cos(w_j^\top x + b_j)]_{j \le D}$ satisfy
$$\operatorname{Var}[\tilde z(x)^\top \tilde z(y)]
= \tfrac1D\big(1 + k(2\Delta) - 2k(\Delta)^2\big),\qquad
\operatorname{Var}[\breve z(x)^\top \breve z(y)]
= \tfrac1D\big(1 + \tfrac12 k(2\Delta) - k(\Delta)^2\big),$$
so their difference is $\frac1D\big(k(\Delta)^2 - \tfrac12 k(2\Delta)\big)$. For the Gaussian
kernel $k(2\Delta) = k(\Delta)^4$ and $k \in (0, 1]$, hence the difference
$\frac1D k^2(1 - k^2/2) \ge 0$: sin/cos is never worse at equal width $D$.

Source
------
Sutherland & Schneider, "On the error of random Fourier features", UAI 2015 (arXiv 1506.02785),
Propositions 1 and 2; scikit-learn's `RBFSampler` is the cos+offset embedding.

Method
------
sympy integrates the offset out over $[0, 2\pi]$ exactly and takes the normal expectations
with the moment-generating lemma ($d = 1, 2$); the two variance formulas, the identity
$k(2\Delta) = k(\Delta)^4$ and the difference are simplified to residual 0, and
`solve_univariate_inequality` shows that $k^2 - k^4/2 < 0$ has no solution in $(0, 1]$.
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


def _offset_moments() -> tuple[sp.Expr, sp.Expr, sp.Symbol, sp.Symbol]:
    """E_b of one cos+offset term and of its square, as functions of p = w.x and q = w.y."""
    b = sp.Symbol("b", real=True)
    p, q = sp.symbols("p q", real=True)
    term = 2 * sp.cos(p + b) * sp.cos(q + b)
    first = sp.integrate(term / (2 * sp.pi), (b, 0, 2 * sp.pi))
    second = sp.integrate(sp.expand(term**2) / (2 * sp.pi), (b, 0, 2 * sp.pi))
    return sp.simplify(first), sp.simplify(second), p, q


def run(*, thorough: bool = False) -> Verdict:
    n_features = sp.Symbol("D", positive=True)
    residuals: dict[str, sp.Expr] = {"lemma E[exp(αw)] = exp(α²/2)": normal_mgf_lemma()}
    first_b, second_b, p, q = _offset_moments()
    from kernelapprox.estimators import analytic

    gaps = {}
    n_out = 6  # output columns D of both maps in the package comparison
    dims = (1, 2, 3) if thorough else (1, 2)
    for d in dims:
        ws, xs, ys = vector("w", d), vector("x", d), vector("y", d)
        deltas = [x - y for x, y in zip(xs, ys, strict=True)]
        z2 = dot(deltas, deltas)
        k1, k2 = sp.exp(-z2 / 2), sp.exp(-2 * z2)  # k(Delta), k(2 Delta)
        wx, wy = dot(ws, xs), dot(ws, ys)
        # sin/cos: D/2 iid terms sin(wx)sin(wy) + cos(wx)cos(wy), each scaled by 2/D.
        term = sp.sin(wx) * sp.sin(wy) + sp.cos(wx) * sp.cos(wy)
        var_term = expect_normal(term**2, ws) - expect_normal(term, ws) ** 2
        var_sincos = (n_features / 2) * (2 / n_features) ** 2 * var_term
        # cos+offset: D iid terms 2 cos(wx+b) cos(wy+b), each scaled by 1/D.
        mean_offset = expect_normal(first_b.subs({p: wx, q: wy}), ws)
        second_offset = expect_normal(second_b.subs({p: wx, q: wy}), ws)
        var_offset = (second_offset - mean_offset**2) / n_features
        residuals[f"d={d} E[cos+offset term] - k"] = residual(mean_offset, k1)
        residuals[f"d={d} Var sin/cos - (1 + k(2Δ) - 2k²)/D"] = residual(
            var_sincos, (1 + k2 - 2 * k1**2) / n_features
        )
        residuals[f"d={d} Var cos+offset - (1 + k(2Δ)/2 - k²)/D"] = residual(
            var_offset, (1 + k2 / 2 - k1**2) / n_features
        )
        residuals[f"d={d} k(2Δ) - k(Δ)⁴"] = residual(k2, k1**4)
        # the package's two variance formulas against the derived variances, D = 6, where
        # |x - y| >= 0.6 (both are differences that cancel to O(z^4) as z -> 0)
        grid = np.hstack([input_grid(16, d, low=0.6, high=1.5), np.zeros((16, d))])

        def kernel_at(p: np.ndarray, c: float, d: int = d) -> np.ndarray:
            return np.exp(-c * np.sum((p[:, :d] - p[:, d:]) ** 2, axis=1))

        subs = {n_features: n_out}
        gaps[f"d={d} sincos_variance"] = package_gap(
            var_sincos.subs(subs),
            (*xs, *ys),
            grid,
            lambda p: analytic.sincos_variance(
                kernel_at(p, 0.5), kernel_at(p, 2.0), output_dim=n_out
            ),
        )
        gaps[f"d={d} cos_offset_variance"] = package_gap(
            var_offset.subs(subs),
            (*xs, *ys),
            grid,
            lambda p: analytic.cos_offset_variance(
                kernel_at(p, 0.5), kernel_at(p, 2.0), n_features=n_out
            ),
        )
        residuals[f"d={d} difference - k²(1 - k²/2)/D"] = residual(
            var_offset - var_sincos, k1**2 * (1 - k1**2 / 2) / n_features
        )
    kk = sp.Symbol("k", real=True)
    violations = sp.solve_univariate_inequality(
        kk**2 - kk**4 / 2 < 0, kk, relational=False
    ).intersect(sp.Interval.Lopen(0, 1))
    residuals["{k ∈ (0, 1] : k² - k⁴/2 < 0} (must be empty)"] = (
        sp.Integer(0) if violations is sp.S.EmptySet else violations
    )
    return residual_verdict(
        residuals,
        f"d = {', '.join(map(str, dims))}; the difference is ≥ 0 on k ∈ (0, 1]",
        package_gaps=gaps,
    )


CLAIM = Claim(
    name="sincos_vs_offset",
    title="Sin/cos never worse than cos+offset (Sutherland & Schneider)",
    statement=docstring_section(__doc__, "Statement"),
    source="Sutherland & Schneider (UAI 2015) Props. 1-2",
    method="symbolic",
    expected="holds",
    family="random_features",
    run=run,
    module=__name__,
    verifies=(
        "kernelapprox.estimators.analytic.sincos_variance",
        "kernelapprox.estimators.analytic.cos_offset_variance",
    ),
)
