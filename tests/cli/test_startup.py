"""``kernelapprox --help`` and ``--version`` import no command module (nor torch, numpy, scipy),
and the placeholders they list say what the commands themselves say."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from kernelapprox import cli

#: What a command's import would pull in; none of it may load for the top-level help.
HEAVY = ("torch", "numpy", "scipy", "sklearn", "matplotlib", "proofs")

PROBE = """
import contextlib, io, json, sys
from kernelapprox.cli import main
out = io.StringIO()
with contextlib.redirect_stdout(out):
    try:
        status = main({argv!r})
    except SystemExit as exc:
        status = exc.code
heavy = sorted({{m.split(".")[0] for m in sys.modules}} & set({heavy!r}))
commands = sorted(m for m in sys.modules if m.startswith("kernelapprox.cli.") and m not in
                  ("kernelapprox.cli._common", "kernelapprox.cli._text"))
print(json.dumps({{"status": status, "heavy": heavy, "commands": commands, "out": out.getvalue()}}))
"""


def probe(argv: list[str]) -> dict:
    code = PROBE.format(argv=argv, heavy=HEAVY)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


@pytest.mark.parametrize("argv", [["--version"], ["--help"], ["-h"], []])
def test_top_level_help_and_version_import_no_command(argv):
    result = probe(argv)
    assert result["heavy"] == [] and result["commands"] == []
    assert result["status"] == (2 if argv == [] else 0)
    if argv == ["--version"]:
        assert result["out"].startswith("kernelapprox ")
    else:
        for name, summary in cli.SUMMARIES.items():
            assert name in result["out"]
            assert summary.split()[0] in result["out"]


def test_a_command_imports_only_its_own_module():
    result = probe(["convert", "--help"])
    assert result["status"] == 0 and "usage: kernelapprox convert" in result["out"]
    assert result["commands"] == ["kernelapprox.cli.convert"]


def test_every_command_has_a_summary_and_registers_it():
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    listed = {action.dest: action.help for action in sub._choices_actions}
    assert listed == cli.SUMMARIES
    assert [name for name, _ in cli.COMMANDS] == list(cli.SUMMARIES)


def test_the_placeholders_list_the_same_lines():
    full = cli.build_parser().format_help()
    assert cli.build_parser(load=()).format_help() == full


@pytest.mark.parametrize(
    ("argv", "command"),
    [
        ([], None),
        (["--version"], None),
        (["-h", "study"], "study"),
        (["bench", "--lengths", "8"], "bench"),
        (["nosuch"], "nosuch"),
    ],
)
def test_command_in(argv, command):
    assert cli.command_in(argv) == command
