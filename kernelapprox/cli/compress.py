"""``kernelapprox compress METHOD``: model compression with its error measured.

Each method is a sub-command defined in its own module, which exposes
``register(subparsers)`` (adding a parser whose ``func`` default runs it and returns an exit
status), exactly as the top-level commands do:

* ``quantize`` -- Any-Precision nested quantization (:mod:`.compress_quantize`);
* ``apt`` -- APT adaptive pruning and tuning (:mod:`.compress_apt`).
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

from kernelapprox.cli import SUMMARIES

#: (method, module defining ``register``); a module not yet present is left out.
METHODS: tuple[tuple[str, str], ...] = (
    ("quantize", "kernelapprox.cli.compress_quantize"),
    ("apt", "kernelapprox.cli.compress_apt"),
)


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "compress",
        help=SUMMARIES["compress"],
        description=__doc__.split("\n\n")[0],
    )
    methods = p.add_subparsers(dest="method", metavar="METHOD", parser_class=type(p))
    present = [
        (name, module) for name, module in METHODS if importlib.util.find_spec(module) is not None
    ]
    for _name, module in present:
        importlib.import_module(module).register(methods)
    names = ", ".join(name for name, _ in present)
    p.set_defaults(func=lambda args: p.error(f"choose a method: {names}"))
