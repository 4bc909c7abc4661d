r"""EST: the paper's GPT-2 schedule saves exactly 4/15 of the transformer-block FLOPs.

Statement
---------
With stages $S = (20k, 70k, 150k)$ and rates $P = [(\tfrac12, \tfrac12, \tfrac12),
(\tfrac12, \tfrac12, 1), (1, 1, 1)]$ for $(p_H, p_M, p_L)$, and a layer costing per token
$8 d\,w + c\,T w + 4 d\,k_M$ FLOPs with $w = p_H N_H d_h$ the kept head width, $k_M = p_M N_M$
and $c \in \{4, 2, 0\}$ (full, causal-halved or no attention scores), the block FLOPs saved are
$$1 - \frac{\sum_s n_s\, p_L^s N_L\, C(p_H^s, p_M^s)}{150k \cdot N_L\, C(1, 1)} = \frac{4}{15}$$
for every $d, T, N_H, d_h, N_M, N_L$: the score part scales with $p_H$ per head like the
projections, so each stage costs $p\,p_L$ of the blocks. Counting GPT-2 small's LM head
($2 d V$ per token, $d = 768$, $V = 50257$, 12 layers, $T = 1024$, full scores) the saving
is $180224/927125 \approx 19.44\,\%$; the paper's 26.7 % is the block-only count.

Source
------
Li et al. (ICML 2024, arXiv 2406.06962), EST: 26.7 % FLOPs saving on GPT-2; schedule as
reconstructed in `shared/reference/model_compression.md` §1.

Method
------
Symbolic: sympy evaluates the package's own per-layer formula
(`kernelapprox.dynamics.est.layer_forward_flops`) on symbolic sizes, with the stage lengths and
rates of the package's `"gpt2"` preset as exact rationals, and simplifies the saving minus
$4/15$ to exactly 0 for each score convention. The with-head figure is the exact rational
returned by `flops_saving(GPT2_SMALL, ..., include_head=True)`, checked against the same
symbolic expression at GPT-2 small's sizes.
"""

from __future__ import annotations

from fractions import Fraction

import sympy as sp

from ._core import Claim, Verdict, docstring_section, package_module
from ._symbolic import residual


def _saving(est, schedule, sizes, *, scores: str, head) -> sp.Expr:
    d, T, n_heads, head_dim, n_neurons, n_layers = sizes

    def cost(rates) -> sp.Expr:
        p_h, p_m, p_l = (sp.Rational(Fraction(r)) for r in rates)
        layer = est.layer_forward_flops(
            d, T, p_h * n_heads * head_dim, p_m * n_neurons, scores=scores
        )
        return p_l * n_layers * layer + head

    lengths = [sp.Integer(n) for n in schedule.stage_lengths]
    spent = sum((n * cost(r) for n, r in zip(lengths, schedule.rates, strict=True)), sp.Integer(0))
    return 1 - spent / (sp.Integer(schedule.total_steps) * cost((1, 1, 1)))


def run(*, thorough: bool = False) -> Verdict:
    est = package_module("kernelapprox.dynamics.est")
    schedule = est.StageSchedule.preset("gpt2")
    sizes = sp.symbols("d T N_H d_h N_M N_L", positive=True)
    residuals = {
        f"block saving - 4/15 (scores={scores})": residual(
            _saving(est, schedule, sizes, scores=scores, head=0), sp.Rational(4, 15)
        )
        for scores in est.SCORE_CONVENTIONS
    }
    cfg = est.GPT2_SMALL
    with_head = est.flops_saving(cfg, schedule, include_head=True)
    gpt2_sizes = (cfg.d_model, cfg.context, cfg.n_heads, cfg.head_dim, cfg.d_mlp, cfg.n_layers)
    head = est.head_forward_flops(cfg.d_model, cfg.vocab_size)
    symbolic_head = _saving(
        est, schedule, tuple(sp.Integer(v) for v in gpt2_sizes), scores="full", head=head
    )
    residuals["GPT-2 small with head: package Fraction - symbolic"] = residual(
        sp.Rational(with_head.numerator, with_head.denominator), symbolic_head
    )
    package_blocks = est.flops_saving(cfg, schedule)
    residuals["GPT-2 small blocks: package Fraction - 4/15"] = residual(
        sp.Rational(package_blocks.numerator, package_blocks.denominator), sp.Rational(4, 15)
    )
    nonzero = {k: v for k, v in residuals.items() if v != 0}
    pct = 100 * float(with_head)
    summary = (
        f"all {len(residuals)} residuals simplify to 0: block saving = 4/15 for any sizes "
        f"(scores full/causal/none); with GPT-2 small's head {with_head} = {pct:.2f} %"
        if not nonzero
        else "nonzero residual: " + "; ".join(f"{k} = {v}" for k, v in nonzero.items())
    )
    return Verdict.decide(
        not nonzero,
        summary,
        residuals={k: str(v) for k, v in residuals.items()},
        saving_with_head=f"{with_head.numerator}/{with_head.denominator}",
        saving_with_head_percent=pct,
        saving_with_head_causal_percent=100
        * float(est.flops_saving(cfg, schedule, include_head=True, scores="causal")),
    )


CLAIM = Claim(
    name="est_flops_saving",
    title="EST: the GPT-2 schedule saves exactly 4/15 of the block FLOPs (19.4 % with the head)",
    statement=docstring_section(__doc__, "Statement"),
    source="Li et al. (ICML 2024), EST, GPT-2 FLOPs saving (26.7 %)",
    method="symbolic",
    expected="holds",
    family="dynamics",
    run=run,
    module=__name__,
    requires=("kernelapprox.dynamics.est",),
    verifies=(
        "kernelapprox.dynamics.est.layer_forward_flops",
        "kernelapprox.dynamics.est.head_forward_flops",
        "kernelapprox.dynamics.est.flops_saving",
        "kernelapprox.dynamics.est.subnetwork_flops",
        "kernelapprox.dynamics.est.schedule_flops",
        "kernelapprox.dynamics.est.StageSchedule.preset",
    ),
)
