"""The ``kernelapprox`` command line.

Each sub-command lives in the module that owns its work and exposes
``register(subparsers)``, which adds an ``argparse`` parser whose ``func`` default runs the
command and returns an exit status. Errors in the user's input (``ValueError``,
``TypeError``, ``FileNotFoundError``) are printed on one line and exit with status 2, never
with a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

#: (command name, module that defines ``register``); modules are imported lazily so that
#: ``kernelapprox --help`` stays fast and a command's heavy imports load only when used.
COMMANDS: tuple[tuple[str, str], ...] = (
    ("study", "kernelapprox.study.cli"),
    ("verify", "kernelapprox.verify_cli"),
    ("dynamics", "kernelapprox.dynamics.cli"),
    ("bench", "kernelapprox.attention.bench_cli"),
    ("convert", "kernelapprox.attention.convert_cli"),
)


class _Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    from kernelapprox import __version__

    parser = _Parser(
        prog="kernelapprox",
        description="Approximate kernels with random features and verify the theory behind them.",
    )
    parser.add_argument("--version", action="version", version=f"kernelapprox {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for _name, module in COMMANDS:
        importlib.import_module(module).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (ValueError, TypeError, FileNotFoundError) as exc:
        print(f"kernelapprox {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # pragma: no cover - interactive
        print("interrupted; results written so far are kept (use --resume)", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
