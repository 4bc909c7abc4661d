r"""APT: the compressed salience bounds the per-sample salience.

Statement
---------
For activations $h_1, \dots, h_n$ of a channel and their loss gradients $g_1, \dots, g_n$
(over every sample and position),
$$\Big|\sum_t g_t h_t\Big| \le \sum_t |g_t h_t| \le \Big(\sum_t |h_t|\Big)\Big(\sum_t |g_t|\Big),$$
and so, summing over the channels of a head or neuron, the package's per-sample score
$|\sum_{j, t} H_{tj} G_{tj}|$ never exceeds APT's compressed score
$\sum_j (\sum_t |H_{tj}|)(\sum_t |G_{tj}|)$.

Source
------
Zhao, Hajishirzi & Cao, "APT: Adaptive Pruning and Tuning Pretrained Language Models for
Efficient Training and Inference" (ICML 2024), Sec. 4.1: the compressed salience replaces
$|\sum H \odot \partial L / \partial H|$ by a product of sums.

Method
------
Symbolic: with $a_t = |h_t| \ge 0$, $b_t = |g_t| \ge 0$, sympy expands
$(\sum_t a_t)(\sum_t b_t) - \sum_t a_t b_t$ for $n = 1, \dots, 6$ and finds the cross terms
$\sum_{s \ne t} a_s b_t$ exactly: a polynomial whose coefficients are all $+1$, hence
$\ge 0$ on nonnegative arguments (the first inequality is the triangle inequality).
Then the package scorer (`kernelapprox.compression.pruning.group_salience`) on seeded float64
tensors of several shapes, scales and group sizes, and on the hooks' activations and gradients
of a small `kernelapprox.lm.Decoder`: per-sample $\le$ $\sum |gh|$ $\le$ compressed, each to
a relative round-off of $10^{-12}$.
"""

from __future__ import annotations

import sympy as sp

from ._core import Claim, Verdict, docstring_section, package_module

SEED = 20240716


def _symbolic() -> dict[str, str]:
    out = {}
    for n in range(1, 7):
        a = sp.symbols(f"a1:{n + 1}", nonnegative=True)
        b = sp.symbols(f"b1:{n + 1}", nonnegative=True)
        gap = sp.expand(sum(a) * sum(b) - sum(x * y for x, y in zip(a, b, strict=True)))
        cross = sum(a[s] * b[t] for s in range(n) for t in range(n) if s != t)
        poly = sp.Poly(gap, *a, *b) if gap != 0 else None
        ok = sp.expand(gap - cross) == 0 and (poly is None or all(c > 0 for c in poly.coeffs()))
        out[f"n={n}"] = "0 (cross terms, coefficients +1)" if ok else str(sp.expand(gap - cross))
    return out


def run(*, thorough: bool = False) -> Verdict:
    import torch

    pruning = package_module("kernelapprox.compression.pruning")
    symbolic = _symbolic()
    bad_symbolic = [k for k, v in symbolic.items() if not v.startswith("0")]
    gen = torch.Generator().manual_seed(SEED)
    worst, cases = -float("inf"), 0
    shapes = [(1, 1, 1, 1), (2, 5, 4, 1), (3, 7, 12, 4), (4, 16, 32, 8)]
    if thorough:
        shapes += [(8, 64, 96, 32)]
    for batch, length, channels, group in shapes:
        for scale in (1e-3, 1.0, 1e3):
            h = torch.randn(batch, length, channels, generator=gen, dtype=torch.float64) * scale
            g = torch.randn(batch, length, channels, generator=gen, dtype=torch.float64)
            worst = max(worst, _gap(pruning, torch, h, g, group))
            cases += 1
    # the hooks' own tensors: a small decoder's activations and gradients
    from kernelapprox.lm import Decoder, DecoderConfig

    config = DecoderConfig(context=6, n_layers=2, d_model=8, n_heads=2, d_mlp=12)
    model = Decoder(config, seed=SEED, dtype=torch.float64)
    idx = torch.randint(0, 256, (3, 6), generator=gen)
    sites = pruning.decoder_sites(model)
    per, comp = {}, {}
    for form, store in (("per_sample", per), ("compressed", comp)):
        model.zero_grad()
        with pruning.SalienceTracker(sites, form=form) as tracker:
            model.loss(idx, torch.roll(idx, -1, 1)).backward()
            store.update(tracker.step())
    for s in sites:
        excess = (per[s.name] - comp[s.name]) / (1e-300 + comp[s.name])
        worst = max(worst, float(excess.max()))
        cases += 1
    ok = not bad_symbolic and worst <= 1e-12
    summary = (
        f"sympy: (Σa)(Σb) - Σab = sum of cross terms for n = 1..6; package scorer on "
        f"{cases} cases: largest relative excess of a lower bound over its upper bound "
        f"{worst:.2e} (tolerance 1e-12)"
    )
    return Verdict.decide(ok, summary, symbolic=symbolic, cases=cases, worst_relative_excess=worst)


def _gap(pruning, torch, h, g, group) -> float:
    """Largest relative excess of per-sample over sum|gh| and of sum|gh| over compressed."""
    per = pruning.group_salience(h, g, group, form="per_sample")
    middle = (h * g).abs().reshape(-1, h.shape[-1]).sum(0).reshape(-1, group).sum(1)
    comp = pruning.group_salience(h, g, group, form="compressed")
    first = float(((per - middle) / (1e-300 + middle)).max())
    second = float(((middle - comp) / (1e-300 + comp)).max())
    return max(first, second)


CLAIM = Claim(
    name="apt_salience_bound",
    title="APT: the compressed salience bounds the per-sample salience",
    statement=docstring_section(__doc__, "Statement"),
    source="Zhao, Hajishirzi & Cao (ICML 2024), APT, Sec. 4.1 (compressed salience)",
    method="symbolic",
    expected="holds",
    family="compression",
    run=run,
    module=__name__,
    seed=SEED,
    tolerance="relative round-off 1e-12 for the scorer checks; exact for sympy",
    requires=("kernelapprox.compression.pruning",),
    verifies=("kernelapprox.compression.pruning.salience.group_salience",),
)
