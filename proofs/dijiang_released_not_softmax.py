r"""DiJiang's released feature map is not an estimator of the softmax kernel for $d > 1$.

Statement
---------
Claim tested (implicit in DiJiang Eqs. 9-13 and the released code): with $a = C^\top q$,
$b = C^\top k$ ($C$ the orthonormal DCT, $m = d$ fixed directions) and iid $t_j \sim N(0, 1)$, the
features $f_j(x) = e^{-\|x\|^2/2} e^{t_j (C^\top x)_j}$ give, up to a constant factor $c > 0$, an
unbiased estimate of $e^{q^\top k}$:
$$\mathbb{E}_t\Big[\sum_{j=1}^d f_j(q) f_j(k)\Big] \overset{?}{=} c\, e^{q^\top k}
\quad\text{for all } q, k.$$
Refuted for every $d > 1$: the ratio
$R(a, b) = e^{-(\|a\|^2 + \|b\|^2)/2}\sum_j e^{(a_j + b_j)^2/2} / e^{a^\top b}$ equals $d$ at
$a = b = 0$ but $1 + (d - 1)e^{-2s^2}$ at $a = b = s e_1$. The same holds without the
$e^{-\|x\|^2/2}$ prefactor (as released) and for the Gaussian-kernel target
$e^{-\|q - k\|^2/2}$. For $d = 1$ the identity holds exactly (sanity check of the method).

Source
------
DiJiang (Chen et al., ICML 2024) Eqs. 9 and 12 and Sec. 3.3 ("the Gaussian kernel can be
regarded as $e^{x^\top y}$"); YuchuanTian/DiJiang `modeling_gpt_neox_dijiang.py`.

Method
------
Exact counterexample with sympy: the expectation comes from the closed form proved in
`dijiang_released_kernel`; ratios at $a = b = 0$ and $a = b = e_1$ are computed exactly for
$d = 2, 3, 4, 8$ and their difference is shown to be nonzero (sympy decides `is_zero` is False),
for three targets/variants; for $d = 1$ the ratio with the prefactor is identically 1.
"""

from __future__ import annotations

import sympy as sp
import torch

from ._core import Claim, Verdict, docstring_section
from ._symbolic import residual, vector
from .dijiang_released_kernel import released_kernel


def _variants(a: list[sp.Expr], b: list[sp.Expr]) -> dict[str, sp.Expr]:
    """Ratio of the expected released estimate to its supposed target, for three variants."""
    aa = sum((x**2 for x in a), sp.Integer(0))
    bb = sum((y**2 for y in b), sp.Integer(0))
    ab = sum((x * y for x, y in zip(a, b, strict=True)), sp.Integer(0))
    with_prefactor = sp.exp(-(aa + bb) / 2) * released_kernel(a, b)
    return {
        "prefactor exp(-|x|²/2), target exp(q·k)": with_prefactor / sp.exp(ab),
        "as released (no prefactor), target exp(q·k)": released_kernel(a, b) / sp.exp(ab),
        "prefactor, target Gaussian exp(-|q - k|²/2)": with_prefactor
        / sp.exp(-(aa + bb - 2 * ab) / 2),
    }


def run(*, thorough: bool = False) -> Verdict:
    dims = (2, 3, 4, 8, 16, 64) if thorough else (2, 3, 4, 8)
    counterexamples = {}
    all_refuted = True
    for d in dims:
        zero = [sp.Integer(0)] * d
        e1 = [sp.Integer(1)] + [sp.Integer(0)] * (d - 1)
        at_zero, at_e1 = _variants(zero, zero), _variants(e1, e1)
        for variant in at_zero:
            gap = sp.simplify(at_zero[variant] - at_e1[variant])
            refuted = gap.is_zero is False
            all_refuted &= refuted
            counterexamples[f"d={d} {variant}"] = {
                "ratio at a=b=0": str(sp.simplify(at_zero[variant])),
                "ratio at a=b=e1": str(sp.simplify(at_e1[variant])),
                "difference": f"{float(gap):.6g}",
            }
    # The counterexample in input space: the package's DCT maps q = C e_1 to a = C^T q = e_1.
    from kernelapprox.features import dct3_ortho, dct_matrix

    input_gaps = []
    for d in dims:
        q = torch.as_tensor(dct_matrix(d)[:, 0])
        e1 = torch.zeros(d, dtype=torch.float64)
        e1[0] = 1.0
        input_gaps.append(float((dct3_ortho(q[None]) - e1).abs().max()))
    all_refuted &= max(input_gaps) <= 1e-12
    # Sanity check of the method: for d = 1 the prefactored map is exactly unbiased.
    a1, b1 = vector("a", 1), vector("b", 1)
    d1 = residual(_variants(list(a1), list(b1))["prefactor exp(-|x|²/2), target exp(q·k)"], 1)
    first = counterexamples[f"d={dims[0]} prefactor exp(-|x|²/2), target exp(q·k)"]
    summary = (
        f"no constant c works for d in {list(dims)}: e.g. d={dims[0]} ratio "
        f"{first['ratio at a=b=0']} at q = k = 0 vs {first['ratio at a=b=e1']} at q = k = e₁ "
        f"(all 3 variants), at the inputs q = k = C e₁ (package DCT: Cᵀq = e₁ to "
        f"{max(input_gaps):.0e}); d=1 residual {d1}"
    )
    status = "refuted" if all_refuted and d1 == 0 else "fails"
    if status == "fails":
        summary = f"counterexample incomplete (all refuted: {all_refuted}; d=1 residual {d1})"
    evidence = {"counterexamples": counterexamples, "d1_residual": str(d1), "dct_gaps": input_gaps}
    return Verdict(status, summary, evidence)


CLAIM = Claim(
    name="dijiang_released_not_softmax",
    title="DiJiang's released map does not estimate exp(q.k) for d > 1",
    statement=docstring_section(__doc__, "Statement"),
    source="DiJiang Eqs. 9, 12; YuchuanTian/DiJiang modeling_gpt_neox_dijiang.py",
    method="refuted",
    expected="refuted",
    family="dijiang",
    run=run,
    module=__name__,
    verifies=("kernelapprox.features.dct.dct_matrix", "kernelapprox.features.dct.dct3_ortho"),
)
