"""``kernelapprox verify``: run the theory-verification catalogue in :mod:`proofs`.

Prints a table (claim, source, method, verdict, evidence, time) as text, JSON or markdown.
Exit status: 0 when every claim reached its expected verdict; 1 when any claim did not (a
``fails`` verdict, an unexpected ``holds``/``refuted``, or an exception in a check); pending
claims (their code is not available yet) are listed and counted separately and fail the run
only with ``--strict``; 2 for bad options, e.g. an unknown ``--only`` name.

``--seed N`` reruns every seeded experiment from its recorded seed plus ``N`` (default 0: the
recorded seeds); the report records ``N`` and the seed each claim ran from.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from types import ModuleType

from kernelapprox.cli import SUMMARIES
from kernelapprox.cli._common import add_common_options, comma_list


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "verify",
        help=SUMMARIES["verify"],
        description=(
            "Run the machine-checked claims of the proofs/ catalogue (sympy proofs and "
            "seeded numerical experiments) and print claim, source, method, verdict, "
            "evidence and time. Exit status 1 if a verdict differs from its expected "
            "verdict; pending claims (code not available yet) fail the run only with --strict."
        ),
    )
    parser.add_argument(
        "--only",
        action="extend",
        type=comma_list(what="claim names"),
        metavar="NAME",
        help="run only this claim (repeat, or separate names with commas)",
    )
    parser.add_argument("--family", metavar="FAMILY", help="run only the claims of one family")
    parser.add_argument(
        "--strict", action="store_true", help="pending claims make the exit status 1"
    )
    parser.add_argument(
        "--thorough",
        action="store_true",
        help="larger experiments (also enabled by KERNELAPPROX_THOROUGH=1)",
    )
    parser.add_argument(
        "--list", action="store_true", help="list the claims (name, family, method) and exit"
    )
    parser.add_argument(
        "--write-docs",
        metavar="DIR",
        help="also write the markdown pages (index and one per family), e.g. docs/theory",
    )
    add_common_options(
        parser,
        writes="report.json (the report as JSON)",
        extra_formats=("markdown",),
        seed_help=(
            "offset added to the recorded root seed of every seeded experiment (an integer "
            ">= 0; 0, the default, reruns the recorded seeds and so the recorded verdicts); "
            "recorded in the report; claims whose check takes no seed keep theirs"
        ),
    )
    parser.set_defaults(func=run_command)
    return parser


def catalogue_package() -> ModuleType:
    """The claim catalogue: ``kernelapprox.proofs`` where the wheel installed it, else the
    checkout's top-level ``proofs`` (an editable install or a source tree)."""
    name = "kernelapprox.proofs" if importlib.util.find_spec("kernelapprox.proofs") else "proofs"
    return importlib.import_module(name)


def run_command(args: argparse.Namespace) -> int:
    from kernelapprox._io import atomic_write, check_out_dir

    proofs = catalogue_package()

    out = check_out_dir(args.out)
    check_out_dir(args.write_docs, "--write-docs")
    if args.write_docs and args.seed:
        raise ValueError(
            "--write-docs writes the pages of the recorded seeds; run it without --seed "
            f"(got --seed {args.seed})"
        )
    claims = proofs.select(args.only, family=args.family)
    if args.list:
        for claim in claims:
            print(f"{claim.name:32s} {claim.family:16s} {claim.method:10s} {claim.title}")
        return 0
    report = proofs.run_claims(
        claims,
        thorough=True if args.thorough else None,
        progress=not args.no_progress,
        file=sys.stderr,
        seed_offset=args.seed,
    )
    sys.stdout.write(proofs.format_report(report, args.format, strict=args.strict))
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write(out / "report.json", proofs.format_report(report, "json", strict=args.strict))
    if args.write_docs:
        for path in proofs.write_docs(args.write_docs, report):
            print(f"wrote {path}", file=sys.stderr)
    return report.exit_status(strict=args.strict)
