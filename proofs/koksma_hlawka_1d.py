r"""Koksma-Hlawka inequality in one dimension with the exact star discrepancy.

Statement
---------
For points $x_1, \dots, x_n \in [0, 1)$ and $f$ of bounded variation $V(f)$ on $[0, 1]$,
$$\Big|\frac1n\sum_{i=1}^n f(x_i) - \int_0^1 f(x)\,dx\Big| \le V(f)\, D_n^*,\qquad
D_n^* = \frac1{2n} + \max_{1 \le i \le n}\Big|x_{(i)} - \frac{2i - 1}{2n}\Big|,$$
where $x_{(i)}$ are the sorted points and $D_n^* = \sup_{a \in [0,1]} |\#\{x_i < a\}/n - a|$
is the star discrepancy (Niederreiter 1992, Theorem 2.6). The bound is attained in the limit by
indicators $f = 1_{[0, a)}$.

Source
------
Koksma (1942), Hlawka (1961); Niederreiter, "Random Number Generation and Quasi-Monte Carlo
Methods" (SIAM 1992), Theorems 2.6 and 2.9.

Method
------
Experiment (fixed seed): the package's closed form of $D_n^*$
(`kernelapprox.discrepancy.star_discrepancy_1d`) is first checked against the definition
(supremum over all $a$, evaluated at the points and just after them). Then for point sets
{unscrambled and scrambled Sobol' and iid uniform from `kernelapprox.sampling`, a clustered
set} with $n \in \{8, 64, 512\}$ and integrands with known integral and variation ($x$, $x^2$,
$e^x$, $\sin 2\pi x$, $1_{[0, 1/3)}$, $1_{[0, 0.7)}$), the ratio $|\text{error}| / (V(f)
D_n^*)$ must not exceed $1 + 10^{-12}$ (floating-point slack). Its maximum (tightness) is
reported.
"""

from __future__ import annotations

import numpy as np

from kernelapprox.discrepancy import star_discrepancy_1d
from kernelapprox.sampling import MonteCarlo, Sobol

from ._core import Verdict
from ._numerical import numerical_claim

SEED = 19611001
SIZES = (8, 64, 512)

#: name -> (f, integral over [0, 1], total variation on [0, 1])
INTEGRANDS = {
    "x": (lambda x: x, 0.5, 1.0),
    "x²": (lambda x: x**2, 1.0 / 3.0, 1.0),
    "exp(x)": (np.exp, np.e - 1.0, np.e - 1.0),
    "sin(2πx)": (lambda x: np.sin(2 * np.pi * x), 0.0, 4.0),
    "1[x < 1/3]": (lambda x: (x < 1.0 / 3.0).astype(float), 1.0 / 3.0, 1.0),
    "1[x < 0.7]": (lambda x: (x < 0.7).astype(float), 0.7, 1.0),
}


def star_discrepancy_by_definition(points: np.ndarray) -> float:
    """``sup_a |#{x_i < a}/n - a|`` evaluated directly: counts by comparison at every point,
    just after every point (the supremum is a one-sided limit there) and on a grid of 4097
    values of ``a``; independent of the closed form."""
    x = np.asarray(points, dtype=np.float64)
    n = x.size
    candidates = np.concatenate([x, np.nextafter(x, 2.0), np.linspace(0.0, 1.0, 4097)])
    counts = (x[None, :] < candidates[:, None]).sum(axis=1)
    return float(np.max(np.abs(counts / n - candidates)))


def point_sets(seed: int, n: int) -> dict[str, np.ndarray]:
    """The package's point sets (and one deliberately bad set), ``n`` points in [0, 1)."""
    scramble_seed, mc_seed, bad_seed = np.random.SeedSequence(seed).spawn(3)
    return {
        "Sobol' (unscrambled)": Sobol(scramble=False).uniform_points(n, 1)[:, 0],
        "Sobol' (scrambled)": Sobol().uniform_points(n, 1, seed=scramble_seed)[:, 0],
        "iid uniform": MonteCarlo().uniform_points(n, 1, seed=mc_seed)[:, 0],
        "clustered in [0, 1/2)": 0.5 * np.random.default_rng(bad_seed).random(n),
    }


def run(*, thorough: bool = False, seed: int = SEED) -> Verdict:
    sizes = (*SIZES, 4096) if thorough else SIZES
    worst_ratio, worst_case, definition_gap, cases = 0.0, "", 0.0, 0
    violations = []
    for n in sizes:
        for name, points in point_sets(seed + n, n).items():
            disc = star_discrepancy_1d(points)
            definition_gap = max(definition_gap, abs(disc - star_discrepancy_by_definition(points)))
            for fname, (f, integral, variation) in INTEGRANDS.items():
                error = abs(float(np.mean(f(points))) - integral)
                ratio = error / (variation * disc)
                cases += 1
                if ratio > worst_ratio:
                    worst_ratio, worst_case = ratio, f"{fname} on {name}, n={n}"
                if ratio > 1 + 1e-12:
                    violations.append(f"{fname} on {name}, n={n}: ratio {ratio:.6f}")
    ok = not violations and definition_gap < 1e-9
    summary = (
        f"|error| ≤ V(f) D*ₙ in all {cases} cases; tightest ratio {worst_ratio:.3f} "
        f"({worst_case}); closed-form D* equals the definition to {definition_gap:.1e}"
        if ok
        else f"violations: {'; '.join(violations[:3])}; D* definition gap {definition_gap:.1e}"
    )
    return Verdict.decide(
        ok,
        summary,
        cases=cases,
        worst_ratio=worst_ratio,
        worst_case=worst_case,
        definition_gap=definition_gap,
        violations=violations,
    )


CLAIM = numerical_claim(
    run,
    name="koksma_hlawka_1d",
    title="Koksma-Hlawka in 1-D with the exact star discrepancy",
    source="Niederreiter (1992) Thms 2.6, 2.9",
    family="qmc",
    seed=SEED,
    tolerance="deterministic inequality; 1e-12 floating-point slack",
    verifies=(
        "kernelapprox.discrepancy.star_discrepancy_1d",
        "kernelapprox.sampling.qmc.Sobol.points",
    ),
)
