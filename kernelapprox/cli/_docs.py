"""``docs/api/cli.md``, generated from the parsers of every command.

``python -m kernelapprox.cli._docs docs/api/cli.md`` writes the page; ``tests/cli/test_docs.py``
checks that the committed page equals :func:`reference_page`, so it cannot go stale. Each
command (and each sub-command of a group such as ``compress``) gets its description, its usage
line and a table of its options with their defaults.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from collections.abc import Iterator, Sequence

from kernelapprox.cli._text import from_rst, paragraphs

#: Usage lines are wrapped at this width, whatever the terminal.
WIDTH = 96
_INTRO = """\
Every command takes the same four shared options, with the same meaning
(`kernelapprox.cli._common.add_common_options`):

| option | meaning |
| --- | --- |
| `--format {text,json}` | `text`: a table for reading; `json`: one JSON document on stdout |
| `--out DIR` | the folder for the command's files, checked before any slow work |
| `--no-progress` | no progress bars or progress lines on stderr |
| `--seed N` | the root seed of all randomness (an integer >= 0) |

`verify` takes no `--seed`: each claim runs with the seed recorded in it. Errors are one line
on stderr with exit status 2 (your input) or 1 (the environment); see the Python API below.

A new command is one module of `kernelapprox.cli` with `register(subparsers)`, named in
`COMMANDS` and `SUMMARIES`, whose parser gets the shared options from `add_common_options`
(a test walks every command for them). This page is generated from the parsers: after changing
an option, run `python -m kernelapprox.cli._docs docs/api/cli.md`.
"""


def _subparsers(parser: argparse.ArgumentParser) -> argparse._SubParsersAction | None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    return None


def walk(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every parser below ``parser`` (groups too), depth first, as ``(path, parser)``."""
    sub = _subparsers(parser)
    if sub is None:
        return
    for name, child in sub.choices.items():
        yield (*path, name), child
        yield from walk(child, (*path, name))


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _option(action: argparse.Action) -> str:
    if not action.option_strings:
        names = action.metavar or action.dest
        if action.choices is not None:
            names = "{" + ",".join(map(str, action.choices)) + "}"
        return f"`{names}`"
    if action.nargs == 0:
        value = ""
    elif action.choices is not None:
        value = " {" + ",".join(map(str, action.choices)) + "}"
    else:
        value = " " + (action.metavar or action.dest.upper())
        if action.nargs == "+":
            value += " ..."
    return ", ".join(f"`{opt}{value}`" for opt in action.option_strings)


def _value(action: argparse.Action) -> str:
    """What follows an option in a usage line (argparse's spelling of it varies by version)."""
    if action.choices is not None:
        value = "{" + ",".join(map(str, action.choices)) + "}"
    else:
        value = action.metavar or (action.dest.upper() if action.option_strings else action.dest)
    return f"{value} ..." if action.nargs in ("+", "*") else value


def usage(parser: argparse.ArgumentParser) -> str:
    """``usage: PROG [-h] [--option VALUE] ... POSITIONAL``, wrapped at :data:`WIDTH`: the
    same line as argparse's, in one spelling for every Python version."""
    words, positionals = [], []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            positionals.append(f"{action.metavar or action.dest} ...")
        elif not action.option_strings:
            value = _value(action)
            positionals.append(f"[{value}]" if action.nargs == "?" else value)
        elif action.nargs == 0:
            words.append(f"[{action.option_strings[0]}]")
        else:
            words.append(f"[{action.option_strings[0]} {_value(action)}]")
    words += positionals
    head = f"usage: {parser.prog} "
    glue = "\x00"  # keeps "[--option VALUE]" on one line: textwrap breaks only at spaces
    text = " ".join(word.replace(" ", glue) for word in words)
    wrapped = textwrap.fill(
        text,
        WIDTH,
        initial_indent=head,
        subsequent_indent=" " * len(head),
        break_long_words=False,
        break_on_hyphens=False,
    )
    return wrapped.replace(glue, " ")


def _default(action: argparse.Action) -> str:
    if action.nargs == 0 or action.default in (None, argparse.SUPPRESS):
        return ""
    default = action.default
    if isinstance(default, list | tuple):
        default = " ".join(map(str, default))
    return f"`{default}`"


def _help(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    if not action.help:
        return ""
    formatter = parser._get_formatter()
    return _cell(from_rst(formatter._expand_help(action), code="`"))


def _description(text: str) -> list[str]:
    out = []
    for block, literal in paragraphs(text):
        if literal:
            out += ["```text", *block.splitlines(), "```", ""]
        else:
            out += [" ".join(from_rst(block, code="`").split()), ""]
    return out


def command_section(path: Sequence[str], parser: argparse.ArgumentParser) -> list[str]:
    """The Markdown section of one command."""
    name = " ".join(("kernelapprox", *path))
    lines = [f"## `{name}`", ""]
    if parser.description:
        lines += _description(parser.description)
    lines += ["```text", usage(parser), "```", ""]
    sub = _subparsers(parser)
    actions = [
        a
        for a in parser._actions
        if not isinstance(a, argparse._HelpAction | argparse._SubParsersAction)
        and a.help is not argparse.SUPPRESS
    ]
    if actions:
        lines += ["| option | default | meaning |", "| --- | --- | --- |"]
        lines += [f"| {_option(a)} | {_default(a)} | {_help(parser, a)} |" for a in actions]
        lines.append("")
    if sub is not None:
        children = ", ".join(f"`{name} {child}`" for child in sub.choices)
        lines += [f"Sub-commands: {children}.", ""]
    return lines


def reference_page() -> str:
    """The whole page ``docs/api/cli.md``."""
    from kernelapprox.cli import build_parser

    parser = build_parser()
    lines = ["# Command line", "", *_INTRO.splitlines(), ""]
    for path, child in walk(parser):
        lines += command_section(path, child)
    lines += ["## Python API", "", "::: kernelapprox.cli", ""]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Write the page to the path given (default: print it)."""
    args = list(sys.argv[1:] if argv is None else argv)
    text = reference_page()
    if not args:
        sys.stdout.write(text)
        return 0
    from kernelapprox._io import atomic_write

    atomic_write(args[0], text)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
