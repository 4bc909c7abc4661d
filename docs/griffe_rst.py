"""A griffe extension that turns the reStructuredText idioms of our numpydoc docstrings into
the Markdown that mkdocstrings renders, at build time, without touching the package.

Handled: a paragraph's closing ``::`` (a literal block follows) becomes ``:``; cross-reference
roles (``:func:`name```, ``:class:`~pkg.Name```, ...) become inline
code; ``:math:`...``` becomes ``$...$``; ``.. math::`` directives become ``$$`` blocks; simple
tables (``=====  =====`` borders) become Markdown tables. Everything else passes through.
"""

from __future__ import annotations

import re
import textwrap

from griffe import Extension

_ROLE = re.compile(r":(?:func|class|mod|meth|data|attr|obj|exc|const):`(~?)([^`]+)`")
_INLINE_MATH = re.compile(r":math:`([^`]+)`")
_BORDER = re.compile(r"^(\s*)(=+)((?: +=+)+)\s*$")
#: A paragraph that ends in ``::`` introduces a literal block; the reader sees one colon
#: ("from Python::" -> "from Python:"), none after a space. Directives (``.. math::``) excluded.
_LITERAL_INTRO = re.compile(r"^(?!\s*\.\. )(.*?)( ?)::\s*$", re.MULTILINE)


def _role(match: re.Match) -> str:
    tilde, name = match.groups()
    return f"`{name.rsplit('.', 1)[-1] if tilde else name}`"


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _math_blocks(lines: list[str]) -> list[str]:
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.lstrip().startswith(".. math::"):
            out.append(line)
            i += 1
            continue
        base = _indent(line)
        first = line.split("::", 1)[1].strip()
        rest: list[str] = []
        i += 1
        while i < len(lines) and (not lines[i].strip() or _indent(lines[i]) > base):
            rest.append(lines[i])
            i += 1
        content = [first, *textwrap.dedent("\n".join(rest)).splitlines()]
        pad = " " * base
        out += ["", pad + "$$", *(pad + c for c in content if c.strip()), pad + "$$", ""]
    return out


def _escape_pipes(cell: str) -> str:
    """Escape ``|`` outside code spans (Markdown tables keep pipes inside code spans)."""
    parts = re.split(r"(`+[^`]*`+)", cell)
    return "".join(p if p.startswith("`") else p.replace("|", "\\|") for p in parts)


def _row(cells: list[str], pad: str) -> str:
    return pad + "| " + " | ".join(_escape_pipes(c) for c in cells) + " |"


def _cells(line: str, starts: list[int]) -> list[str]:
    bounds = [*starts[1:], None]
    return [
        line[a:b].strip() if b else line[a:].strip() for a, b in zip(starts, bounds, strict=True)
    ]


def _tables(lines: list[str]) -> list[str]:
    out: list[str] = []
    i = 0
    while i < len(lines):
        match = _BORDER.match(lines[i])
        if not match:
            out.append(lines[i])
            i += 1
            continue
        border = lines[i]
        starts = [m.start() for m in re.finditer(r"=+", border)]
        pad = match.group(1)
        rows: list[list[str]] = []
        borders = 1
        i += 1
        header_rows = 0
        while i < len(lines) and borders < 3:
            line = lines[i]
            if _BORDER.match(line):
                borders += 1
                header_rows = len(rows) if borders == 2 else header_rows
                following = lines[i + 1] if i + 1 < len(lines) else ""
                if borders == 2 and not following.strip():
                    i += 1  # a table without header ends at its second border
                    break
            elif line.strip():
                cells = _cells(line, starts)
                if rows and not cells[0] and (borders == 2 or not header_rows):
                    rows[-1] = [f"{a} {b}".strip() for a, b in zip(rows[-1], cells, strict=True)]
                else:
                    rows.append(cells)
            i += 1
        if borders == 2:  # a table without header: the first border closes it
            header_rows = 0

        if header_rows:
            head, body = rows[:header_rows], rows[header_rows:]
            head = [[" ".join(col).strip() for col in zip(*head, strict=True)]]
        else:
            head, body = [[""] * len(starts)], rows
        rule = pad + "|" + "---|" * len(starts)
        out += ["", _row(head[0], pad), rule, *(_row(r, pad) for r in body), ""]
    return out


def rst_to_markdown(text: str) -> str:
    text = _INLINE_MATH.sub(lambda m: f"${m.group(1).strip()}$", text)
    text = _ROLE.sub(_role, text)
    text = _LITERAL_INTRO.sub(lambda m: m.group(1) + ("" if m.group(2) else ":"), text)
    lines = _tables(_math_blocks(text.splitlines()))
    return "\n".join(lines)


class RSTToMarkdown(Extension):
    """Rewrite every docstring before mkdocstrings parses it."""

    def on_instance(self, *, obj, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = rst_to_markdown(obj.docstring.value)
