"""``docs/api/cli.md`` is generated from the parsers, and ``--help`` is plain text."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from kernelapprox import cli
from kernelapprox.cli import _docs
from kernelapprox.cli._text import fill, from_rst

PAGE = Path(__file__).resolve().parents[2] / "docs" / "api" / "cli.md"
PARSERS = [((), cli.build_parser()), *_docs.walk(cli.build_parser())]
IDS = [" ".join(path) or "kernelapprox" for path, _ in PARSERS]
#: reStructuredText markup that must not reach a terminal.
MARKUP = ("``", ":func:", ":mod:", ":class:", ":math:", ":data:", "::")


def test_the_committed_page_is_the_generators_output():
    assert PAGE.read_text() == _docs.reference_page(), (
        "docs/api/cli.md is stale: python -m kernelapprox.cli._docs docs/api/cli.md"
    )


def test_the_page_has_a_section_for_every_command_and_sub_command():
    page = _docs.reference_page()
    for path, _ in PARSERS[1:]:
        assert f"## `kernelapprox {' '.join(path)}`" in page
    for name, _ in cli.COMMANDS:
        assert f"## `kernelapprox {name}`" in page


def test_every_option_is_in_the_page():
    page = _docs.reference_page()
    for path, parser in PARSERS[1:]:
        section = page.split(f"## `kernelapprox {' '.join(path)}`\n")[1].split("\n## ")[0]
        for action in parser._actions:
            for option in action.option_strings:
                if option not in ("-h", "--help"):
                    assert f"`{option}" in section, (path, option)


@pytest.mark.parametrize(("path", "parser"), PARSERS, ids=IDS)
def test_help_is_plain_text(path, parser, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    text = parser.format_help()
    for mark in MARKUP:
        assert mark not in text, (path, mark)
    assert "issue" not in text  # bench spoke of "the grid"


@pytest.mark.parametrize(
    ("rst", "plain", "markdown"),
    [
        ("``--out``", "--out", "`--out`"),
        (
            "see :func:`~kernelapprox.dynamics.run_completion`",
            "see run_completion",
            "see `run_completion`",
        ),
        (":mod:`kernelapprox.lm`", "kernelapprox.lm", "`kernelapprox.lm`"),
        (":func:`the runner <kernelapprox.study.run_study>`", "the runner", "the runner"),
        (":math:`\\\\gamma>0`", "\\gamma>0", "`\\gamma>0`"),
        ("`x` and ``y``", "x and y", "`x` and `y`"),
        ("it is, e.g.::", "it is, e.g.:", "it is, e.g.:"),
    ],
)
def test_from_rst(rst, plain, markdown):
    assert from_rst(rst) == plain
    assert from_rst(rst, code="`") == markdown


def test_fill_keeps_paragraphs_lists_and_literal_blocks():
    text = (
        "One two three four.\n\n* a long item\n  continued\n* b\n\n"
        "Example::\n\n    x \\\\\n        y\n"
    )
    assert fill(text, 12) == (
        "One two\nthree four.\n\n* a long\n  item\n  continued\n* b\n\nExample:\n\n"
        "    x \\\\\n        y"
    )


def test_the_generator_writes_the_page(tmp_path):
    target = tmp_path / "cli.md"
    assert _docs.main([str(target)]) == 0
    assert target.read_text() == _docs.reference_page()


def test_walk_visits_groups_and_their_sub_commands():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    group = sub.add_parser("g")
    group.add_subparsers().add_parser("leaf")
    sub.add_parser("plain")
    assert [path for path, _ in _docs.walk(parser)] == [("g",), ("g", "leaf"), ("plain",)]


def test_usage_lines_are_spelled_alike_on_every_python(monkeypatch):
    monkeypatch.setattr(_docs, "WIDTH", 52)
    parser = argparse.ArgumentParser(prog="kernelapprox x")
    parser.add_argument("what", nargs="?", choices=("a", "b"))
    parser.add_argument("--maps", nargs="+", choices=("dct", "positive"))
    parser.add_argument("--out", metavar="DIR")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--n-points", type=int)
    assert _docs.usage(parser) == (
        "usage: kernelapprox x [-h]\n"
        "                      [--maps {dct,positive} ...]\n"
        "                      [--out DIR] [--no-progress]\n"
        "                      [--n-points N_POINTS] [{a,b}]"
    )
