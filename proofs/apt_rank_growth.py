r"""APT: growing an adapter's rank leaves the layer's output unchanged.

Statement
---------
For a frozen linear layer with adapter $\Delta(x) = \frac{\alpha}{r} B A x$, growing to rank
$r' > r$ by appending Kaiming-uniform rows to $A$, zero columns to $B$ and scaling $\alpha$ by
$r'/r$ gives
$$\frac{\alpha r'/r}{r'}\,[B\;0]\begin{bmatrix} A \\ A_\mathrm{new}\end{bmatrix} x
= \frac{\alpha}{r} B A x$$
for every $x$: the output is unchanged at the moment of growth (in float64 to $10^{-12}$).

Source
------
Zhao, Hajishirzi & Cao (ICML 2024), APT, Sec. 4.3 (adaptive tuning: new rows of $A$ Kaiming
initialized, of $B$ zero, scaling kept).

Method
------
Numerical, float64: `kernelapprox.compression.pruning.GrowingLoRALinear` layers with random
trained-like $A, B$ (several shapes, ranks and growth factors) and a
`kernelapprox.lm.Decoder` whose query and value projections carry adapters grown by the
package's top-half rule (`allocate_ranks`); the largest absolute output change, relative to
the output's scale, must be $\le 10^{-12}$, and the new columns of $B$ must receive a nonzero
gradient (the growth is not a no-op).
"""

from __future__ import annotations

from ._core import Verdict, package_module
from ._numerical import numerical_claim

SEED = 20240717


def run(*, thorough: bool = False, seed: int = SEED) -> Verdict:
    import torch
    from torch import nn

    pruning = package_module("kernelapprox.compression.pruning")
    offset = seed - SEED  # 0 at the recorded seed
    gen = torch.Generator().manual_seed(seed)
    worst, trains, cases = 0.0, True, 0
    shapes = [(4, 3, 1, 2), (16, 8, 2, 8), (64, 32, 8, 24)]
    if thorough:
        shapes += [(384, 384, 8, 64)]
    for n_in, n_out, rank, new_rank in shapes:
        with torch.random.fork_rng(devices=[]):  # the base layer's init, from the seed too
            torch.manual_seed(int(cases) + seed)
            base = nn.Linear(n_in, n_out, dtype=torch.float64)
        layer = pruning.GrowingLoRALinear(base, rank, seed=int(cases) + seed)
        with torch.no_grad():
            layer.lora_b.copy_(torch.randn(n_out, rank, generator=gen, dtype=torch.float64))
        x = torch.randn(5, n_in, generator=gen, dtype=torch.float64)
        before = layer(x).detach()
        layer.grow(new_rank, seed=cases + offset)
        after = layer(x)
        worst = max(worst, float((after.detach() - before).abs().max() / before.abs().max()))
        after.square().sum().backward()
        trains = trains and bool(layer.lora_b.grad[:, rank:].abs().max() > 0)
        cases += 1
    from kernelapprox.lm import Decoder, DecoderConfig

    config = DecoderConfig(context=6, n_layers=2, d_model=16, n_heads=2, d_mlp=32)
    model = Decoder(config, seed=seed, dtype=torch.float64)
    adapters = pruning.add_adapters(model, ("attn.q", "attn.v"), rank=2, seed=seed)
    with torch.no_grad():
        for a in adapters.values():
            a.lora_b.copy_(torch.randn(a.lora_b.shape, generator=gen, dtype=torch.float64))
    idx = torch.randint(0, 256, (2, 6), generator=gen)
    with torch.no_grad():
        before = model(idx)
    names = sorted(adapters)
    salience = [float(torch.rand((), generator=gen)) for _ in names]
    ranks = [adapters[n].rank for n in names]
    ppr = [adapters[n].in_features + adapters[n].out_features for n in names]
    current = sum(r * p for r, p in zip(ranks, ppr, strict=True))
    new = pruning.allocate_ranks(salience, ranks, ppr, 3 * current)
    for n, r in zip(names, new, strict=True):
        adapters[n].grow(r, seed=seed)
    with torch.no_grad():
        after = model(idx)
    worst = max(worst, float((after - before).abs().max() / before.abs().max()))
    cases += 1
    grew = sum(r > r0 for r, r0 in zip(new, ranks, strict=True))
    ok = worst <= 1e-12 and trains and grew > 0
    summary = (
        f"{cases} growths (layers and a decoder whose {grew} of {len(names)} adapters grew by "
        f"the top-half rule): largest relative output change {worst:.1e} (tolerance 1e-12); "
        f"new columns of B train: {trains}"
    )
    return Verdict.decide(
        ok,
        summary,
        worst_relative_change=worst,
        new_columns_train=trains,
        decoder_grown=grew,
        decoder_ranks=new,
    )


CLAIM = numerical_claim(
    run,
    name="apt_rank_growth",
    title="APT: rank growth leaves the adapted layer's output unchanged",
    source="Zhao, Hajishirzi & Cao (ICML 2024), APT, Sec. 4.3 (adaptive tuning)",
    family="compression",
    seed=SEED,
    tolerance="relative output change ≤ 1e-12 in float64 (round-off of the larger matmul)",
    requires=("kernelapprox.compression.pruning",),
    verifies=(
        "kernelapprox.compression.pruning.adapters.GrowingLoRALinear",
        "kernelapprox.compression.pruning.adapters.allocate_ranks",
    ),
)
