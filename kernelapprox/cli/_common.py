"""The options every command shares, added by one helper so that they mean the same everywhere.

:func:`add_common_options` gives a command

* ``--format text|json`` (default ``text``): ``text`` prints a table for a person, ``json`` one
  JSON document on stdout for a program; a command that had more formats before keeps them as
  further choices (``verify``: ``markdown``; ``bench``: ``table``, the same as ``text``);
* ``--out DIR`` (default: the command's, usually none): the folder the command writes its files
  to; it is checked before any slow work and created only when the first file is written;
* ``--no-progress``: no progress bars or progress lines on stderr;
* ``--seed N`` (an integer >= 0, checked by :func:`check_common_options` before the command
  runs; default: the command's fixed seed, usually 0): the root of all randomness of the run,
  so that the same seed gives the same results.

Every list option is parsed by :class:`comma_list` (``--maps sincos,positive``), so that
spaces, empty items and an empty list mean the same in every command.

:class:`DeprecatedAlias` keeps an old spelling of an option working for one release; using it
prints one :class:`CommandLineDeprecationWarning` line to stderr
(:func:`deprecations_on_stderr`).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

#: The ``--format`` choices every command has, in this order; extra ones follow.
FORMATS: tuple[str, ...] = ("text", "json")
#: The four shared options, by their dest in the parsed namespace.
COMMON_DESTS: tuple[str, ...] = ("format", "out", "no_progress", "seed")


def seed(text: str) -> int:
    """``--seed``'s type: an integer (its sign is checked by :func:`check_common_options`)."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None


class comma_list:
    """An argparse ``type`` for a comma-separated list, the same for every command.

    Items are stripped and empty items dropped (``"a, b,"`` is ``["a", "b"]``); each is
    converted by ``item``, whose ``ValueError`` or ``ArgumentTypeError`` refuses the list, and
    must be one of ``choices`` when given. A list with no item is refused too: an option given
    must name something (leave it out for the command's default). A refusal is argparse's
    usage error naming the option (exit status 2), ``expected comma-separated {what}``.
    With ``action="extend"`` an option may also be repeated (``--only a,b --only c``).
    """

    def __init__(
        self,
        item: Callable[[str], Any] = str,
        what: str = "names",
        *,
        choices: Sequence[str] | None = None,
    ) -> None:
        self.item = item
        self.what = what
        self.choices = None if choices is None else tuple(choices)

    def __call__(self, text: str) -> list[Any]:
        try:
            values = [self.item(t.strip()) for t in text.split(",") if t.strip()]
        except (ValueError, argparse.ArgumentTypeError):
            raise self._refusal(text) from None
        if not values or (self.choices is not None and any(v not in self.choices for v in values)):
            raise self._refusal(text)
        return values

    def _refusal(self, text: str) -> argparse.ArgumentTypeError:
        of = "" if self.choices is None else f" of {', '.join(self.choices)}"
        return argparse.ArgumentTypeError(f"expected comma-separated {self.what}{of}, got {text!r}")

    def __repr__(self) -> str:
        return f"comma-separated {self.what}"


class ExtendLists(argparse.Action):
    """``action=ExtendLists, nargs="+"`` with a :class:`comma_list` type: every value, each a
    comma-separated list, extends one flat list (``--maps dct positive,elu`` is
    ``["dct", "positive", "elu"]``; argparse's ``"extend"`` would nest the lists)."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        items = list(getattr(namespace, self.dest, None) or [])
        for value in values:
            items.extend(value)
        setattr(namespace, self.dest, items)


def positive_int(text: str) -> int:
    """An integer >= 1, for :class:`comma_list`."""
    value = int(text)
    if value < 1:
        raise ValueError(f"{value} < 1")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0, for :class:`comma_list`."""
    value = float(text)
    if not 0 < value < float("inf"):
        raise ValueError(f"{value} is not a finite positive number")
    return value


def check_common_options(args: argparse.Namespace) -> None:
    """Check the shared options of a parsed command line before the command runs.

    ``--seed`` must be >= 0 (numpy's ``SeedSequence`` refuses negative seeds): a
    ``ValueError`` naming ``--seed``, which the command line reports as a user error (exit
    status 2, one line, nothing written).
    """
    value = getattr(args, "seed", None)
    if value is not None and value < 0:
        raise ValueError(f"--seed must be an integer >= 0, got {value}")


def add_common_options(
    parser: argparse.ArgumentParser,
    *,
    writes: str,
    out_default: str | None = None,
    extra_formats: Sequence[str] = (),
    seed_default: int | None = 0,
    seed_help: str | None = None,
    with_seed: bool = True,
) -> None:
    """Add ``--format``, ``--out``, ``--no-progress`` and ``--seed`` to ``parser``.

    ``writes`` says what ``--out`` receives (e.g. ``"results.json and plots"``);
    ``seed_default=None`` with a ``seed_help`` says where the default comes from (``study``:
    the preset's seed). ``with_seed=False`` only for a command with no randomness of its own
    to seed (listed, with its reason, in the test that walks the commands).
    """
    formats = (*FORMATS, *(f for f in extra_formats if f not in FORMATS))
    parser.add_argument(
        "--format",
        choices=formats,
        default="text",
        help="text: a table for reading; json: one JSON document on stdout"
        + (f" (also: {', '.join(formats[2:])})" if len(formats) > 2 else "")
        + " (default: %(default)s)",
    )
    where = f"; default: {out_default}" if out_default is not None else "; default: none"
    parser.add_argument(
        "--out",
        metavar="DIR",
        default=out_default,
        help=f"folder for {writes}, created when the first file is written{where}",
    )
    parser.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bars or progress lines on stderr",
    )
    if with_seed:
        parser.add_argument(
            "--seed",
            type=seed,
            metavar="N",
            default=seed_default,
            help=seed_help
            or "root seed of all randomness (an integer >= 0; the same seed gives the same "
            "results; default: %(default)s)",
        )


class CommandLineDeprecationWarning(DeprecationWarning):
    """An old spelling of an option was used; it still works for one release.

    ``prog`` is the command that was given it (``"kernelapprox convert"``).
    """

    def __init__(self, message: str, prog: str = "kernelapprox") -> None:
        super().__init__(message)
        self.prog = prog


class DeprecatedAlias(argparse.Action):
    """An old option spelling that stores into its dest and warns that it is deprecated.

    ``parser.add_argument("--quiet", action=DeprecatedAlias, dest="no_progress", nargs=0,
    const=True, replacement="--no-progress")``: a flag (``nargs=0``) stores ``const``; an
    option with a value (``nargs=None``) stores the value.
    """

    def __init__(
        self, option_strings: Sequence[str], dest: str, *, replacement: str, **kwargs: Any
    ) -> None:
        self.replacement = replacement
        kwargs.setdefault("help", f"deprecated: use {replacement}")
        super().__init__(option_strings, dest, **kwargs)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        setattr(namespace, self.dest, self.const if self.nargs == 0 else values)
        message = (
            f"{option_string} is deprecated and will be removed in the next release; use "
            f"{self.replacement}"
        )
        warnings.warn(CommandLineDeprecationWarning(message, parser.prog), stacklevel=2)


@contextlib.contextmanager
def deprecations_on_stderr() -> Iterator[None]:
    """Inside, each :class:`CommandLineDeprecationWarning` is printed at once, and only once,
    as one line ``PROG: warning: MESSAGE`` on stderr; other warnings are shown as before."""
    shown: set[str] = set()
    with warnings.catch_warnings():
        show = warnings.showwarning

        def showwarning(message, category, filename, lineno, file=None, line=None):  # type: ignore[no-untyped-def]
            if not isinstance(message, CommandLineDeprecationWarning):
                show(message, category, filename, lineno, file, line)
                return
            text = f"{message.prog}: warning: {message}"
            if text not in shown:
                shown.add(text)
                print(text, file=sys.stderr)

        warnings.simplefilter("always", CommandLineDeprecationWarning)
        warnings.showwarning = showwarning
        yield
