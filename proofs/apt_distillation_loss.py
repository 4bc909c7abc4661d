r"""APT: the self-distillation loss is $w\,c\,T^2\,\mathrm{KL}(p_t \| p_s)$ plus the hidden MSEs.

Statement
---------
With student and teacher logits $z_s, z_t$ (rows $b = 1..B$), temperature $T$ and
$p = \mathrm{softmax}(z / T)$,
$$L_\mathrm{distill} = w_\mathrm{KL}\, c\, T^2\, \frac{1}{B} \sum_b \sum_v p_{t,bv}
\log \frac{p_{t,bv}}{p_{s,bv}} + w_H \sum_\ell \mathrm{MSE}\big(f_\ell(h^s_\ell), h^t_\ell\big),$$
($w_\mathrm{KL} = 0.1$, $c = 10$, $w_H = 0.9$, $T = 2/3$ by default): the KL of the teacher's
distribution from the student's, never negative, zero when the logits agree, scaled by $T^2$
so that its gradient, $\partial/\partial z_s = w_\mathrm{KL}\, c\, T\, (p_s - p_t) / B$, keeps
its size as $T$ changes (Hinton et al.); the teacher gets no gradient.

Source
------
Zhao, Hajishirzi & Cao (ICML 2024), APT, Sec. 4.4 and the official code's self-distillation
(`shared/reference/model_compression.md` §2: "L_distill = 0.1 * (10 * T^2 * KL) + 0.9 * sum of
MSEs"); Hinton, Vinyals & Dean (2015), "Distilling the knowledge in a neural network", Sec. 2
($T^2$ scaling).

Method
------
Reference in float64 numpy/scipy: `scipy.special.softmax`, `scipy.special.rel_entr` (the
terms $p \log(p/q)$) and a mean of squares. `distillation_loss` and `kl_divergence` of
`kernelapprox.compression.pruning.adapters` run on seeded float64 logits (rows of 7 to 50 classes,
logit scales 0.1-5, temperatures $\tfrac12, \tfrac23, 1, 2$, zero to three hidden pairs, with
and without a linear transform, default and other weights), and on float32 logits. The loss
must equal the reference within its round-off bound: each log-softmax entry carries a few
round-offs $u$ of its largest term, so the KL is within $8u(\max|z|/T + \log V)$ (the KL
weighs two entries by $p_t$, which sums to 1), the loss within $w\,c\,T^2$ times that plus
$8u$ of itself, and the autograd gradient with respect to the student's logits within
$w\,c\,T/B$ times the KL bound of the closed form $w\,c\,T(p_s - p_t)/B$ ($u = 2^{-53}$ in
float64, $2^{-24}$ for float32 logits); and a teacher that requires grad must receive none.
"""

from __future__ import annotations

import numpy as np
from scipy import special

from ._core import Verdict
from ._numerical import Checks, numerical_claim

SEED = 20240720
TEMPERATURES = (0.5, 2.0 / 3.0, 1.0, 2.0)
U64, U32 = 2.0**-53, 2.0**-24  # unit round-offs


def roundoff(size: float, u: float) -> float:
    """Bound on the error of a KL term sum: each log-softmax entry of ``z / T`` carries a few
    round-offs of its largest term, ``size = max|z| / T + log V``; the KL weighs two of them
    by ``p_t`` (summing to 1): ``8 u size``."""
    return 8 * u * size


def reference_loss(zs, zt, hs, ht, *, temperature, kl_weight, kl_scale, hidden_weight):
    """The statement's formula in float64 numpy/scipy."""
    ps = special.softmax(zs / temperature, axis=-1)
    pt = special.softmax(zt / temperature, axis=-1)
    kl = special.rel_entr(pt, ps).sum(-1).mean()
    mse = sum(float(np.mean((a - b) ** 2)) for a, b in zip(hs, ht, strict=True))
    return kl_weight * kl_scale * temperature**2 * kl + hidden_weight * mse, ps, pt


def run(*, thorough: bool = False, seed: int = SEED) -> Verdict:
    import torch

    from kernelapprox.compression.pruning.adapters import distillation_loss, kl_divergence

    rng = np.random.default_rng(seed)
    checks = Checks()
    worst = {"loss": 0.0, "kl": 0.0, "gradient": 0.0, "float32 loss": 0.0}
    teacher_grad = False
    cases = 120 if thorough else 40
    for case in range(cases):
        rows, classes = int(rng.integers(1, 6)), int(rng.integers(7, 51))
        scale = float(rng.uniform(0.1, 5.0))
        zs = rng.normal(size=(rows, classes)) * scale
        zt = zs + rng.normal(size=(rows, classes)) * scale * rng.uniform(0.05, 1.0)
        temperature = TEMPERATURES[case % len(TEMPERATURES)]
        weights = (
            {"kl_weight": 0.1, "kl_scale": 10.0, "hidden_weight": 0.9}
            if case % 2 == 0
            else {"kl_weight": 0.3, "kl_scale": 2.5, "hidden_weight": 0.25}
        )
        n_hidden = case % 4
        hs = [rng.normal(size=(rows, 3, 6)) for _ in range(n_hidden)]
        ht = [rng.normal(size=(rows, 3, 6)) for _ in range(n_hidden)]
        matrix = rng.normal(size=(6, 6)) if case % 3 == 0 else None
        moved = [h @ matrix.T for h in hs] if matrix is not None else hs
        want, ps, pt = reference_loss(zs, zt, moved, ht, temperature=temperature, **weights)
        student = torch.tensor(zs, requires_grad=True)
        teacher = torch.tensor(zt, requires_grad=True)
        transforms = None
        if matrix is not None:
            m = torch.tensor(matrix)
            transforms = [lambda h, m=m: h @ m.T for _ in hs]
        loss = distillation_loss(
            student,
            teacher,
            [torch.tensor(h) for h in hs],
            [torch.tensor(h) for h in ht],
            temperature=temperature,
            transforms=transforms,
            **weights,
        )
        factor = weights["kl_weight"] * weights["kl_scale"] * temperature
        size = max(np.abs(zs).max(), np.abs(zt).max()) / temperature + np.log(classes)
        kl_bound = roundoff(size, U64)
        bound = factor * temperature * kl_bound + 8 * U64 * abs(want)
        worst["loss"] = max(worst["loss"], abs(float(loss.detach()) - want) / bound)
        kl = float(kl_divergence(student.detach(), teacher, temperature))
        kl_want = float(special.rel_entr(pt, ps).sum(-1).mean())
        worst["kl"] = max(worst["kl"], abs(kl - kl_want) / (kl_bound + 8 * U64 * kl_want))
        loss.backward()
        grad_want = factor * (ps - pt) / rows
        gap = np.abs(student.grad.numpy() - grad_want).max()
        worst["gradient"] = max(worst["gradient"], float(gap / (factor / rows * kl_bound)))
        teacher_grad = teacher_grad or teacher.grad is not None
        loss32 = distillation_loss(
            torch.tensor(zs, dtype=torch.float32), torch.tensor(zt, dtype=torch.float32),
            temperature=temperature, **weights,
        )  # fmt: skip
        want32, _, _ = reference_loss(
            zs.astype(np.float32).astype(np.float64), zt.astype(np.float32).astype(np.float64),
            [], [], temperature=temperature, **weights,
        )  # fmt: skip
        bound32 = factor * temperature * roundoff(size, U32) + 8 * U32 * want32
        worst["float32 loss"] = max(worst["float32 loss"], abs(float(loss32) - want32) / bound32)
    for what, gap in worst.items():
        checks.require(
            gap <= 1.0,
            f"{what} differs from the scipy reference by {gap:.2e} of its round-off bound "
            f"(tolerance 1)",
        )
    checks.require(not teacher_grad, "the teacher's logits received a gradient")
    same = torch.tensor(rng.normal(size=(3, 11)))
    zero = float(kl_divergence(same, same.clone(), 2.0 / 3.0))
    checks.require(abs(zero) <= 1e-15, f"KL of equal logits is {zero:.2e}, not 0")
    return checks.verdict(
        f"{cases} cases (T ∈ {{1/2, 2/3, 1, 2}}; 0-3 hidden pairs): loss, KL and the student "
        f"gradient w c T (pₛ - pₜ) / B match scipy within {max(worst.values()):.2f} of their "
        f"round-off bounds (float64 and float32); the teacher gets no gradient",
        gaps_over_roundoff_bounds=worst,
    )


CLAIM = numerical_claim(
    run,
    name="apt_distillation_loss",
    title="APT: the distillation loss is w c T^2 KL(p_t || p_s) plus the hidden MSEs (scipy)",
    source="Zhao, Hajishirzi & Cao (ICML 2024), APT, Sec. 4.4; Hinton et al. (2015), Sec. 2",
    family="compression",
    seed=SEED,
    tolerance="round-off bounds: KL within 8 u (max|z| / T + log V), the loss within w c T² "
    "times that plus 8 u of itself (u = 2⁻⁵³ in float64, 2⁻²⁴ in float32)",
    requires=("kernelapprox.compression.pruning",),
    verifies=(
        "kernelapprox.compression.pruning.adapters.distillation_loss",
        "kernelapprox.compression.pruning.adapters.kl_divergence",
    ),
)
