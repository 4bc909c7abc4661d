r"""EST: the number of kept heads, neurons and layers is $N p$ rounded half up, at least one.

Statement
---------
At rate $p \in (0, 1]$ EST keeps
$$k(N, p) = \max\big(1, \min(N, \lfloor N p + \tfrac12 \rfloor)\big)$$
of $N$ units: $N p$ rounded to the nearest integer, halves rounded up (so $N = 4$, $p = 0.4$
keeps 2 heads, not $\lfloor 1.6 \rfloor = 1$; $N = 5$, $p = \tfrac12$ keeps 3, where Python's
half-to-even `round` gives 2), and never fewer than one. The sampler keeps exactly $k$ distinct
units of each kind and rescales their sum by $N / k$.

Source
------
Li et al. (ICML 2024, arXiv 2406.06962), EST, Sec. 3 ($|I_H| = N_H p_H$, $|I_M| = N_M p_M$;
the paper leaves the rounding of a non-integer $N p$ open); the package's rule, stated in
`kernelapprox/dynamics/est.py` (`kept_count`: "round half up, never fewer than one unit").

Method
------
Exact rational arithmetic (`fractions.Fraction`) as the reference, against
`kernelapprox.dynamics.est.kept_count` and the sizes and draws of `SubnetworkSampler`, for
$N = 1, \dots, 64$ at
(a) every dyadic rate $p = j / 64$ ($j = 1..64$): $N p$ is exact in binary floating point, so
the float rule and the exact rule must agree in every case, and the half-integer ties (where
round-half-up, floor and half-to-even differ) are many;
(b) every two-decimal rate $p = j / 100$, where the rate as written counts, not its binary
float: $25 \times 0.58 = 14.5$ keeps 15 although the float $0.58$ lies below
$\tfrac{58}{100}$ and the float product is $14.499\ldots$ (the ties among these are
counted). For each rate of a seeded selection, one `SubnetworkSampler.sample` draw must keep
$k$ distinct sorted indices per head and neuron set, $k_L$ layers, with scales $N/k$.
"""

from __future__ import annotations

import math
import sys
from fractions import Fraction

import numpy as np

from ._core import Verdict, package_module
from ._numerical import Checks, numerical_claim

SEED = 20240613
MAX_UNITS = 64


def rounded_half_up(n: int, rate: Fraction) -> int:
    """The reference: ``max(1, min(n, floor(n * rate + 1/2)))`` in exact rationals."""
    return max(1, min(n, math.floor(n * rate + Fraction(1, 2))))


def distance_to_tie(n: int, rate: Fraction) -> Fraction:
    """``|n * rate - (j + 1/2)|`` for the nearest half-integer ``j + 1/2``."""
    x = n * rate - Fraction(1, 2)
    return abs(x - round(x))


def run(*, thorough: bool = False, seed: int = SEED) -> Verdict:
    est = package_module("kernelapprox.dynamics.est")
    checks = Checks()
    eps = sys.float_info.epsilon / 2
    mismatches: list[str] = []
    dyadic = decimal = ties = decimal_ties = 0
    for n in range(1, MAX_UNITS + 1):
        for j in range(1, 65):
            rate = Fraction(j, 64)
            got = est.kept_count(n, float(rate))
            dyadic += 1
            ties += distance_to_tie(n, rate) == 0
            if got != rounded_half_up(n, rate):
                mismatches.append(f"N={n} p={j}/64: {got} (want {rounded_half_up(n, rate)})")
        for j in range(1, 101):
            rate = Fraction(j, 100)
            decimal_ties += distance_to_tie(n, rate) == 0
            got = est.kept_count(n, float(rate))
            decimal += 1
            if got != rounded_half_up(n, rate):
                mismatches.append(f"N={n} p={j}/100: {got} (want {rounded_half_up(n, rate)})")
    checks.require(
        not mismatches,
        f"kept_count differs from round-half-up in {len(mismatches)} cases: "
        + ", ".join(mismatches[:4]),
    )
    rng = np.random.default_rng(seed)
    n_layers, n_heads, n_neurons = 5, 4, 12
    sampler = est.SubnetworkSampler(n_layers, n_heads, n_neurons, seed=seed)
    draws = 40 if thorough else 12
    bad_draws: list[str] = []
    for step in range(draws):
        rates = tuple(Fraction(int(j), 20) for j in rng.integers(1, 21, size=3))
        sizes_of = (n_heads, n_neurons, n_layers)
        want = tuple(rounded_half_up(n, r) for n, r in zip(sizes_of, rates, strict=True))
        floats = tuple(float(r) for r in rates)
        sizes = sampler.sizes(floats)
        sub = sampler.sample(step, floats)
        kept = [part for part in sub.layers if part is not None]
        ok = sizes == want and len(kept) == want[2]
        for part in kept:
            for index, n, k, scale in (
                (part.heads, n_heads, want[0], part.head_scale),
                (part.neurons, n_neurons, want[1], part.neuron_scale),
            ):
                chosen = list(range(n)) if index is None else index.tolist()
                ok = ok and len(chosen) == k and chosen == sorted(set(chosen))
                ok = ok and math.isclose(scale, n / k, rel_tol=4 * eps)
        if not ok:
            shown = "/".join(f"{r}" for r in rates)
            bad_draws.append(f"rates {shown}: sizes {sizes}, want {want}")
    checks.require(not bad_draws, "sampler draws: " + "; ".join(bad_draws[:3]))
    return checks.verdict(
        f"kept_count equals N p rounded half up (at least 1) in all {dyadic} dyadic cases "
        f"({ties} exact ties) and {decimal} two-decimal cases ({decimal_ties} exact ties; "
        f"N ≤ {MAX_UNITS}); {draws} sampler draws keep exactly k distinct units with scale N/k",
        dyadic_cases=dyadic,
        dyadic_ties=ties,
        decimal_cases=decimal,
        decimal_ties=decimal_ties,
        mismatches=mismatches[:20],
        sampler_draws=draws,
    )


CLAIM = numerical_claim(
    run,
    name="est_kept_count",
    title="EST: kept counts are N p rounded half up, at least one",
    source="Li et al. (ICML 2024), EST, Sec. 3; the rule of kernelapprox.dynamics.est",
    family="dynamics",
    seed=SEED,
    tolerance="exact integer equality in every case (the rate as written, exact rationals)",
    requires=("kernelapprox.dynamics.est",),
    verifies=(
        "kernelapprox.dynamics.est.kept_count",
        "kernelapprox.dynamics.est.SubnetworkSampler.sizes",
        "kernelapprox.dynamics.est.SubnetworkSampler.sample",
    ),
)
