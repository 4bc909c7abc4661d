r"""Any-Precision: every width from $b_0$ to $n$ costs one $n$-bit model plus the tables.

Statement
---------
For a weight matrix of $o$ rows and $i = 32 u$ columns stored as $n$ int32 bit-planes and
one fp16 table per width, the bytes of all widths $b_0..n$ together are
$$B_{\mathrm{nested}} = 4 n\,o\,u + 2 o \sum_{k=b_0}^{n} 2^k
= \underbrace{4 n\,o\,u + 2 o\,2^n}_{\text{one } n\text{-bit model}}
+ 2 o\,(2^n - 2^{b_0}),$$
against $B_{\mathrm{separate}} = \sum_{k=b_0}^{n} (4 k\,o\,u + 2 o\,2^k)$ for separate models.
For $b_0 = 3$, $n = 8$: $B_{\mathrm{nested}} / B_{\mathrm{one}} = 1 + 248 / (16 u + 256)$,
which is $319/288 \approx 1.108$ at $i = 4096$ and $87/56 \approx 1.554$ at $i = 384$;
$B_{\mathrm{separate}} / B_{\mathrm{nested}} = (33 u + 252)/(8 u + 252)$, which is
$1119/319 \approx 3.51$ at $i = 4096$ and $54/29 \approx 1.86$ at $i = 384$.

Source
------
Park, Hyun, Cho, Sim & Lee (ICML 2024), Any-Precision LLM, Sec. 4 (memory of one $n$-bit
model); `shared/reference/model_compression.md` §3 (1.108x at 4096, 1.55x at 384, 3.5x
less than six separate models).

Method
------
Symbolic: sympy checks the decomposition above for symbolic $o, u, n, b_0$; the package's
exact counts (`storage_bytes`, `nested_storage`, `QuantizedLinear.nbytes`) are compared with
the formula on a grid ($o \in \{1, 7, 384\}$, $i \in \{32, 384, 4096\}$,
all $1 \le b_0 \le n \le 8$), with the bytes of the tensors a `QuantizedLinear` actually
holds (including $i = 40$, not a multiple of 32: $u = \lceil i / 32 \rceil$), and with the
closed-form ratios at $b_0 = 3$, $n = 8$, all as exact rationals; the residuals must be
exactly 0.
"""

from __future__ import annotations

from fractions import Fraction

import sympy as sp

from ._core import Claim, Verdict, docstring_section, package_module


def run(*, thorough: bool = False) -> Verdict:
    quant = package_module("kernelapprox.compression.quantization")
    o, u, n, b0, k = sp.symbols("o u n b_0 k", positive=True, integer=True)
    nested = 4 * n * o * u + 2 * o * sp.summation(2**k, (k, b0, n))
    one = 4 * n * o * u + 2 * o * 2**n
    residuals = {
        "nested - (one model + extra tables)": sp.simplify(nested - (one + 2 * o * (2**n - 2**b0)))
    }
    bad = 0
    for rows in (1, 7, 384):
        for cols in (32, 384, 4096):
            words = cols // 32
            for top in range(1, 9):
                for seed_bits in range(1, top + 1):
                    subs = {o: rows, u: words, n: top, b0: seed_bits}
                    want = int(nested.subs(subs))
                    got = quant.storage_bytes(rows, cols, top, range(seed_bits, top + 1))["total"]
                    s = quant.nested_storage([(rows, cols)], seed_bits, top)
                    sep = sum(
                        4 * j * rows * words + 2 * rows * 2**j for j in range(seed_bits, top + 1)
                    )
                    bad += (
                        (got != want)
                        + (s["nested"] != want)
                        + (s["one_model"] != int(one.subs(subs)))
                        + (s["separate"] != sep)
                    )
    import torch

    gen = torch.Generator().manual_seed(0)
    for rows, cols, seed_bits, top in ((7, 384, 3, 8), (3, 40, 2, 5)):
        w = torch.randn(rows, cols, generator=gen, dtype=torch.float64)
        layer = quant.QuantizedLinear(
            quant.nested_quantize(w, w**2, seed_bits=seed_bits, max_bits=top, iterations=2, seed=0),
            None,
        )
        words = -(-cols // 32)
        want = 4 * top * rows * words + 2 * rows * sum(2**j for j in range(seed_bits, top + 1))
        planes = layer.qweight.numel() * layer.qweight.element_size()
        tables = sum(layer.table(j).numel() * layer.table(j).element_size() for j in layer.widths)
        bad += (layer.nbytes()["total"] != want) + (planes + tables != want)
    residuals["package counts - formula (number of mismatches)"] = sp.Integer(bad)
    for cols in (384, 4096):
        words = Fraction(cols // 32)
        s = quant.nested_storage([(384, cols)], 3, 8)
        ratio = Fraction(s["nested"], s["one_model"])
        residuals[f"nested / one model - 1 - 248/(16u + 256), i = {cols}"] = sp.Rational(
            ratio - 1 - Fraction(248) / (16 * words + 256)
        )
        sep = Fraction(s["separate"], s["nested"])
        residuals[f"separate / nested - (33u + 252)/(8u + 252), i = {cols}"] = sp.Rational(
            sep - (33 * words + 252) / (8 * words + 252)
        )
    ratios = {cols: quant.nested_storage([(1, cols)], 3, 8) for cols in (384, 4096)}
    nonzero = {key: v for key, v in residuals.items() if v != 0}
    summary = (
        f"all {len(residuals)} residuals are 0: nested / one 8-bit model = "
        f"{ratios[4096]['nested_over_one_model']:.4f} at 4096 wide, "
        f"{ratios[384]['nested_over_one_model']:.4f} at 384; separate / nested = "
        f"{ratios[4096]['separate_over_nested']:.3f} at 4096"
        if not nonzero
        else "nonzero residual: " + "; ".join(f"{key} = {v}" for key, v in nonzero.items())
    )
    return Verdict.decide(
        not nonzero,
        summary,
        residuals={key: str(v) for key, v in residuals.items()},
        nested_over_one_model_4096=ratios[4096]["nested_over_one_model"],
        nested_over_one_model_384=ratios[384]["nested_over_one_model"],
        separate_over_nested_4096=ratios[4096]["separate_over_nested"],
    )


CLAIM = Claim(
    name="quant_memory",
    title="Any-Precision: all widths cost one n-bit model plus tables (exact bytes)",
    statement=docstring_section(__doc__, "Statement"),
    source="Park et al. (ICML 2024), Any-Precision LLM, Sec. 4 (memory)",
    method="symbolic",
    expected="holds",
    family="compression",
    run=run,
    module=__name__,
    requires=("kernelapprox.compression.quantization",),
    verifies=(
        "kernelapprox.compression.quantization.packing.storage_bytes",
        "kernelapprox.compression.quantization.packing.nested_storage",
        "kernelapprox.compression.quantization.layer.QuantizedLinear",
    ),
)
