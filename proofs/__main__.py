"""``python -m proofs [options]``: the same as ``kernelapprox verify [options]``.

Regenerate the documentation pages with ``python -m proofs --write-docs docs/theory``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    from kernelapprox.cli._common import check_common_options
    from kernelapprox.cli.verify import register

    parser = argparse.ArgumentParser(prog="python -m proofs")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["verify", *(sys.argv[1:] if argv is None else argv)])
    try:
        check_common_options(args)
        return int(args.func(args))
    except (ValueError, TypeError) as exc:
        print(f"python -m proofs: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
