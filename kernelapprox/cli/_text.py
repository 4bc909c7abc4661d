"""Help texts from docstrings: reStructuredText markup turned into plain text or Markdown.

The commands take their descriptions from module docstrings, which are written for the API
documentation (``:func:`~kernelapprox.dynamics.run_completion```, ````--out````, literal
blocks after ``::``). :func:`from_rst` turns such text into what a terminal shows (``code=""``)
or into Markdown (``code="`"``); :class:`PlainHelpFormatter` applies it to every ``--help``.
"""

from __future__ import annotations

import argparse
import re
import textwrap

#: ``:role:`target``` and ``:role:`title <target>``` (Sphinx cross-references, math).
_ROLE = re.compile(r":(?:[a-z]+:)?[a-z]+:`([^`]*)`")
_LITERAL = re.compile(r"``(.+?)``")
_INTERPRETED = re.compile(r"(?<![`\w])`([^`]+)`(?![`\w])")


def _role_text(match: re.Match[str], code: str) -> str:
    text = match.group(1)
    titled = re.fullmatch(r"(.*?)\s*<[^>]*>", text)
    if titled:
        return titled.group(1)
    if text.startswith("~"):
        text = text[1:].rsplit(".", 1)[-1]
    return f"{code}{text.replace(chr(92) * 2, chr(92))}{code}"


def from_rst(text: str, *, code: str = "") -> str:
    """``text`` with inline reStructuredText markup replaced.

    ````x```` and ```x``` become ``x`` wrapped in ``code``; a cross-reference
    ``:func:`~a.b.c``` becomes ``c`` (``:func:`a.b``` keeps the full name, a titled one its
    title); a paragraph that ends with ``::`` ends with ``:`` (its literal block follows).
    """
    text = _ROLE.sub(lambda m: _role_text(m, code), text)
    text = _LITERAL.sub(lambda m: f"{code}{m.group(1)}{code}", text)
    text = _INTERPRETED.sub(lambda m: f"{code}{m.group(1)}{code}", text)
    return re.sub(r"(\S)::(\s*)$", r"\1:\2", text, flags=re.MULTILINE)


def paragraphs(text: str) -> list[tuple[str, bool]]:
    """The paragraphs of a dedented docstring as ``(text, literal)``; a literal paragraph is
    an indented block (it follows ``::``) and keeps its lines."""
    out = []
    for block in re.split(r"\n\s*\n", textwrap.dedent(text).strip("\n")):
        lines = block.splitlines()
        literal = all(line.startswith((" ", "\t")) for line in lines if line.strip())
        out.append((textwrap.dedent(block) if literal else block, literal))
    return out


def fill(text: str, width: int, indent: str = "") -> str:
    """Plain text wrapped to ``width``: each paragraph filled, list items (``* ``) with a
    hanging indent, literal blocks kept line by line (indented by four spaces)."""
    out = []
    for block, literal in paragraphs(from_rst(text)):
        if literal:
            out.append("\n".join(indent + "    " + line for line in block.splitlines()))
            continue
        items = re.split(r"\n(?=\s*[*-] )", block)
        filled = []
        for item in items:
            words = " ".join(item.split())
            bullet = re.match(r"[*-] ", words)
            hanging = indent + ("  " if bullet else "")
            filled.append(
                textwrap.fill(words, width, initial_indent=indent, subsequent_indent=hanging)
            )
        out.append("\n".join(filled))
    return "\n\n".join(out)


class PlainHelpFormatter(argparse.HelpFormatter):
    """``--help`` in plain text: descriptions and option help without reStructuredText markup,
    paragraphs and literal blocks kept (argparse's default joins them into one paragraph)."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        return fill(text, width, indent)

    def _split_lines(self, text: str, width: int) -> list[str]:
        return textwrap.wrap(" ".join(from_rst(text).split()), width)
