"""``kernelapprox study``: run an approximation-error study and print its table."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from kernelapprox.study.presets import PRESET_TABLES, PRESETS, preset
from kernelapprox.study.report import format_skipped, format_table, write_outputs
from kernelapprox.study.runner import run_study


def _names(text: str) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise argparse.ArgumentTypeError("expected a comma-separated list")
    return items


def _ints(text: str) -> list[int]:
    try:
        return [int(t) for t in _names(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None


def _number_or(word: str):  # type: ignore[no-untyped-def]
    def parse(text: str) -> float | str:
        if text == word:
            return text
        try:
            return float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected a number or {word!r}, got {text!r}"
            ) from None

    return parse


#: option -> StudySpec field, for options that override the preset when given.
OVERRIDES = {
    "kernel": "kernels",
    "length_scale": "length_scale",
    "scale": "kernel_scale",
    "dim": "dims",
    "data": "data",
    "n_points": "n_points",
    "features": "features",
    "samplers": "samplers",
    "weights": "weights",
    "maps": "maps",
    "metric": "metrics",
    "replications": "replications",
    "seed": "seed",
    "level": "level",
}


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "study",
        help="run an approximation-error study (kernels x maps x samplers x feature counts)",
        description=(
            "Sweep kernels x maps x samplers x weights x feature counts x replications, write "
            "results.csv, summary.json and convergence.png to --out, and print a table. With no "
            "options it runs the built-in default study (under a minute on 2 cores)."
        ),
    )
    p.add_argument("--preset", default="default", choices=sorted(PRESETS),
                   help="named study to start from (default: %(default)s)")  # fmt: skip
    p.add_argument("--kernel", type=_names, help="gaussian,laplacian,softmax")
    p.add_argument(
        "--length-scale",
        type=_number_or("median"),
        help="Gaussian/Laplacian length scale, or 'median' (median pairwise distance)",
    )
    p.add_argument(
        "--scale",
        type=_number_or("inv_sqrt_dim"),
        help="softmax kernel scale s in exp(s x.y), or 'inv_sqrt_dim'",
    )
    p.add_argument("--dim", type=_ints, help="dimension(s) d of synthetic data, e.g. 2,8,64")
    p.add_argument(
        "--data",
        type=_names,
        help="built-in data (normal, digits, qk, qk_unit) or a .npy file of shape (n, d)",
    )
    p.add_argument("--n-points", type=int, help="number of data points n")
    p.add_argument("--features", type=_ints, help="numbers of frequencies m, e.g. 16,32,64")
    p.add_argument(
        "--samplers", type=_names, help="mc,orthogonal,sorf,sobol,halton,lattice,spherical"
    )
    p.add_argument("--weights", type=_names, help="per-frequency weights: uniform,box,fitted")
    p.add_argument(
        "--maps", type=_names, help="sincos,cos_offset,positive,hyperbolic,fourier,dct,dct_released"
    )
    p.add_argument("--metric", type=_names, help="rel_fro,rel_spectral,max_abs,rownorm_fro")
    p.add_argument("--replications", type=int, help="independent randomizations per cell")
    p.add_argument("--seed", type=int, help="study seed (replications are spawned from it)")
    p.add_argument("--level", type=float, help="confidence level of the intervals (0.95)")
    p.add_argument("--out", default="kernelapprox-study", help="output folder (%(default)s)")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the study in --out, skipping cells already on disk",
    )
    p.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        help="print the table (text) or the summary (json)",
    )
    p.add_argument(
        "--tables", type=_names, help="metrics to print a table for (default: the first metric)"
    )
    p.add_argument(
        "--scheduler",
        help="run the cells on a Dask cluster: a scheduler address (tcp://host:8786) or 'local'",
    )
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=run)  # fmt: skip


def run(args: argparse.Namespace) -> int:
    spec = preset(args.preset)
    changes = {field: getattr(args, opt) for opt, field in OVERRIDES.items()}
    spec = replace(spec, **{k: v for k, v in changes.items() if v is not None})
    tables = args.tables or PRESET_TABLES.get(args.preset) or [spec.metrics[0]]
    for metric in tables:
        if metric not in spec.metrics:
            known = ", ".join(spec.metrics)
            raise ValueError(
                f"tables: metric {metric!r} is not among the study's metrics ({known})"
            )
    out = Path(args.out)
    result = run_study(
        spec, out, resume=args.resume, progress=not args.no_progress, scheduler=args.scheduler
    )
    summary = write_outputs(result, out)
    if args.format == "json":
        json.dump(summary, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    print("\n\n".join(format_table(summary, metric) for metric in tables))
    if summary["skipped"]:
        print(format_skipped(summary))
    resumed = f" ({result.cells_resumed} cells resumed from disk)" if result.cells_resumed else ""
    print(
        f"\n{result.cells_run} cells run{resumed}; wrote results.csv, summary.json and "
        f"convergence.png to {out}/"
    )
    return 0
