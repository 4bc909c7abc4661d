"""Every command of ``kernelapprox`` takes the shared options with the same meaning.

The test walks the command registry (:data:`kernelapprox.cli.COMMANDS` and every group's
sub-commands, e.g. ``compress quantize``), so a new command that forgets them fails here.
"""

from __future__ import annotations

import argparse
import json
import warnings

import pytest

from kernelapprox import cli
from kernelapprox.cli import _common

#: Commands without ``--seed``, with the reason; nothing else may be missing. None now:
#: ``verify`` offsets the recorded seeds of its claims (``tests/cli/test_verify.py``).
WITHOUT_SEED: dict[tuple[str, ...], str] = {}


def _subparsers(parser: argparse.ArgumentParser) -> argparse._SubParsersAction | None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    return None


def leaf_commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> list[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every runnable command below ``parser`` as ``(path, parser)``; a group (a parser with
    sub-commands, like ``compress``) only dispatches, so its sub-commands are listed instead."""
    sub = _subparsers(parser)
    if sub is None:
        return [(path, parser)]
    found = []
    for name, child in sub.choices.items():
        leaves = leaf_commands(child, (*path, name))
        assert leaves, f"group {' '.join((*path, name))!r} has no command"
        found += leaves
    return found


def options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {opt: action for action in parser._actions for opt in action.option_strings}


LEAVES = leaf_commands(cli.build_parser())
IDS = [" ".join(path) for path, _ in LEAVES]


def test_the_registry_walk_finds_every_command_and_sub_command():
    names = {path for path, _ in LEAVES}
    assert {(name,) for name, _ in cli.COMMANDS if name != "compress"} <= names
    assert {("compress", "quantize"), ("compress", "apt")} <= names


@pytest.mark.parametrize(("path", "parser"), LEAVES, ids=IDS)
def test_every_command_has_the_shared_options(path, parser):
    opts = options(parser)
    fmt = opts["--format"]
    assert tuple(fmt.choices[:2]) == _common.FORMATS and fmt.default == "text"
    assert fmt.dest == "format"
    out = opts["--out"]
    assert out.dest == "out" and out.metavar == "DIR" and out.nargs is None
    assert out.default is None or isinstance(out.default, str)
    progress = opts["--no-progress"]
    assert isinstance(progress, argparse._StoreTrueAction) and progress.dest == "no_progress"
    assert progress.default is False
    if path in WITHOUT_SEED:
        assert "--seed" not in opts
        return
    seed = opts["--seed"]
    assert seed.dest == "seed" and seed.type is _common.seed
    assert seed.default is None or (isinstance(seed.default, int) and seed.default >= 0)


@pytest.mark.parametrize(("path", "parser"), LEAVES, ids=IDS)
def test_the_shared_options_parse_alike(path, parser):
    parser = cli.build_parser()
    argv = [*path, "--format", "json", "--out", "some/dir", "--no-progress"]
    if path not in WITHOUT_SEED:
        argv += ["--seed", "7"]
    args = parser.parse_args(argv)
    assert (args.format, args.out, args.no_progress) == ("json", "some/dir", True)
    if path not in WITHOUT_SEED:
        assert args.seed == 7
    defaults = parser.parse_args(list(path))
    assert defaults.format == "text" and defaults.no_progress is False


@pytest.mark.parametrize("text", ["1.5", "x", ""])
def test_seed_must_be_an_integer(text):
    with pytest.raises(argparse.ArgumentTypeError, match="integer >= 0"):
        _common.seed(text)


@pytest.mark.parametrize(("path", "_parser"), LEAVES, ids=IDS)
def test_a_negative_seed_is_a_one_line_user_error(path, _parser, capsys, monkeypatch):
    if path in WITHOUT_SEED:
        pytest.skip(WITHOUT_SEED[path])

    def must_not_run(args):
        raise AssertionError("the command ran with a negative seed")

    parser = cli.build_parser()
    leaf = leaf_commands(parser)[[p for p, _ in LEAVES].index(path)][1]
    leaf.set_defaults(func=must_not_run)
    monkeypatch.setattr(cli, "build_parser", lambda load=None: parser)
    assert cli.main([*path, "--seed", "-1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"kernelapprox {path[0]}: error: --seed must be an integer >= 0, got -1"]


def test_convert_old_spellings_work_with_a_deprecation_warning():
    parser = cli.build_parser()
    with pytest.warns(_common.CommandLineDeprecationWarning, match="--quiet is deprecated"):
        args = parser.parse_args(["convert", "--quiet"])
    assert args.no_progress is True
    with pytest.warns(DeprecationWarning, match="--output is deprecated.*use --out DIR"):
        args = parser.parse_args(["convert", "--output", "r.json"])
    assert args.output == "r.json" and args.no_progress is False
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the new spellings do not warn
        args = parser.parse_args(["convert", "--no-progress", "--out", "d"])
    assert args.no_progress is True and args.out == "d"


def test_a_deprecated_spelling_is_printed_once_on_stderr(capsys):
    with pytest.raises(SystemExit):  # --maps nope: an error after the options were read
        cli.main(["convert", "--quiet", "--quiet", "--maps", "nope"])
    lines = capsys.readouterr().err.strip().splitlines()
    warned = [line for line in lines if "deprecated" in line]
    assert warned == [
        "kernelapprox convert: warning: --quiet is deprecated and will be removed in the next "
        "release; use --no-progress"
    ]
    assert len(lines) == 2 and ": error: " in lines[1]


def test_convert_writes_the_report_to_out_and_to_the_deprecated_output(
    tmp_path, capsys, monkeypatch
):
    from kernelapprox.integrations import minilm_experiment

    report = {
        "model": "m",
        "n_train": 1,
        "n_heldout": 2,
        "n_features": None,
        "train": "map",
        "threads": 1,
        "rows": [],
    }
    seen = {}

    def experiment(**options):
        seen.update(options)
        return dict(report)

    monkeypatch.setattr(minilm_experiment, "run_experiment", experiment)
    argv = [
        "convert",
        "--format",
        "json",
        "--out",
        str(tmp_path / "d"),
        "--quiet",
        "--output",
        str(tmp_path / "r.json"),
    ]
    assert cli.main(argv) == 0
    out, err = capsys.readouterr()
    printed = json.loads(out)
    assert printed["model"] == "m" and seen["progress"] is False
    assert json.loads((tmp_path / "d" / "report.json").read_text()) == printed
    assert json.loads((tmp_path / "r.json").read_text()) == printed
    assert [line.split(": warning: ")[1].split()[0] for line in err.splitlines()] == [
        "--quiet",
        "--output",
    ]
