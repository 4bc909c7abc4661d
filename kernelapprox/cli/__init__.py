"""The ``kernelapprox`` command line.

Each sub-command is one module of this package (``kernelapprox.cli.study``,
``kernelapprox.cli.verify``, ...) that exposes ``register(subparsers)``, which adds an
``argparse`` parser whose ``func`` default runs the command and returns an exit status. The
modules hold only the command line (options, printing); the work they start lives in the
package that owns it (``study.runner``, ``proofs``, ``dynamics``, ...). Every command gets
``--format text|json``, ``--out DIR``, ``--no-progress`` and ``--seed N`` from
:func:`kernelapprox.cli._common.add_common_options`; ``docs/api/cli.md`` is generated from the
parsers (:mod:`kernelapprox.cli._docs`).

Errors are one line on stderr, never a traceback, and the exit status says whose they are
(:func:`exit_status`):

* **2, a user error**: the command line or the input is wrong and the user can fix it.
  Bad options (``argparse``), ``ValueError`` and ``TypeError`` (which name the parameter and
  what is allowed), and an ``OSError`` that says a path names the wrong thing: it does not
  exist (``FileNotFoundError``), a file stands where a folder is needed
  (``NotADirectoryError``, ``FileExistsError``) or a folder where a file is needed
  (``IsADirectoryError``), or the name is too long or loops.
* **1, an environment failure**: the input was fine but the machine stopped the work.
  :class:`~kernelapprox.errors.EnvironmentFailure` (its message says what was kept and how
  to continue), every other ``OSError`` (permission denied, read-only or full disk, I/O and
  connection errors), running out of memory, and a missing optional dependency (a
  ``ModuleNotFoundError`` for a module outside kernelapprox).
* Anything else is a bug in kernelapprox: it propagates with its full traceback (the
  interpreter's exit status 1), because the traceback is what a bug report needs.

Setting ``KERNELAPPROX_DEBUG=1`` shows the traceback of user errors and environment
failures too. Commands check their options before any slow work (loading a model, creating
``--out``), so a user error costs no time and leaves nothing behind; the helpers for that
are :func:`check_out_dir` and :func:`check_out_file`, and
:func:`kernelapprox._io.json_text` writes JSON without ``NaN``.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import sys
from collections.abc import Collection, Sequence
from typing import Any

# the path checks live in _io (integrations use them too); re-exported for the commands
from kernelapprox._io import check_out_dir as check_out_dir
from kernelapprox._io import check_out_file as check_out_file
from kernelapprox.cli._text import PlainHelpFormatter
from kernelapprox.errors import EnvironmentFailure

#: (command name, module that defines ``register``). :func:`main` imports only the module of
#: the command given, so ``kernelapprox --help`` and ``--version`` import none of them (they
#: import torch and scipy) and a command's heavy imports load only when it runs.
COMMANDS: tuple[tuple[str, str], ...] = (
    ("study", "kernelapprox.cli.study"),
    ("verify", "kernelapprox.cli.verify"),
    ("dynamics", "kernelapprox.cli.dynamics"),
    ("bench", "kernelapprox.cli.bench"),
    ("convert", "kernelapprox.cli.convert"),
    ("compress", "kernelapprox.cli.compress"),
)
#: The one-line help of each command, listed by ``kernelapprox --help`` without importing the
#: command's module; each module's ``register`` passes the same line as ``help=`` (a test
#: holds them equal).
SUMMARIES: dict[str, str] = {
    "study": "run an approximation-error study (kernels x maps x samplers x feature counts)",
    "verify": "run every claim in proofs/ and print its verdict",
    "dynamics": "training-dynamics experiments (invariant subspace, completion, depth, EST)",
    "bench": "attention speed, memory and error against torch SDPA and other peers",
    "convert": "convert all-MiniLM-L6-v2 to feature attention, distill, report agreement",
    "compress": "model compression (nested quantization, pruning) with its error measured",
}


class _Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line and exit status 2, and whose help is
    plain text (:class:`~kernelapprox.cli._text.PlainHelpFormatter`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", PlainHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


class _Version(argparse.Action):
    """``--version``: print ``kernelapprox VERSION`` and exit; the version (package metadata)
    is read only then, so that building the parser for ``--help`` does not pay for it."""

    def __init__(
        self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS, **kwargs: Any
    ) -> None:
        kwargs.setdefault("help", "show the version and exit")
        super().__init__(option_strings, dest=dest, default=argparse.SUPPRESS, nargs=0, **kwargs)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        from kernelapprox import __version__

        print(f"kernelapprox {__version__}")
        parser.exit()


#: ``OSError`` numbers that mean "this path names the wrong thing" (a user error, status 2);
#: every other ``OSError`` is the environment's (status 1).
PATH_ERRNOS = frozenset(
    {errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.EEXIST, errno.ENAMETOOLONG, errno.ELOOP}
)
_PATH_ERRORS = (FileNotFoundError, NotADirectoryError, IsADirectoryError, FileExistsError)
#: Top-level packages whose ``ModuleNotFoundError`` is a bug, not a missing dependency.
_OWN_PACKAGES = frozenset({"kernelapprox", "proofs"})


def _missing_dependency(exc: BaseException) -> str | None:
    """The top-level name of a missing third-party module, else ``None``."""
    if not isinstance(exc, ModuleNotFoundError) or not exc.name:
        return None
    top = exc.name.split(".")[0]
    return None if top in _OWN_PACKAGES else top


def _out_of_memory(exc: BaseException) -> bool:
    """Host ``MemoryError`` or torch's device ``OutOfMemoryError`` (matched by name: no import)."""
    return isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError"


def exit_status(exc: BaseException) -> int | None:
    """Exit status for an exception a command raised: 2 (user), 1 (environment), ``None`` (bug).

    See the module docstring for the rule.
    """
    if isinstance(exc, EnvironmentFailure) or _out_of_memory(exc):
        return 1
    if _missing_dependency(exc) is not None:
        return 1
    if isinstance(exc, OSError):
        return 2 if exc.errno in PATH_ERRNOS or isinstance(exc, _PATH_ERRORS) else 1
    if isinstance(exc, ValueError | TypeError):
        return 2
    return None


def error_message(exc: BaseException, *, resumable: bool = False) -> str:
    """One line for ``exc``; environment failures say what was kept and how to continue.

    ``resumable``: the command has ``--resume``, which the advice then names.
    """
    rerun = "rerun with --resume" if resumable else "rerun"
    missing = _missing_dependency(exc)
    if missing is not None:
        text = (
            f"the optional dependency {missing!r} is not installed; files written so far are "
            f"kept; install it (pip install {missing}) and {rerun}"
        )
    elif isinstance(exc, OSError):
        where = f"{exc.filename}: " if exc.filename is not None else ""
        text = f"{where}{exc.strerror or exc}"
        if exit_status(exc) == 1:
            text += f"; files written before the failure are kept; fix this and {rerun}"
    elif _out_of_memory(exc):
        text = f"out of memory ({exc}); files written so far are kept; use smaller sizes, {rerun}"
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(text.split())


def build_parser(load: Collection[str] | None = None) -> argparse.ArgumentParser:
    """The ``kernelapprox`` parser with every command of :data:`COMMANDS`.

    ``load``: the commands whose modules are imported and registered in full; the others get
    a placeholder parser that only lists them (name and :data:`SUMMARIES` line) in ``--help``.
    ``None`` (the default) loads every command.
    """
    parser = _Parser(
        prog="kernelapprox",
        description="Approximate kernels with random features and verify the theory behind them.",
    )
    parser.add_argument("--version", action=_Version)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, module in COMMANDS:
        if load is None or name in load:
            importlib.import_module(module).register(sub)
        else:
            sub.add_parser(name, help=SUMMARIES.get(name))
    return parser


def command_in(argv: Sequence[str]) -> str | None:
    """The command named in ``argv``: its first word that is not an option (the top-level
    options, ``--help`` and ``--version``, take no value), else ``None``."""
    return next((word for word in argv if not word.startswith("-")), None)


def _escape_what_the_terminal_cannot_show() -> None:
    """Reports use Unicode (±, ≤, √, Greek letters); on a stream whose encoding lacks them
    (``PYTHONIOENCODING=ascii``, a latin-1 terminal) they are written as ``\\u`` escapes
    instead of failing with ``UnicodeEncodeError``."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None and stream.errors == "strict":
            reconfigure(errors="backslashreplace")


def main(argv: Sequence[str] | None = None) -> int:
    from kernelapprox.cli._common import check_common_options, deprecations_on_stderr

    argv = sys.argv[1:] if argv is None else list(argv)
    _escape_what_the_terminal_cannot_show()
    command = command_in(argv)
    parser = build_parser(load=() if command is None else (command,))
    with deprecations_on_stderr():
        args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    try:
        check_common_options(args)
        return int(args.func(args) or 0)
    except KeyboardInterrupt:  # pragma: no cover - interactive
        hint = " (use --resume)" if hasattr(args, "resume") else ""
        print(f"interrupted; results written so far are kept{hint}", file=sys.stderr)
        return 130
    except Exception as exc:
        status = exit_status(exc)
        if status is None or os.environ.get("KERNELAPPROX_DEBUG", "") not in ("", "0"):
            raise
        message = error_message(exc, resumable=hasattr(args, "resume"))
        print(f"kernelapprox {args.command}: error: {message}", file=sys.stderr)
        return status


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
