r"""APT: the kept fraction follows the cubic that is flat where pruning ends.

Statement
---------
APT's schedule of the kept fraction $\gamma_t$ between $t_\mathrm{warm}$ and $t_\mathrm{end}$
is the unique cubic polynomial $p$ with
$$p(t_\mathrm{warm}) = \gamma_0, \quad p(t_\mathrm{end}) = \gamma_T, \quad
p'(t_\mathrm{end}) = p''(t_\mathrm{end}) = 0,$$
namely $p(t) = \gamma_T + (\gamma_0 - \gamma_T)
\big(\tfrac{t_\mathrm{end} - t}{t_\mathrm{end} - t_\mathrm{warm}}\big)^3$: pruning is fast at
first and slows to a stop. Before the window $\gamma_t = \gamma_0$, after it $\gamma_T$; the
masks are updated at the 11 evenly spaced (rounded) steps of the window.

Source
------
Zhao, Hajishirzi & Cao (ICML 2024), APT, Sec. 4.2 and the official code's defaults (cubic
schedule, 11 updates); `shared/reference/model_compression.md` §2; the cubic schedule of Zhu &
Gupta (2017), "To prune, or not to prune", Eq. 1.

Method
------
sympy solves the four conditions for the coefficients of a general cubic (so the reference is
derived, not the formula restated) and checks that its solution is the closed form above; the
solution is lambdified and compared with
`kernelapprox.compression.pruning.schedule.cubic_keep_fraction` at every step of seeded windows
($t_\mathrm{warm}$ 0-500, length 10-5000, $\gamma_T$ 0-1, $\gamma_0$ from $\gamma_T$ to 1,
plus the default $\gamma_0 = 1$), at non-integer $t$, and before and after the window, to
$10^{-13}$ absolute (a few float64 operations on numbers of order 1). The mask-update steps of
`pruning_steps` must be $t_\mathrm{warm} + i (t_\mathrm{end} - t_\mathrm{warm}) / 10$,
$i = 0..10$, in exact rationals, rounded half to even (Python's `round`).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import sympy as sp

from ._core import Verdict
from ._numerical import Checks, numerical_claim

SEED = 20240721
TOLERANCE = 1e-13


def derived_cubic() -> tuple[sp.Expr, tuple[sp.Symbol, ...], sp.Expr]:
    """The cubic solving the four conditions, its symbols, and its residual against the
    closed form (sympy: 0)."""
    t, t_warm, t_end, g_0, g_T = sp.symbols("t t_warm t_end gamma_0 gamma_T", real=True)
    a = sp.symbols("a0:4")
    p = sum(a[k] * t**k for k in range(4))
    conditions = [
        sp.Eq(p.subs(t, t_warm), g_0),
        sp.Eq(p.subs(t, t_end), g_T),
        sp.Eq(sp.diff(p, t).subs(t, t_end), 0),
        sp.Eq(sp.diff(p, t, 2).subs(t, t_end), 0),
    ]
    solution = sp.solve(conditions, a, dict=True)[0]
    cubic = sp.simplify(p.subs(solution))
    closed = g_T + (g_0 - g_T) * ((t_end - t) / (t_end - t_warm)) ** 3
    return cubic, (t, t_warm, t_end, g_0, g_T), sp.simplify(cubic - closed)


def run(*, thorough: bool = False, seed: int = SEED) -> Verdict:
    from kernelapprox.compression.pruning.schedule import cubic_keep_fraction, pruning_steps

    cubic, symbols, residual = derived_cubic()
    reference = sp.lambdify(symbols, cubic, "math")
    checks = Checks()
    checks.require(residual == 0, f"the derived cubic differs from the closed form by {residual}")
    rng = np.random.default_rng(seed)
    windows = 40 if thorough else 12
    worst, evaluations, bad_steps = 0.0, 0, []
    for case in range(windows):
        t_warm = int(rng.integers(0, 501))
        t_end = t_warm + int(rng.integers(10, 5001))
        g_T = float(rng.random())
        g_0 = 1.0 if case % 2 else float(rng.uniform(g_T, 1.0))
        kwargs = {"t_warm": t_warm, "t_end": t_end, "gamma_final": g_T}
        if not case % 2:
            kwargs["gamma_start"] = g_0
        inside = np.unique(np.linspace(t_warm, t_end, 60).round())
        points = [*inside, *(t_warm + (t_end - t_warm) * rng.random(5))]
        for t in points:
            got = cubic_keep_fraction(float(t), **kwargs)
            worst = max(worst, abs(got - reference(float(t), t_warm, t_end, g_0, g_T)))
            evaluations += 1
        for t, want in ((t_warm - 7, g_0), (max(0, t_warm - 1), g_0), (t_end + 3, g_T)):
            if t < t_warm or t > t_end:
                worst = max(worst, abs(cubic_keep_fraction(t, **kwargs) - want))
                evaluations += 1
        steps = pruning_steps(t_warm, t_end)
        want_steps = sorted({round(t_warm + Fraction((t_end - t_warm) * i, 10)) for i in range(11)})
        if steps != want_steps:
            bad_steps.append(f"window [{t_warm}, {t_end}]: {steps[:4]}..., want {want_steps[:4]}")
    checks.require(
        worst <= TOLERANCE,
        f"cubic_keep_fraction differs from the derived cubic by {worst:.2e} "
        f"(tolerance {TOLERANCE:g})",
    )
    checks.require(not bad_steps, "pruning_steps: " + "; ".join(bad_steps[:3]))
    midpoint = cubic_keep_fraction(5, t_warm=0, t_end=10, gamma_final=0.4)
    checks.require(abs(midpoint - 0.475) <= TOLERANCE, f"midpoint of [0, 10] gives {midpoint}")
    return checks.verdict(
        f"sympy's cubic through gamma_0 at t_warm and flat (p' = p'' = 0) at gamma_T at t_end "
        f"is the closed form; cubic_keep_fraction equals it within {worst:.1e} at "
        f"{evaluations} steps of {windows} windows (tolerance {TOLERANCE:g}); pruning_steps "
        f"are the 11 evenly spaced steps, rounded",
        largest_gap=worst,
        evaluations=evaluations,
        windows=windows,
        residual=str(residual),
    )


CLAIM = numerical_claim(
    run,
    name="apt_cubic_schedule",
    title="APT: the kept fraction follows the cubic that is flat where pruning ends",
    source="Zhao, Hajishirzi & Cao (ICML 2024), APT, Sec. 4.2; Zhu & Gupta (2017), Eq. 1",
    family="compression",
    seed=SEED,
    tolerance="1e-13 absolute (a few float64 operations on numbers of order 1)",
    requires=("kernelapprox.compression.pruning",),
    verifies=(
        "kernelapprox.compression.pruning.schedule.cubic_keep_fraction",
        "kernelapprox.compression.pruning.schedule.pruning_steps",
    ),
)
