"""``kernelapprox study``: run an approximation-error study and print its table."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

from kernelapprox.cli import SUMMARIES
from kernelapprox.cli._common import add_common_options, comma_list
from kernelapprox.study.data import SmallDataWarning
from kernelapprox.study.presets import PRESET_TABLES, PRESETS, preset
from kernelapprox.study.report import (
    figure_name,
    format_comparison,
    format_skipped,
    format_table,
    to_json,
)
from kernelapprox.study.runner import run_study
from kernelapprox.study.store import StoreWarning

_names = comma_list()


class _SamplerList(comma_list):
    """Samplers, comma-separated; a sampler's options follow a colon and are comma-separated
    too: an item with ``=`` and no ``:`` is another option of the sampler before it, so
    ``mc,spherical:directions=orthogonal,points=lattice,sobol`` names three samplers."""

    def __call__(self, text: str) -> list[str]:
        out: list[str] = []
        for item in super().__call__(text):
            if "=" in item and ":" not in item and out and ":" in out[-1]:
                out[-1] += "," + item
            else:
                out.append(item)
        return out


_samplers = _SamplerList(what="samplers")


_ints = comma_list(int, "integers")


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


def _count_or_all(text: str) -> int | str:
    if text == "all":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or 'all', got {text!r}") from None


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
    "baseline": "baseline",
    "target": "target",
    "ridge": "ridge",
}


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "study",
        help=SUMMARIES["study"],
        description=(
            "Sweep kernels x maps x samplers x weights x feature counts x replications, write "
            "results.csv, summary.json and a figure per metric to --out, and print a table. "
            "With no options it runs the built-in default study (under a minute on 2 cores). "
            "results.csv is append-only and every row carries a checksum: an interrupted run "
            "loses at most the cell in progress, and --resume or --extend never rewrite a row. "
            "Exit status 2 for a wrong option, input or --out; 1 when the environment stopped "
            "the run (read-only or full disk, --out locked by another run, a lost cluster); the "
            "message says what was kept."
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
        help="built-in data (normal, digits, qk, qk_unit) or a .npy or .csv file of shape (n, d)",
    )
    p.add_argument(
        "--n-points",
        type=_count_or_all,
        help="number of data points n, or 'all' (files, digits): a seeded random subsample, "
        "all rows of a smaller file",
    )
    p.add_argument("--features", type=_ints, help="numbers of frequencies m, e.g. 16,32,64")
    p.add_argument(
        "--samplers",
        type=_samplers,
        help="mc,orthogonal,sorf,sobol,halton,lattice,spherical,simplex,mub; a sampler's "
        "options after a colon, e.g. spherical:directions=orthogonal",
    )
    p.add_argument("--weights", type=_names, help="per-frequency weights: uniform,box,fitted")
    p.add_argument(
        "--maps", type=_names, help="sincos,cos_offset,positive,hyperbolic,fourier,dct,dct_released"
    )
    p.add_argument(
        "--metric",
        type=_names,
        help="rel_fro,rel_spectral,max_abs,rownorm_fro (Gram errors), krr_mse,class_error "
        "(kernel ridge regression's test error, misclassification rate; labelled data)",
    )
    p.add_argument("--replications", type=int, help="independent randomizations per cell")
    p.add_argument("--level", type=float, help="confidence level of the intervals (0.95)")
    p.add_argument(
        "--target",
        help="targets of the --data file's rows (.npy or .csv, one value per row) for the "
        "learning metrics krr_mse and class_error (digits has its labels)",
    )
    p.add_argument(
        "--ridge", type=float, help="ridge lambda of the learning metrics' kernel ridge (0.01)"
    )
    p.add_argument(
        "--baseline",
        help="sampler the others are compared with at equal m (error ratio, features ratio; "
        "default mc)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the study in --out (after an interruption), running only what is "
        "missing; every option that changes a row must equal the stored spec.json (--level "
        "may differ), otherwise it is refused with the differing options named",
    )
    p.add_argument(
        "--extend",
        action="store_true",
        help="grow the study in --out: more --replications, or more values of --data, "
        "--kernel, --maps, --samplers, --weights, --dim, --features or --metric; only the "
        "new rows are computed and appended (same values as a fresh run of the larger "
        "study); removing values or changing any other option is refused",
    )
    p.add_argument(
        "--tables", type=_names, help="metrics to print a table for (default: the first metric)"
    )
    p.add_argument(
        "--scheduler",
        help="run the cells on a Dask cluster: a scheduler address (tcp://host:8786) or 'local' "
        "(a cluster on this machine, on 127.0.0.1 without a dashboard); results are unpickled "
        "from the cluster, so use only one you trust",
    )
    add_common_options(
        p,
        writes="results.csv, summary.json and convergence.png (locked while a run writes to "
        "it, so a second run into the same folder fails at once)",
        out_default="kernelapprox-study",
        seed_default=None,
        seed_help="root seed of the study, an integer >= 0 (replications are spawned from "
        "it; default: the preset's, 0)",
    )
    p.set_defaults(func=run)  # fmt: skip


def _show_store_warnings(show: Any) -> Any:
    """A ``warnings.showwarning`` printing store warnings on one line, others as ``show`` does."""

    def showwarning(message, category, filename, lineno, file=None, line=None):  # type: ignore[no-untyped-def]
        if issubclass(category, StoreWarning | SmallDataWarning):
            print(f"kernelapprox study: warning: {message}", file=sys.stderr)
        else:
            show(message, category, filename, lineno, file, line)

    return showwarning


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
    out = args.out  # a str: Path("") would be the working directory, which check_out refuses
    with warnings.catch_warnings(), contextlib.ExitStack() as restore:
        if args.scheduler is not None:
            # a lost scheduler is reported on one line (exit 1); dask's client would also
            # log the traceback of each reconnection attempt (imported first: importing
            # distributed sets its loggers' levels)
            with contextlib.suppress(ImportError):
                import distributed  # noqa: F401
            client_log = logging.getLogger("distributed.client")
            restore.callback(client_log.setLevel, client_log.level)
            client_log.setLevel(logging.CRITICAL)
        warnings.simplefilter("always", StoreWarning)
        warnings.showwarning = _show_store_warnings(warnings.showwarning)
        result = run_study(
            spec, out, resume=args.resume, extend=args.extend, progress=not args.no_progress,
            scheduler=args.scheduler, outputs=True,
        )  # fmt: skip
    summary = result.summary
    assert summary is not None  # outputs=True
    if args.format == "json":
        sys.stdout.write(to_json(summary) + "\n")
        return 0
    printed = [t for m in tables for t in (format_table(summary, m), format_comparison(summary, m))]
    print("\n\n".join(t for t in printed if t))
    if summary["skipped"]:
        print(format_skipped(summary))
    resumed = f" ({result.cells_resumed} cells resumed from disk)" if result.cells_resumed else ""
    print(
        f"\n{result.cells_run} cells run{resumed}; wrote results.csv, summary.json"
        f"{''.join(', ' + figure_name(m, spec.metrics) for m in spec.metrics[:-1])} and "
        f"{figure_name(spec.metrics[-1], spec.metrics)} to {Path(out)}/"
    )
    return 0
