r"""The orthonormal DCT-II matrix is orthogonal and its transpose is the DCT-III.

Statement
---------
For $n \ge 1$ let $C \in \mathbb{R}^{n \times n}$,
$C_{ji} = s_j \cos\!\big(\pi (2i + 1) j / (2n)\big)$ with $s_0 = \sqrt{1/n}$ and
$s_j = \sqrt{2/n}$ for $j > 0$ (rows are frequencies). Then
$$C C^\top = I_n \quad\text{and}\quad C^\top = M_{\mathrm{III}},\qquad
(M_{\mathrm{III}})_{kj} = s_j \cos\!\big(\pi j (2k + 1)/(2n)\big),$$
the orthonormal DCT-III (inverse DCT). Hence $x \mapsto C^\top x$, which DiJiang's released code
applies as `x @ C`, is the inverse DCT, an isometry: $(C^\top q)^\top (C^\top k) = q^\top k$.

Source
------
Ahmed, Natarajan & Rao (1974); DiJiang (Chen et al., ICML 2024) Eq. 11 (garbled in print; the
1-D orthonormal DCT-II is what the released code builds with `scipy.fft.dct(eye, norm='ortho')`).

Method
------
Exact algebra for $n = 1, \dots, 8$: with $\zeta = e^{i\pi/(2n)}$, $\cos(\pi k/(2n)) =
(\zeta^k + \zeta^{-k})/2$, so every entry of $C C^\top$ is a polynomial in $\zeta$ with rational
coefficients (times $s_j s_l$); sympy reduces it modulo the cyclotomic polynomial
$\Phi_{4n}$ (the minimal polynomial of $\zeta$) and the remainder must be exactly the identity
entry. The DCT-III matrix is built from its own formula and compared entry by entry with
$C^\top$. As a floating-point cross-check, scipy's `dct`/`idct` (`norm='ortho'`) and the
package's `kernelapprox.features.dct_matrix`, `dct2_ortho` and `dct3_ortho` (the FFT-based
transforms of the DCT feature maps) must match the exact matrices to 1e-12.
"""

from __future__ import annotations

import numpy as np
import scipy.fft
import sympy as sp
import torch

from kernelapprox.features import dct2_ortho, dct3_ortho, dct_matrix

from ._core import Claim, Verdict, docstring_section


def dct2_matrix(n: int) -> sp.Matrix:
    """The orthonormal DCT-II matrix, exactly: ``C[j, i] = s_j cos(pi (2i+1) j / (2n))``."""
    return sp.Matrix(
        n,
        n,
        lambda j, i: (
            sp.sqrt(sp.Rational(1 if j == 0 else 2, n)) * sp.cos(sp.pi * (2 * i + 1) * j / (2 * n))
        ),
    )


def dct3_matrix(n: int) -> sp.Matrix:
    """The orthonormal DCT-III matrix: ``M[k, j] = s_j cos(pi j (2k+1) / (2n))``."""
    return sp.Matrix(
        n,
        n,
        lambda k, j: (
            sp.sqrt(sp.Rational(1 if j == 0 else 2, n)) * sp.cos(sp.pi * j * (2 * k + 1) / (2 * n))
        ),
    )


def gram_defect(n: int, *, angle: int = 1) -> list[tuple[int, int, sp.Expr]]:
    """Entries of ``C C^T - I`` that are not exactly zero, computed in Q(zeta) mod Phi_{4n}.

    ``angle`` multiplies every cosine argument (``angle=1`` is the DCT); other values give a
    deliberately wrong matrix, which the tests use to check that defects are detected.
    """
    z = sp.Symbol("z")
    cyclotomic = sp.Poly(sp.cyclotomic_poly(4 * n, z), z)
    order = 4 * n

    def cos_k(k: int) -> sp.Expr:  # cos(pi k / (2n)) with zeta^-k written as zeta^(4n-k)
        k %= order
        return (z**k + z ** ((order - k) % order)) / 2

    defects = []
    for j in range(n):
        for l in range(n):
            total = sum(
                (cos_k(angle * (2 * i + 1) * j) * cos_k(angle * (2 * i + 1) * l) for i in range(n)),
                sp.Integer(0),
            )
            remainder = sp.Poly(sp.expand(total), z).rem(cyclotomic).as_expr()
            scale = sp.sqrt(sp.Rational(1 if j == 0 else 2, n)) * sp.sqrt(
                sp.Rational(1 if l == 0 else 2, n)
            )
            entry = sp.expand(scale * remainder) - (1 if j == l else 0)
            if entry != 0:
                defects.append((j, l, entry))
    return defects


def run(*, thorough: bool = False) -> Verdict:
    sizes = range(1, 13 if thorough else 9)
    orthogonality = {n: gram_defect(n) for n in sizes}
    transpose = {n: (dct2_matrix(n).T - dct3_matrix(n)).is_zero_matrix for n in sizes}
    float_gap = 0.0
    for n in sizes:
        c = np.array(dct2_matrix(n).evalf(30).tolist(), dtype=np.float64)
        eye = np.eye(n)
        x = torch.as_tensor(eye)
        float_gap = max(
            float_gap,
            float(np.max(np.abs(c - scipy.fft.dct(eye, axis=0, norm="ortho")))),
            float(np.max(np.abs(c.T - scipy.fft.idct(eye, axis=0, norm="ortho")))),
            # the package's matrix and its O(d log d) transforms (rows of eye are inputs)
            float(np.max(np.abs(c - dct_matrix(n)))),
            float(np.max(np.abs(c.T - dct2_ortho(x).numpy()))),
            float(np.max(np.abs(c - dct3_ortho(x).numpy()))),
        )
    bad = [n for n in sizes if orthogonality[n] or not transpose[n]]
    ok = not bad and float_gap < 1e-12
    summary = (
        f"C Cᵀ - I is exactly 0 and Cᵀ equals the DCT-III matrix for n = 1..{max(sizes)}; "
        f"scipy dct/idct (ortho) and the package's dct_matrix/dct2_ortho/dct3_ortho agree to "
        f"{float_gap:.1e}"
        if ok
        else f"defects for n in {bad} (first: {[orthogonality[n][:1] for n in bad][:1]}); "
        f"scipy gap {float_gap:.1e}"
    )
    return Verdict.decide(
        ok,
        summary,
        sizes=list(sizes),
        nonzero_gram_entries={str(n): len(orthogonality[n]) for n in sizes},
        transpose_is_dct3={str(n): bool(transpose[n]) for n in sizes},
        scipy_max_abs_gap=float_gap,
    )


CLAIM = Claim(
    name="dct_orthogonal",
    title="The orthonormal DCT-II is orthogonal; its transpose is the DCT-III",
    statement=docstring_section(__doc__, "Statement"),
    source="DiJiang Eq. 11 (as built by the released code); Ahmed et al. (1974)",
    method="symbolic",
    expected="holds",
    family="dijiang",
    run=run,
    module=__name__,
    verifies=(
        "kernelapprox.features.dct.dct_matrix",
        "kernelapprox.features.dct.dct2_ortho",
        "kernelapprox.features.dct.dct3_ortho",
    ),
)
