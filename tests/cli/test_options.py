"""Every command of ``kernelapprox`` takes the shared options with the same meaning.

The test walks the command registry (:data:`kernelapprox.cli.COMMANDS` and every group's
sub-commands, e.g. ``compress quantize``), so a new command that forgets them fails here.
"""

from __future__ import annotations

import argparse
import json
import re
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


def _list_options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if isinstance(a.type, _common.comma_list)]


def test_every_list_option_parses_through_the_shared_comma_list():
    """An option whose help shows or says a comma-separated list (or that takes several
    values) must use ``comma_list``: a second hand-written splitter would treat spaces or an
    empty list in its own way."""
    found = 0
    for path, parser in LEAVES:
        for action in parser._actions:
            help_ = action.help or ""
            says_list = bool(re.search(r"\w,\w|comma", help_)) or action.nargs in ("+", "*")
            if says_list and action.option_strings:
                found += 1
                assert isinstance(action.type, _common.comma_list), (path, action.dest)
    assert found >= 10


@pytest.mark.parametrize(("path", "parser"), LEAVES, ids=IDS)
def test_an_empty_list_is_a_usage_error_in_every_command(path, parser, capsys):
    for action in _list_options(parser):
        with pytest.raises(SystemExit) as exit_:
            cli.build_parser().parse_args([*path, action.option_strings[0], " , "])
        assert exit_.value.code == 2
        err = capsys.readouterr().err
        assert action.option_strings[0] in err and "expected comma-separated" in err


@pytest.mark.parametrize(
    ("item", "text", "want"),
    [
        (str, "a, b,,c ,", ["a", "b", "c"]),
        (int, "16,32, 64", [16, 32, 64]),
        (_common.positive_int, "1,2", [1, 2]),
        (_common.positive_float, "0.5,2", [0.5, 2.0]),
    ],
)
def test_comma_list_strips_and_converts(item, text, want):
    assert _common.comma_list(item)(text) == want


@pytest.mark.parametrize(
    ("item", "text"),
    [
        (str, ""),
        (str, ",,"),
        (int, "1,x"),
        (_common.positive_int, "1,0"),
        (_common.positive_float, "1,-2"),
        (_common.positive_float, "inf"),
        (_common.positive_float, "nan"),
    ],
)
def test_comma_list_refuses_bad_or_empty_lists(item, text):
    with pytest.raises(argparse.ArgumentTypeError, match="expected comma-separated"):
        _common.comma_list(item, "things")(text)


def test_comma_list_with_choices_names_them():
    parse = _common.comma_list(what="maps", choices=("dct", "positive"))
    assert parse("dct, positive") == ["dct", "positive"]
    with pytest.raises(argparse.ArgumentTypeError, match="of dct, positive, got 'dct,elu'"):
        parse("dct,elu")


def test_repeated_and_space_separated_lists_extend():
    parser = cli.build_parser()
    args = parser.parse_args(["verify", "--only", "a,b", "--only", "c"])
    assert args.only == ["a", "b", "c"]
    args = parser.parse_args(["convert", "--maps", "dct", "positive,elu"])
    assert args.maps == ["dct", "positive", "elu"]
    assert parser.parse_args(["convert"]).maps is None
    args = parser.parse_args(["dynamics", "depth", "--widths", "4, 8"])
    assert args.widths == [4, 8]
    assert parser.parse_args(["dynamics", "depth"]).widths == [10, 50, 100]
