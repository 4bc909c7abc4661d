r"""Any-Precision: the k-bit codes are exactly the first k bit-planes of the n-bit codes.

Statement
---------
For every weight matrix $W$ with non-negative sensitivities $F$ and every seed width $b_0 \le n$,
the codes $q^{(k)}$ made by the seed quantizer and $k - b_0$ upscaling splits satisfy
$$q^{(k)}_{rj} = q^{(n)}_{rj} \gg (n - k) \quad\text{and}\quad
q^{(k)}_{rj} = \sum_{p=0}^{k-1} 2^{k-1-p}\,\mathrm{plane}_p[r, j]$$
for $k = b_0, \dots, n$, where $\mathrm{plane}_p$ are the int32 bit-planes of the packed
$n$-bit codes (plane 0 the most significant); unpacking the packed codes returns them exactly.

Source
------
Park, Hyun, Cho, Sim & Lee (ICML 2024), Any-Precision LLM, Sec. 3 (incremental upscaling,
$q^{(k+1)} = 2 q^{(k)} + \beta$) and Sec. 4 (bit-plane layout);
`shared/reference/model_compression.md` §3.

Method
------
Experiment on the package code: `nested_quantize` on 24 seeded matrices (1-6 rows of 1-200
weights, seed widths 1-4, final widths up to 8, a third with many tied values and zero
sensitivities, which make empty and single-value runs), each width's codes kept as the
algorithm makes them (`NestedQuantization.codes_at`, a shift) and read back from the packed
planes (`pack_bitplanes` then `unpack_bitplanes` with $k$ planes); also random codes of every
width 1-8 through pack and unpack. Holds when every comparison is exactly equal.
"""

from __future__ import annotations

from ._core import Verdict, package_module
from ._numerical import numerical_claim
from ._torch import single_threaded

SEED = 20240721


def run(*, thorough: bool = False, seed: int = SEED) -> Verdict:
    import torch

    quant = package_module("kernelapprox.compression.quantization")
    return _experiment(quant, torch, thorough, seed)


@single_threaded  # tiny tensors: intra-op threads only add contention
def _experiment(quant, torch, thorough: bool, seed: int) -> Verdict:
    offset = seed - SEED  # 0 at the recorded seed
    gen = torch.Generator().manual_seed(seed)
    cases = 200 if thorough else 24
    mismatches = comparisons = 0
    for case in range(cases):
        rows = int(torch.randint(1, 7, (1,), generator=gen))
        cols = int(torch.randint(1, 201, (1,), generator=gen))
        seed_bits = int(torch.randint(1, 5, (1,), generator=gen))
        max_bits = int(torch.randint(seed_bits, 9, (1,), generator=gen))
        w = torch.randn(rows, cols, generator=gen, dtype=torch.float64)
        f = torch.randn(rows, cols, generator=gen, dtype=torch.float64) ** 2
        if case % 3 == 0:
            w = torch.round(2 * w) / 2
            f[:, ::2] = 0.0
        q = quant.nested_quantize(
            w, f, seed_bits=seed_bits, max_bits=max_bits, iterations=10, seed=case + offset
        )
        planes = quant.pack_bitplanes(q.codes, max_bits)
        made = None
        for k in q.widths:
            codes_k = q.codes_at(k)
            checks = [
                torch.equal(codes_k, q.codes.to(torch.long) >> (max_bits - k)),
                torch.equal(quant.unpack_bitplanes(planes, k, cols), codes_k),
                made is None or torch.equal(codes_k >> 1, made),
            ]
            comparisons += len(checks)
            mismatches += checks.count(False)
            made = codes_k
    for n_bits in range(1, 9):
        codes = torch.randint(0, 2**n_bits, (5, 97), generator=gen)
        planes = quant.pack_bitplanes(codes, n_bits)
        for k in range(1, n_bits + 1):
            comparisons += 1
            mismatches += not torch.equal(
                quant.unpack_bitplanes(planes, k, 97), codes >> (n_bits - k)
            )
    summary = (
        f"{comparisons} exact comparisons over {cases} quantized matrices and random codes of "
        f"widths 1-8: {mismatches} mismatches"
    )
    return Verdict.decide(mismatches == 0, summary, comparisons=comparisons, mismatches=mismatches)


CLAIM = numerical_claim(
    run,
    name="quant_nesting_exact",
    title="Any-Precision: k-bit codes are the first k bit-planes of the n-bit codes",
    source="Park et al. (ICML 2024), Any-Precision LLM, Sec. 3-4",
    family="compression",
    seed=SEED,
    tolerance="exact equality of integer codes (no round-off involved)",
    requires=("kernelapprox.compression.quantization",),
    verifies=(
        "kernelapprox.compression.quantization.nested.nested_quantize",
        "kernelapprox.compression.quantization.packing.pack_bitplanes",
        "kernelapprox.compression.quantization.packing.unpack_bitplanes",
    ),
)
