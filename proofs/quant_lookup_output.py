r"""Any-Precision: the table-lookup matmul equals dequantize-then-matmul, bias included.

Statement
---------
For the $k$-bit codes $q^{(k)}_{rj} = q_{rj} \gg (n - k)$ and the fp16 table $T_k$ of a nested
quantization, the lookup path computes, for every token $x$ and output $r$,
$$y_r = \sum_{c < 2^k} T_k[r, c] \sum_{j:\, q^{(k)}_{rj} = c} x_j + b_r
= \sum_j \hat W_{rj}\, x_j + b_r, \qquad \hat W_{rj} = T_k[r, q^{(k)}_{rj}],$$
the output of the dense layer with the dequantized weight: regrouping the sum by code changes
only the order of the additions.

Source
------
Park, Hyun, Cho, Sim & Lee (ICML 2024), Any-Precision LLM, Sec. 4 (bit-plane layout and the
table-lookup kernel); `shared/reference/model_compression.md` §3.

Method
------
Independent reference in float64 numpy: the codes shifted from the `max_bits`-bit codes of
`nested_quantize`, the layer's stored fp16 tables, $\hat W$ by `take_along_axis`, then
`x @ W.T + b` (the bit planes, the package's unpacking and its gather are not used). The
tables are the layer's own: torch rounds float64 to float16 through float32, which in rare
ties differs by one fp16 step from numpy's direct rounding, and the rounding of the table is
not what this claim checks.
`kernelapprox.compression.quantization.layer.QuantizedLinear` on the `"lookup"` backend and
`lookup_linear` run at every width 3-6 on seeded layers (in 40, 100 and 1100 columns, the last
spanning two blocks of `LOOKUP_COLUMNS`; 1-17 tokens; with and without a bias whose size is that
of the outputs) in float64 and float32. Tolerance, the summation bound of Higham (2002, Sec. 3.1):
$|\Delta y_r| \le (n + 2^k + 2)\,u \sum_j |x_j \hat W_{rj}| + u|b_r|$ with $u = 2^{-53}$
(float64) or $2^{-24}$ (float32); the bias is far above it.
"""

from __future__ import annotations

import numpy as np

from ._core import Verdict, package_module
from ._numerical import Checks, numerical_claim
from ._torch import single_threaded

SEED = 20240723
SHAPES = ((6, 40, 1), (5, 100, 3), (3, 1100, 17))
UNIT_ROUNDOFF = {"float64": 2.0**-53, "float32": 2.0**-24}


def reference_weight(codes: np.ndarray, table: np.ndarray, shift: int) -> np.ndarray:
    """``W[r, j] = table[r, codes[r, j] >> shift]`` in float64."""
    return np.take_along_axis(table.astype(np.float64), codes.astype(np.int64) >> shift, axis=1)


def run(*, thorough: bool = False, seed: int = SEED) -> Verdict:
    import torch

    quant = package_module("kernelapprox.compression.quantization")
    return _experiment(quant, torch, thorough, seed)


@single_threaded  # tiny tensors: intra-op threads only add contention
def _experiment(quant, torch, thorough: bool, seed: int) -> Verdict:
    from kernelapprox.compression.quantization.layer import QuantizedLinear, lookup_linear

    gen = torch.Generator().manual_seed(seed)
    checks = Checks()
    worst = dict.fromkeys(("float64", "float32"), 0.0)
    bias_share, calls = 0.0, 0
    shapes = SHAPES + (((4, 300, 2), (2, 2050, 5)) if thorough else ())
    for case, (out, cols, tokens) in enumerate(shapes):
        w = torch.randn(out, cols, generator=gen, dtype=torch.float64)
        f = torch.rand(out, cols, generator=gen, dtype=torch.float64) + 0.1
        q = quant.nested_quantize(w, f, seed_bits=3, max_bits=6, iterations=10, seed=case + seed)
        x64 = torch.randn(tokens, cols, generator=gen, dtype=torch.float64)
        for with_bias in (True, False):
            bias = torch.randn(out, generator=gen, dtype=torch.float64) * cols**0.5
            b = bias if with_bias else None
            b_np = bias.numpy() if with_bias else np.zeros(out)
            for dtype in (torch.float64, torch.float32):
                layer = QuantizedLinear(q, b, dtype=dtype, cache=False, backend="lookup")
                x = x64.to(dtype)
                xn = x.double().numpy()
                u = UNIT_ROUNDOFF[str(dtype).removeprefix("torch.")]
                bn = torch.as_tensor(b_np).to(dtype).double().numpy()
                for bits in q.widths:
                    table = layer.table(bits).numpy()  # the stored fp16 table
                    W = reference_weight(q.codes.numpy(), table, 6 - bits)
                    want = xn @ W.T + bn
                    bound = (cols + 2**bits + 2) * u * (np.abs(xn) @ np.abs(W).T) + u * np.abs(bn)
                    layer.bits = bits
                    got = layer(x).double().numpy()
                    direct = lookup_linear(
                        x, layer.qweight, layer.table(bits), bits, cols, layer.bias
                    ).double().numpy()  # fmt: skip
                    for y in (got, direct):
                        ratio = float(np.max(np.abs(y - want) / bound))
                        key = str(dtype).removeprefix("torch.")
                        worst[key] = max(worst[key], ratio)
                        calls += 1
                    if with_bias:
                        share = float(np.min(np.abs(bn) / bound))
                        bias_share = share if bias_share == 0 else min(bias_share, share)
    for key, ratio in worst.items():
        checks.require(
            ratio <= 1.0,
            f"{key}: lookup output differs from dequantize-and-matmul by {ratio:.2f} of the "
            f"summation bound (limit 1)",
        )
    return checks.verdict(
        f"{calls} lookup outputs (widths 3-6, {len(shapes)} shapes up to "
        f"{max(c for _, c, _ in shapes)} columns, with and without bias): within "
        f"{max(worst.values()):.3f} of the summation bound of numpy's x Wᵀ + b (float64, "
        f"float32); the smallest bias entry is {bias_share:.1e} bounds",
        largest_error_over_bound=worst,
        smallest_bias_over_bound=bias_share,
        calls=calls,
    )


CLAIM = numerical_claim(
    run,
    name="quant_lookup_output",
    title="Any-Precision: the table-lookup matmul equals dequantize-then-matmul, bias included",
    source="Park et al. (ICML 2024), Any-Precision LLM, Sec. 4 (table-lookup kernel)",
    family="compression",
    seed=SEED,
    tolerance="summation bound (n + 2ᵏ + 2) u Σⱼ |xⱼ Wᵣⱼ| + u |bᵣ| (Higham 2002, Sec. 3.1)",
    requires=("kernelapprox.compression.quantization",),
    verifies=(
        "kernelapprox.compression.quantization.layer.QuantizedLinear.forward",
        "kernelapprox.compression.quantization.layer.lookup_linear",
    ),
)
