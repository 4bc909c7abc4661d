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

import sympy as sp

from ._core import Claim, Verdict, docstring_section
from ._symbolic import expect_normal, normal_mgf_lemma, residual, residual_verdict, vector


def released_kernel(a: list[sp.Expr], b: list[sp.Expr]) -> sp.Expr:
    """The kernel the released map estimates, sum_j exp((a_j + b_j)^2 / 2)."""
    return sum((sp.exp((x + y) ** 2 / 2) for x, y in zip(a, b, strict=True)), sp.Integer(0))


def run(*, thorough: bool = False) -> Verdict:
    residuals: dict[str, sp.Expr] = {"lemma E[exp(alpha w)] = exp(alpha^2/2)": normal_mgf_lemma()}
    dims = range(1, 7 if thorough else 5)
    for d in dims:
        ts, a, b = vector("t", d), vector("a", d), vector("b", d)
        estimate = sum(
            (sp.exp(t * x) * sp.exp(t * y) for t, x, y in zip(ts, a, b, strict=True)),
            sp.Integer(0),
        )
        expectation = expect_normal(estimate, ts)
        residuals[f"d={d} E_t - sum exp((a+b)^2/2)"] = residual(expectation, released_kernel(a, b))
        factored = sum(
            (
                sp.exp(x**2 / 2) * sp.exp(y**2 / 2) * sp.exp(x * y)
                for x, y in zip(a, b, strict=True)
            ),
            sp.Integer(0),
        )
        residuals[f"d={d} E_t - sum e^(a^2/2) e^(b^2/2) e^(ab)"] = residual(expectation, factored)
    return residual_verdict(residuals, f"d = 1..{max(dims)}")


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
    verifies=("kernelapprox.features",),
)
