r"""What DiJiang's released feature map estimates: an additive kernel.

Statement
---------
Let $C$ be the orthonormal DCT-II matrix, $a = C^\top q$, $b = C^\top k$ (so $a^\top b =
q^\top k$), and let $t_1, \dots, t_d$ be iid $N(0, 1)$ (the released code draws
$t_j = \Phi^{-1}(u_j)$, $u_j \sim U(0, 1)$). The unnormalised released features
$f_j(x) = e^{t_j (C^\top x)_j}$, $j \le d$, satisfy
$$\mathbb{E}_t\Big[\sum_{j=1}^d f_j(q) f_j(k)\Big] = \sum_{j=1}^d e^{(a_j + b_j)^2/2}
= \sum_{j=1}^d e^{a_j^2/2}\, e^{b_j^2/2}\, e^{a_j b_j},$$
an additive (per DCT coordinate) kernel, whereas $e^{q^\top k} = \prod_j e^{a_j b_j}$ is a product.

Source
------
YuchuanTian/DiJiang (HEAD 3459531), `modeling_gpt_neox_dijiang.py`: `_build_projection`
(`Normal(0,1).icdf(torch.rand)`, `dct(eye, norm='ortho')`) and `_attn`; DiJiang Eq. 12.

Method
------
sympy takes the expectation over $t$ exactly (normal moment-generating lemma, independence,
linearity) for $d = 1, \dots, 4$ and simplifies the residual against both forms to 0.
That the additive kernel is not $e^{q^\top k}$ (up to any constant) is the separate claim
`dijiang_released_not_softmax`.
"""

from __future__ import annotations

import numpy as np
import sympy as sp
import torch

from ._core import Claim, Verdict, docstring_section
from ._symbolic import (
    expect_normal,
    input_grid,
    normal_mgf_lemma,
    package_gap,
    residual,
    residual_verdict,
    vector,
)

#: Seed of the package maps whose drawn radii t and signs the comparison reads back.
MAP_SEED = 3459531


def released_kernel(a: list[sp.Expr], b: list[sp.Expr]) -> sp.Expr:
    """The kernel the released map estimates, sum_j exp((a_j + b_j)^2 / 2)."""
    return sum((sp.exp((x + y) ** 2 / 2) for x, y in zip(a, b, strict=True)), sp.Integer(0))


def dct2_matrix(d: int) -> np.ndarray:
    """The orthonormal DCT-II matrix from its formula, ``C_ji = s_j cos(pi (2i + 1) j / 2d)``."""
    i = np.arange(d)
    j = i[:, None]
    scale = np.where(j == 0, np.sqrt(1.0 / d), np.sqrt(2.0 / d))
    return scale * np.cos(np.pi * (2 * i[None, :] + 1) * j / (2 * d))


def _package_gap(ts: tuple, a: tuple, b: tuple, estimate: sp.Expr, d: int) -> float:
    """The package's ``dct_released`` map against the released features for its drawn ``t``.

    The package computes ``softmax(t * (C^T (s * x)))`` (random signs ``s``); with the drawn
    ``t`` substituted, ``sum_j f_j(q) f_j(k) / (sum_j f_j(q) sum_j f_j(k))`` at
    ``a = C^T (s q)``, ``b = C^T (s k)`` must equal the map's ``gram(q, k)``.
    """
    from kernelapprox import features, kernels

    fm = features.make("dct_released", kernels.Softmax(1.0), d, dim=d, seed=MAP_SEED + d)
    tensors = fm.tensors(torch.device("cpu"), torch.float64)
    radii = tensors["radii"].numpy().reshape(-1)
    signs = tensors["signs"].numpy().reshape(-1)
    subs = dict(zip(ts, (sp.Float(float(r), 30) for r in radii), strict=True))
    za = sum((sp.exp(t * x) for t, x in zip(ts, a, strict=True)), sp.Integer(0))
    zb = sum((sp.exp(t * y) for t, y in zip(ts, b, strict=True)), sp.Integer(0))
    normalised = (estimate / (za * zb)).subs(subs)
    C = dct2_matrix(d)

    def package(p: np.ndarray) -> np.ndarray:
        q, k = signs * (p[:, :d] @ C.T), signs * (p[:, d:] @ C.T)  # invert a = C^T (s q)
        return np.array([fm.gram(qi[None], ki[None])[0, 0] for qi, ki in zip(q, k, strict=True)])

    return package_gap(normalised, (*a, *b), input_grid(12, 2 * d), package)


def run(*, thorough: bool = False) -> Verdict:
    residuals: dict[str, sp.Expr] = {"lemma E[exp(αw)] = exp(α²/2)": normal_mgf_lemma()}
    gaps = {}
    dims = range(1, 7 if thorough else 5)
    for d in dims:
        ts, a, b = vector("t", d), vector("a", d), vector("b", d)
        estimate = sum(
            (sp.exp(t * x) * sp.exp(t * y) for t, x, y in zip(ts, a, b, strict=True)),
            sp.Integer(0),
        )
        expectation = expect_normal(estimate, ts)
        residuals[f"d={d} Eₜ - Σ exp((a + b)²/2)"] = residual(expectation, released_kernel(a, b))
        factored = sum(
            (
                sp.exp(x**2 / 2) * sp.exp(y**2 / 2) * sp.exp(x * y)
                for x, y in zip(a, b, strict=True)
            ),
            sp.Integer(0),
        )
        residuals[f"d={d} Eₜ - Σ exp(a²/2) exp(b²/2) exp(ab)"] = residual(expectation, factored)
        if d >= 2:
            gaps[f"d={d} dct_released gram"] = _package_gap(ts, a, b, estimate, d)
    return residual_verdict(residuals, f"d = 1..{max(dims)}", package_gaps=gaps)


CLAIM = Claim(
    name="dijiang_released_kernel",
    title="DiJiang's released map estimates an additive kernel",
    statement=docstring_section(__doc__, "Statement"),
    source="YuchuanTian/DiJiang modeling_gpt_neox_dijiang.py (_build_projection, _attn)",
    method="symbolic",
    expected="holds",
    family="dijiang",
    run=run,
    module=__name__,
    verifies=(
        "kernelapprox.features.dct.DCTReleased.log_per_frequency",
        "kernelapprox.features.dct.dct3_ortho",
    ),
)
