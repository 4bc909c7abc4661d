r"""Any-Precision: the price of nesting is small on wide rows and grows when rows are short.

Statement
---------
Finding, on Gaussian rows $W_{rj} \sim N(0, 1)$ with squared-Gaussian sensitivities $F_{rj}$
(the square of a Gaussian gradient), seed width 3, final width 8: the price of nesting, the
ratio of the nested $k$-bit weighted error to that of weighted k-means run at $2^k$ clusters
directly (same Lloyd, same seeds),
$$\rho_k = \frac{E^{\mathrm{nested}}_k}{E^{\mathrm{independent}}_k},$$
stays within $[0.9, 1.3]$ for every $k = 3, \dots, 8$ on rows of 4096 weights, while on
MiniLM-wide rows of 384 weights it grows with $k$ and exceeds 5 at $k = 8$: with 256
centroids for 384 weights, independent k-means is nearly lossless, but upscaling can only
split the seed's 8 runs, and a run of $m$ weights gets at most $\min(m, 32)$ centroids.
Against the exact optimum $E^\star_k$ (dynamic programming, 384-wide rows, $k \le 5$)
both heuristics stay within a factor 2: $1 \le E_k / E^\star_k \le 2$.

Source
------
Park, Hyun, Cho, Sim & Lee (ICML 2024), Any-Precision LLM, Sec. 3 and Table 1 ("matches the
quality of state-of-the-art quantization at each width"); measurements in
`shared/reference/model_compression.md` §3 (0.99-1.24 at 4096, 8-17x at 8 bits for 512).

Method
------
Experiment in float64 on the package code (`nested_quantize`, `independent_quantize`,
`optimal_kmeans`), 50 Lloyd steps: 4 rows of 4096 weights and 32 rows of 384 weights; the
optimum on the first 8 of the 384-wide rows at $k = 3, 4, 5$. The ratios of summed errors are
reported per width.
"""

from __future__ import annotations

from ._core import Verdict, package_module
from ._numerical import numerical_claim
from ._torch import single_threaded

SEED = 20240717


def run(*, thorough: bool = False, seed: int = SEED) -> Verdict:
    import torch

    quant = package_module("kernelapprox.compression.quantization")
    return _experiment(quant, torch, thorough, seed)


@single_threaded  # tiny tensors: intra-op threads only add contention
def _experiment(quant, torch, thorough: bool, seed: int) -> Verdict:
    price: dict[int, list[float]] = {}
    to_optimum: dict[str, list[float]] = {"nested": [], "independent": []}
    for cols, rows in ((4096, 32 if thorough else 4), (384, 32)):
        gen = torch.Generator().manual_seed(seed)
        w = torch.randn(rows, cols, generator=gen, dtype=torch.float64)
        f = torch.randn(rows, cols, generator=gen, dtype=torch.float64) ** 2
        q = quant.nested_quantize(w, f, seed_bits=3, max_bits=8, seed=seed)
        ratios = []
        for k in q.widths:
            codes, table = quant.independent_quantize(w, f, k, seed=seed)
            ratios.append(q.sse(w, f, k) / float(quant.weighted_sse(w, f, codes, table).sum()))
            if cols == 384 and k <= 5:
                sw, sf = w[:8], f[:8]
                oc, ot = quant.optimal_kmeans(sw, sf, 2**k)
                opt = float(quant.weighted_sse(sw, sf, oc, ot).sum())
                nested = float(quant.weighted_sse(sw, sf, q.codes_at(k)[:8], q.tables[k][:8]).sum())
                to_optimum["nested"].append(nested / opt)
                to_optimum["independent"].append(
                    float(quant.weighted_sse(sw, sf, codes[:8], table[:8]).sum()) / opt
                )
        price[cols] = ratios
    wide, short = price[4096], price[384]
    optimum = to_optimum["nested"] + to_optimum["independent"]
    ok = (
        all(0.9 <= r <= 1.3 for r in wide)
        and short[-1] > 5
        and all(1 - 1e-9 <= r <= 2 for r in optimum)
    )

    def fmt(values: list[float]) -> str:
        return ", ".join(f"{v:.3f}" for v in values)

    summary = (
        f"nested / independent at bits 3..8: 4096-wide rows {fmt(wide)}; 384-wide rows "
        f"{fmt(short)}; over the optimum at bits 3..5 (384 wide): nested "
        f"{fmt(to_optimum['nested'])}, independent {fmt(to_optimum['independent'])}"
    )
    return Verdict.decide(
        ok,
        summary,
        price_4096=wide,
        price_384=short,
        nested_over_optimal=to_optimum["nested"],
        independent_over_optimal=to_optimum["independent"],
    )


CLAIM = numerical_claim(
    run,
    name="quant_nesting_price",
    title="Any-Precision: the price of nesting per width (wide vs MiniLM-wide rows)",
    source="Park et al. (ICML 2024), Any-Precision LLM, Sec. 3, Table 1",
    family="compression",
    seed=SEED,
    tolerance="4096 wide: 0.9 ≤ ratio ≤ 1.3 at every width; 384 wide: ratio > 5 at 8 bits; "
    "1 ≤ heuristic / optimum ≤ 2 at 3..5 bits (measured values with margin, one seed)",
    requires=("kernelapprox.compression.quantization",),
    verifies=(
        "kernelapprox.compression.quantization.nested.nested_quantize",
        "kernelapprox.compression.quantization.nested.independent_quantize",
        "kernelapprox.compression.quantization.kmeans.optimal_kmeans",
    ),
)
