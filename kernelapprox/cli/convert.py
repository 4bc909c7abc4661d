"""``kernelapprox convert``: convert the all-MiniLM-L6-v2 sentence encoder to feature attention,
distill it on an offline English corpus and report how close it stays to the original.

This module is the command line only; the experiment itself (corpus, checkpoints, metrics) is
:mod:`kernelapprox.integrations.minilm_experiment`.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from kernelapprox.cli import SUMMARIES
from kernelapprox.cli._common import DeprecatedAlias, ExtendLists, add_common_options, comma_list

#: The maps the experiment can convert to (the same tuple as the experiment's ``MAPS``,
#: repeated here so that building the parser imports neither torch nor the experiment).
MAPS = ("dct", "positive", "dct_released", "hyperbolic", "elu")
#: The maps converted when ``--maps`` is not given.
DEFAULT_MAPS = ("dct", "positive", "dct_released")


def format_table(report: dict[str, Any]) -> str:
    """The experiment as a plain-text table."""
    lines = [
        f"{report['model']}: {report['n_train']} train / {report['n_heldout']} held-out sentences,"
        f" n_features={report['n_features'] or 'head_dim'}, train={report['train']}, "
        f"{report['threads']} threads",
        f"{'map':<14}{'cos before':>11}{'cos after':>11}{'top1 before':>13}{'top1 after':>12}"
        f"{'steps':>7}{'seconds':>9}",
    ]
    for r in report["rows"]:
        lines.append(
            f"{r['map']:<14}{r['before']['cosine']:>11.4f}{r['after']['cosine']:>11.4f}"
            f"{r['before']['retrieval']:>13.3f}{r['after']['retrieval']:>12.3f}"
            f"{r['steps']:>7d}{r['seconds']:>9.1f}"
        )
    return "\n".join(lines)


def _run(args: argparse.Namespace) -> int:
    from kernelapprox._io import atomic_write, check_out_dir, check_out_file, json_text

    output = check_out_file(args.output, "--output")
    out = check_out_dir(args.out)
    start = time.perf_counter()
    from kernelapprox.integrations.minilm_experiment import run_experiment

    report = run_experiment(
        maps=list(args.maps or DEFAULT_MAPS),
        n_features=args.n_features,
        budget=args.budget,
        steps=args.steps,
        train=args.train,
        lr=args.lr,
        map_lr=args.map_lr,
        attention_weight=args.attention_weight,
        output_weight=args.output_weight,
        batch_size=args.batch_size,
        max_train=args.max_train,
        max_heldout=args.max_heldout,
        seed=args.seed,
        checkpoint_dir=args.checkpoint_dir,
        resume=args.resume,
        progress=not args.no_progress,
    )
    report["total_seconds"] = time.perf_counter() - start
    text = json_text(report)
    print(text if args.format == "json" else format_table(report))
    if output is not None:
        atomic_write(output, text)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write(out / "report.json", text + "\n")
    return 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "convert",
        help=SUMMARIES["convert"],
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument(
        "--maps",
        type=comma_list(what="maps", choices=MAPS),
        nargs="+",
        action=ExtendLists,
        default=None,
        help=(
            f"the maps to convert to, one distillation each: comma-separated, of {','.join(MAPS)} "
            f"(default {','.join(DEFAULT_MAPS)}; space-separated names work too)"
        ),
    )
    p.add_argument("--n-features", type=int, default=None, help="features per layer (head_dim)")
    p.add_argument("--budget", type=float, default=180.0, help="distillation seconds per map")
    p.add_argument("--steps", type=int, default=100000, help="maximum steps per map")
    p.add_argument(
        "--train",
        choices=["map", "all"],
        default="all",
        help="train the maps only, or all weights (default: %(default)s)",
    )
    p.add_argument("--lr", type=float, default=2e-4, help="learning rate of the weights")
    p.add_argument("--map-lr", type=float, default=1e-2, help="learning rate of the maps")
    p.add_argument(
        "--attention-weight",
        type=float,
        default=1.0,
        help="weight of the layer-wise attention-output loss",
    )
    p.add_argument(
        "--output-weight",
        type=float,
        default=10.0,
        help="weight of the final embedding (1 - cosine) loss",
    )
    p.add_argument("--batch-size", type=int, default=16, help="sentences per step")
    p.add_argument("--max-train", type=int, default=20000, help="training sentences, at most")
    p.add_argument("--max-heldout", type=int, default=1000, help="held-out sentences, at most")
    p.add_argument(
        "--checkpoint-dir",
        metavar="DIR",
        default=None,
        help="checkpoint each map's distillation in DIR/<map>/ (never overwritten)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the checkpoints in --checkpoint-dir (same options)",
    )
    add_common_options(p, writes="report.json (the report as JSON)")
    p.add_argument(
        "--output",
        metavar="FILE",
        default=None,
        action=DeprecatedAlias,
        replacement="--out DIR (which writes DIR/report.json)",
        help="deprecated: use --out DIR; writes the report as JSON to FILE",
    )
    p.add_argument(
        "--quiet",
        dest="no_progress",
        nargs=0,
        const=True,
        default=False,
        action=DeprecatedAlias,
        replacement="--no-progress",
    )
    p.set_defaults(func=_run)
