"""Exact Gaussian expectations with sympy, shared by the symbolic claims.

The expectation of an exponential-trigonometric expression under independent standard
normals :math:`w_1, \\dots, w_d` is computed term by term from one lemma,

.. math:: \\mathbb{E}[e^{\\alpha w}] = e^{\\alpha^2 / 2}, \\qquad w \\sim N(0, 1),\\
          \\alpha = a + i b,\\ a, b \\in \\mathbb{R},

which :func:`normal_mgf_lemma` proves by sympy integration against the normal density. An
expression is rewritten into exponentials, expanded into a sum of terms
:math:`c \\, e^{\\beta + \\sum_j \\alpha_j w_j}` (anything else raises), and by independence
and linearity each term has expectation :math:`c \\, e^{\\beta + \\sum_j \\alpha_j^2 / 2}`.

A symbolic claim proves a closed form *and* checks that the package computes it:
:func:`package_gap` turns the derived expression into a function (``sympy.lambdify`` on mpmath
at 30 digits) and compares it with the package function on a grid of inputs;
:func:`residual_verdict` holds only when every residual is 0 and every such gap is at most
:data:`AGREEMENT_RTOL`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache

import mpmath
import numpy as np
import sympy as sp

from ._core import Verdict


def normal_density(w: sp.Symbol) -> sp.Expr:
    """The standard normal density :math:`e^{-w^2/2} / \\sqrt{2\\pi}`."""
    return sp.exp(-(w**2) / 2) / sp.sqrt(2 * sp.pi)


@lru_cache(maxsize=1)
def normal_mgf_lemma() -> sp.Expr:
    """Prove :math:`\\int e^{(a+ib)w} \\varphi(w)\\,dw = e^{(a+ib)^2/2}`; return the residual.

    The residual is the sympy-simplified difference between the integral and the closed form;
    it is exactly ``0`` when the lemma is proved.
    """
    w = sp.Symbol("w", real=True)
    a, b = sp.symbols("a b", real=True)
    alpha = a + sp.I * b
    integral = sp.integrate(sp.exp(alpha * w) * normal_density(w), (w, -sp.oo, sp.oo))
    return sp.simplify(integral - sp.exp(alpha**2 / 2))


def _split_exponential(term: sp.Expr) -> tuple[sp.Expr, sp.Expr]:
    """Write a product ``term`` as ``coeff * exp(exponent)``."""
    coeff, exponent = sp.Integer(1), sp.Integer(0)
    for factor in sp.Mul.make_args(term):
        if isinstance(factor, sp.exp):
            exponent += factor.args[0]
        elif factor.is_Pow and isinstance(factor.base, sp.exp):
            exponent += factor.base.args[0] * factor.exp
        else:
            coeff *= factor
    return coeff, exponent


def expect_normal(expr: sp.Expr, ws: Sequence[sp.Symbol]) -> sp.Expr:
    """:math:`\\mathbb{E}[\\text{expr}]` over independent :math:`w_j \\sim N(0, 1)`, exactly.

    Raises
    ------
    ValueError
        If a term is not of the form ``coeff * exp(affine in ws)`` with ``coeff`` free of ``ws``
        (e.g. a polynomial factor in ``w``), or if the lemma does not hold.
    """
    if normal_mgf_lemma() != 0:
        raise ValueError(f"the normal MGF lemma did not simplify to 0: {normal_mgf_lemma()}")
    ws = tuple(ws)
    expanded = sp.expand(sp.powsimp(sp.expand(sp.sympify(expr).rewrite(sp.exp)), combine="exp"))
    total = sp.Integer(0)
    for term in sp.Add.make_args(expanded):
        coeff, exponent = _split_exponential(term)
        if any(coeff.has(w) for w in ws):
            raise ValueError(f"term {term} is not coeff * exp(affine in {ws})")
        exponent = sp.expand(exponent)
        if exponent.has(*ws) and sp.Poly(exponent, *ws).total_degree() > 1:
            raise ValueError(f"exponent {exponent} is not affine in {ws}")
        alphas = [exponent.coeff(w) for w in ws]
        rest = sp.expand(exponent - sum(a * w for a, w in zip(alphas, ws, strict=True)))
        total += coeff * sp.exp(rest + sum(a**2 for a in alphas) / 2)
    return total


def residual(lhs: sp.Expr, rhs: sp.Expr) -> sp.Expr:
    """``lhs - rhs`` simplified: exactly ``0`` when sympy proves ``lhs == rhs``.

    Tries expansion with exponentials combined, then ``simplify``, then ``simplify`` after
    rewriting trigonometric and hyperbolic functions as exponentials.
    """
    diff = sp.expand(sp.powsimp(sp.expand(lhs - rhs), combine="exp"))
    if diff == 0:
        return diff
    simplified = sp.simplify(diff)
    if simplified == 0:
        return simplified
    return sp.simplify(sp.expand(diff.rewrite(sp.exp)))


def vector(name: str, d: int) -> tuple[sp.Symbol, ...]:
    """``d`` real symbols ``name0 .. name{d-1}``."""
    return sp.symbols(f"{name}0:{d}", real=True)


def dot(u: Sequence[sp.Expr], v: Sequence[sp.Expr]) -> sp.Expr:
    return sum((a * b for a, b in zip(u, v, strict=True)), sp.Integer(0))


#: Largest relative gap allowed between a derived closed form and the package function that
#: implements it (both are fp64 evaluations of the same formula, to within rounding).
AGREEMENT_RTOL = 1e-12


def input_grid(n_points: int, n_inputs: int, *, low: float = -1.0, high: float = 1.0) -> np.ndarray:
    """A fixed grid of ``n_points`` inputs in ``[low, high)^n_inputs`` (seeded, reproducible)."""
    return np.random.default_rng(20240101 + n_inputs).uniform(low, high, (n_points, n_inputs))


def package_gap(
    expr: sp.Expr,
    symbols: Sequence[sp.Symbol],
    points: np.ndarray,
    package: Callable[[np.ndarray], np.ndarray],
) -> float:
    """Largest relative gap between the derived ``expr`` and ``package`` on ``points``.

    ``expr`` is lambdified over ``symbols`` and evaluated with mpmath at 30 digits (a reference
    free of fp64 cancellation); ``package(points)`` must return one value per row of
    ``points`` (shape ``(n, len(symbols))``). The gap is
    :math:`\\max_i |f_i - g_i| / \\max(|f_i|, 10^{-300})`; non-finite package values give
    ``inf``.
    """
    points = np.asarray(points, dtype=np.float64)
    f = sp.lambdify(tuple(symbols), expr, modules="mpmath")
    with mpmath.workdps(30):
        exact = np.array(
            [float(mpmath.re(f(*(mpmath.mpf(float(v)) for v in row)))) for row in points]
        )
    got = np.asarray(package(points), dtype=np.float64).reshape(-1)
    if got.shape != exact.shape or not np.all(np.isfinite(got)):
        return float("inf")
    return float(np.max(np.abs(got - exact) / np.maximum(np.abs(exact), 1e-300)))


def residual_verdict(
    residuals: dict[str, sp.Expr],
    detail: str,
    *,
    package_gaps: dict[str, float] | None = None,
    **evidence: object,
) -> Verdict:
    """``holds`` when every residual is exactly 0 and the package agrees with the closed forms.

    ``package_gaps`` maps "package function vs closed form" to :func:`package_gap`; each must
    be at most :data:`AGREEMENT_RTOL`. Otherwise ``fails``, naming what disagrees.
    """
    gaps = dict(package_gaps or {})
    nonzero = {k: v for k, v in residuals.items() if v != 0}
    off = {k: v for k, v in gaps.items() if not v <= AGREEMENT_RTOL}
    if nonzero:
        summary = "nonzero residual: " + "; ".join(f"{k} = {v}" for k, v in nonzero.items())
    elif off:
        summary = "the package disagrees with the closed form: " + "; ".join(
            f"{k}: relative gap {v:.2e} > {AGREEMENT_RTOL:.0e}" for k, v in off.items()
        )
    else:
        summary = f"all {len(residuals)} residuals simplify to 0 ({detail})"
        if gaps:
            summary += (
                f"; the package agrees with the closed form to {max(gaps.values()):.1e} "
                f"relative ({len(gaps)} functions)"
            )
    return Verdict.decide(
        not nonzero and not off,
        summary,
        residuals={k: str(v) for k, v in residuals.items()},
        package_gaps=gaps,
        **evidence,
    )
