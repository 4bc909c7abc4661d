"""Fault injection on the study store: kills, torn and corrupt lines, foreign files, changed
options and data, concurrent runs.

Every test checks the store's promises: nothing lost (the bytes that were on disk are still a
prefix of ``results.csv``), nothing duplicated (each (cell, replication, metric) on one
intact line), nothing silently wrong (the rows equal an uninterrupted run's), and files the
study did not write untouched (byte-identical).
"""

import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

import kernelapprox.study.report as report
from kernelapprox.cli import main
from kernelapprox.sampling import QMCBalanceWarning
from kernelapprox.study.store import HEADER, decode_line, figure_name, load_results, locked

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--maps", "sincos,positive", "--samplers", "mc,sobol", "--features", "8,16,32",
        "--replications", "2", "--n-points", "60", "--metric", "rel_fro,max_abs",
        "--no-progress"]  # fmt: skip
N_ROWS = 2 * 2 * 3 * 2 * 2  # maps x samplers x features x replications x metrics


@pytest.fixture(autouse=True)
def _fast_and_quiet(monkeypatch):
    """The plot is not under test here and costs a second per run: draw nothing."""
    monkeypatch.setattr(report, "plot_convergence", lambda summary, path, metric=None: path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", QMCBalanceWarning)
        yield


def study(out, *extra):
    return main(["study", "--out", str(out), *TINY, *extra])


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run of the tiny study: its folder, file bytes and verified rows."""
    out = tmp_path_factory.mktemp("reference") / "ref"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", QMCBalanceWarning)
        assert main(["study", "--out", str(out), *TINY]) == 0
    rows = load_results(out)[1]
    assert len(rows) == N_ROWS
    return out, (out / "results.csv").read_bytes(), rows


def intact_keys(csv_bytes):
    keys = []
    for line in csv_bytes[len(HEADER) :].split(b"\n"):
        row = decode_line(line)
        if row is not None:
            keys.append(tuple(row[k] for k in row if k != "value"))
    return keys


def assert_store(out, before, reference_rows):
    """Nothing lost, nothing duplicated, nothing silently wrong."""
    after = (out / "results.csv").read_bytes()
    assert after.startswith(before), "bytes on disk were rewritten"
    keys = intact_keys(after)
    assert len(keys) == len(set(keys)), "a row is stored twice"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert load_results(out)[1] == reference_rows


def copy_study(src, dst, csv_bytes):
    dst.mkdir()
    (dst / "spec.json").write_bytes((src / "spec.json").read_bytes())
    (dst / "results.csv").write_bytes(csv_bytes)


def rows_cut(csv_bytes, n_rows, extra=b""):
    """The header and the first ``n_rows`` lines, then ``extra``."""
    lines = csv_bytes.splitlines(keepends=True)
    return b"".join(lines[: 1 + n_rows]) + extra


# ----------------------------------------------------------------------------- kills
def test_killed_at_random_moments_then_resumed(tmp_path, reference):
    _, _, ref_rows = reference
    out = tmp_path / "k"
    cmd = [sys.executable, "-m", "kernelapprox", "study", "--out", str(out), *TINY]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    rng = np.random.default_rng(12)
    before = b""
    for attempt in range(3):
        resume = ["--resume"] if (out / "spec.json").exists() else []
        proc = subprocess.Popen([*cmd, *resume], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)  # fmt: skip
        time.sleep(rng.uniform(2.2, 3.8))  # start-up is ~2 s, the cells ~1.5 s
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if (out / "results.csv").exists():
            now = (out / "results.csv").read_bytes()
            assert now.startswith(before), f"attempt {attempt} rewrote rows"
            before = now
    assert study(out, "--resume") == 0
    assert_store(out, before, ref_rows)
    # temporaries of writes cut short are gone; nothing else is there
    left = {p.name for p in out.iterdir()}
    assert {"results.csv", "spec.json", "summary.json"} <= left
    # a killed run that got as far as plotting leaves one figure per metric (the metrics of TINY)
    figures = {figure_name(m, ["rel_fro", "max_abs"]) for m in ("rel_fro", "max_abs")}
    assert left <= {"results.csv", "spec.json", "summary.json", *figures}


def test_stale_temporaries_of_the_study_only_are_removed(tmp_path, reference):
    ref, ref_bytes, _ = reference
    out = tmp_path / "tmp"
    copy_study(ref, out, ref_bytes)
    ours = [".summary.tmp-0123456789ab.json", ".convergence.tmp-a1b2c3d4e5f6.png"]
    users = [".summary.tmp-mine.json", ".notes.tmp-0123456789ab.txt",
             "summary.tmp-0123456789ab.json"]  # fmt: skip
    for name in ours + users:
        (out / name).write_bytes(b"x")
    assert study(out, "--resume") == 0
    assert not any((out / name).exists() for name in ours)
    assert all((out / name).read_bytes() == b"x" for name in users)


def test_full_disk_keeps_the_written_cells_and_resumes(tmp_path, reference, monkeypatch, capsys):
    _, _, ref_rows = reference
    import kernelapprox.study.store as store

    calls = {"n": 0}
    real_fsync = os.fsync

    def fsync(fd):
        calls["n"] += 1
        if calls["n"] > 5:  # the first appends succeed, then the disk is full
            raise OSError(28, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(store.os, "fsync", fsync)
    out = tmp_path / "full"
    assert study(out) == 1
    err = capsys.readouterr().err
    assert "No space left" in err and "kept" in err and "--resume" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    monkeypatch.setattr(store.os, "fsync", real_fsync)
    before = (out / "results.csv").read_bytes()
    assert len(intact_keys(before)) > 0
    assert study(out, "--resume") == 0
    assert_store(out, before, ref_rows)


def test_lost_cluster_is_one_line_exit_1_and_resumable(tmp_path, reference, monkeypatch, capsys):
    _, _, ref_rows = reference
    import kernelapprox.study.distributed as distributed
    from kernelapprox.study.runner import run_cell

    def first_cell_then_lost(client, work, datasets, spec, run=run_cell):
        cell, reps = next(iter(work))
        yield cell, run(cell, datasets[(cell.data, cell.dim)], spec, reps)
        raise ConnectionResetError("scheduler closed the connection")  # like CommClosedError

    monkeypatch.setattr(distributed, "connect", lambda scheduler: (object(), False))
    monkeypatch.setattr(distributed, "run_cells_on_dask", first_cell_then_lost)
    out = tmp_path / "lost"
    assert study(out, "--scheduler", "tcp://127.0.0.1:8786") == 1
    err = capsys.readouterr().err
    assert "lost the Dask cluster" in err and "1 cell finished" in err and "--resume" in err
    assert len(err.strip().splitlines()) == 1
    before = (out / "results.csv").read_bytes()
    assert len(intact_keys(before)) == 2 * 2  # the first cell: 2 replications x 2 metrics
    monkeypatch.undo()
    monkeypatch.setattr(report, "plot_convergence", lambda summary, path, metric=None: path)
    assert study(out, "--resume") == 0
    assert_store(out, before, ref_rows)


# ----------------------------------------------------------------------- torn lines
@pytest.mark.parametrize(
    "cut",
    [
        "inside a value",
        "inside a field name",
        "before the checksum",
        "inside the checksum",
        "no trailing newline",
    ],
)
def test_torn_last_line_is_incomplete_and_rerun(tmp_path, reference, capsys, cut):
    ref, ref_bytes, ref_rows = reference
    lines = ref_bytes.splitlines(keepends=True)
    last = lines[8]  # a cell's 4th row: the cell is incomplete without it
    crc_comma = last.rindex(b",")
    at = {
        "inside a value": last.rindex(b",", 0, crc_comma) + 4,
        "inside a field name": last.index(b"gaussian") + 3,
        "before the checksum": crc_comma,
        "inside the checksum": crc_comma + 4,
        "no trailing newline": len(last) - 1,
    }[cut]
    before = rows_cut(ref_bytes, 7, last[:at])
    out = tmp_path / "torn"
    copy_study(ref, out, before)
    assert study(out, "--resume") == 0
    printed = capsys.readouterr()
    assert "skipped 1 unreadable line" in printed.err and len(printed.err.splitlines()) == 1
    assert "11 cells run (1 cells resumed from disk)" in printed.out
    assert_store(out, before, ref_rows)
    # the torn line is closed and never counts, and a second resume is silent and idle
    after = (out / "results.csv").read_bytes()
    assert study(out, "--resume") == 0
    printed = capsys.readouterr()
    assert "warning" not in printed.err and "0 cells run (12 cells resumed" in printed.out
    assert (out / "results.csv").read_bytes() == after


def test_a_changed_value_is_detected_and_its_row_rerun(tmp_path, reference, capsys):
    ref, ref_bytes, ref_rows = reference
    lines = ref_bytes.splitlines(keepends=True)
    at = lines[3].rindex(b",") - 3  # a digit of the value: bit rot, or an edit by hand
    digit = lines[3][at : at + 1]
    lines[3] = lines[3][:at] + (b"1" if digit != b"1" else b"2") + lines[3][at + 1 :]
    before = b"".join(lines)
    out = tmp_path / "rot"
    copy_study(ref, out, before)
    assert study(out, "--resume") == 0
    assert "skipped 1 unreadable line" in capsys.readouterr().err
    assert_store(out, before, ref_rows)


def test_binary_garbage_is_skipped_with_one_warning(tmp_path, reference, capsys):
    ref, ref_bytes, ref_rows = reference
    garbage = np.random.default_rng(3).integers(0, 256, 300, dtype=np.uint8).tobytes()
    before = rows_cut(ref_bytes, 10, garbage + b"\n" + garbage)
    out = tmp_path / "garbage"
    copy_study(ref, out, before)
    assert study(out, "--resume") == 0
    err = capsys.readouterr().err
    segments = (garbage + b"\n" + garbage).split(b"\n")
    n_lines = len(segments) - (segments[-1] == b"")
    assert f"skipped {n_lines} unreadable lines" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert_store(out, before, ref_rows)


def test_oversized_and_foreign_lines_are_skipped(tmp_path, reference, capsys):
    ref, ref_bytes, ref_rows = reference
    huge = b"normal,gaussian," + b"x" * 200_000 + b",1.0,00000000\n"
    other_cell = ref_bytes.splitlines(keepends=True)[1].replace(b"sincos", b"dct")  # bad crc
    before = rows_cut(ref_bytes, 5, huge + other_cell)
    out = tmp_path / "huge"
    copy_study(ref, out, before)
    assert study(out, "--resume") == 0
    err = capsys.readouterr().err
    assert "skipped 2 unreadable lines" in err and len(err.strip().splitlines()) == 1
    assert_store(out, before, ref_rows)


def test_a_valid_row_of_another_study_is_not_used(tmp_path, reference, capsys):
    """A row with a correct checksum but outside the stored spec (m=64) is skipped."""
    from kernelapprox.study.store import encode_row

    ref, ref_bytes, ref_rows = reference
    row = {**ref_rows[0], "n_features": 64, "value": 123.0}
    before = ref_bytes + encode_row(row)
    out = tmp_path / "foreign-row"
    copy_study(ref, out, before)
    assert study(out, "--resume") == 0
    assert "skipped 1 unreadable line" in capsys.readouterr().err
    assert_store(out, before, ref_rows)


# ------------------------------------------------------------- spec.json and results.csv
@pytest.mark.parametrize(
    "content",
    [b"", b"[1,2]", b"\x89\xfe\x00garbage", b"{", b'{"seed": 0}', b'"text"', b"{}",
     b'{"store": "kernelapprox study", "version": 7, "spec": {}}'],
    ids=["empty", "list", "binary", "truncated", "format-1", "string", "empty-object",
         "future-version"],
)  # fmt: skip
def test_bad_spec_json_is_refused_and_untouched(tmp_path, reference, capsys, content):
    ref, ref_bytes, _ = reference
    out = tmp_path / "bad-spec"
    copy_study(ref, out, ref_bytes)
    (out / "spec.json").write_bytes(content)
    for extra in ([], ["--resume"], ["--extend"]):
        assert study(out, *extra) == 2
        err = capsys.readouterr().err
        assert "spec.json" in err and len(err.strip().splitlines()) == 1
        assert "Traceback" not in err
    assert (out / "spec.json").read_bytes() == content
    assert (out / "results.csv").read_bytes() == ref_bytes
    assert sorted(p.name for p in out.iterdir()) == ["results.csv", "spec.json"]


def test_deleted_spec_json_refuses_to_relabel_rows(tmp_path, reference, capsys):
    _, ref_bytes, _ = reference
    out = tmp_path / "no-spec"
    out.mkdir()
    (out / "results.csv").write_bytes(ref_bytes)
    for extra in ([], ["--resume"], ["--resume", "--seed", "8"], ["--extend"]):
        assert study(out, *extra) == 2
        assert "no spec.json" in capsys.readouterr().err
    assert (out / "results.csv").read_bytes() == ref_bytes
    assert [p.name for p in out.iterdir()] == ["results.csv"]


@pytest.mark.parametrize(
    "content", [b"", b"a,b\n1,2\n", HEADER[:-1]], ids=["empty", "users-csv", "v1-header"]
)
def test_foreign_results_csv_is_never_replaced(tmp_path, reference, capsys, content):
    ref, _, _ = reference
    for with_spec in (False, True):
        out = tmp_path / f"foreign-{with_spec}"
        out.mkdir()
        (out / "results.csv").write_bytes(content)
        (out / "notes.txt").write_bytes(b"my notes")
        if with_spec:
            (out / "spec.json").write_bytes((ref / "spec.json").read_bytes())
        for extra in ([], ["--resume"]):
            assert study(out, *extra) == 2
            err = capsys.readouterr().err
            assert "left untouched" in err and len(err.strip().splitlines()) == 1
        assert (out / "results.csv").read_bytes() == content
        assert (out / "notes.txt").read_bytes() == b"my notes"


# ------------------------------------------------------------- options on --resume
CHANGES = [
    ("--data", "qk", "data"),
    ("--kernel", "laplacian", "kernels"),
    ("--maps", "sincos", "maps"),
    ("--samplers", "mc,sobol,halton", "samplers"),
    ("--weights", "box", "weights"),
    ("--dim", "4", "dims"),
    ("--features", "8,16", "features"),
    ("--metric", "rel_fro", "metrics"),
    ("--replications", "3", "replications"),
    ("--seed", "8", "seed"),
    ("--length-scale", "2.0", "length_scale"),
    ("--scale", "0.5", "kernel_scale"),
    ("--n-points", "50", "n_points"),
]


@pytest.mark.parametrize(("option", "value", "field"), CHANGES, ids=[c[0] for c in CHANGES])
def test_every_option_changed_on_resume_is_refused(tmp_path, reference, capsys, option, value,
                                                   field):  # fmt: skip
    ref, ref_bytes, _ = reference
    out = tmp_path / "changed"
    copy_study(ref, out, ref_bytes)
    spec_bytes = (out / "spec.json").read_bytes()
    assert study(out, "--resume", option, value) == 2
    err = capsys.readouterr().err
    assert f"{field} ({option})" in err and "stored" in err and "given" in err
    assert len(err.strip().splitlines()) == 1
    assert (out / "results.csv").read_bytes() == ref_bytes
    assert (out / "spec.json").read_bytes() == spec_bytes


def test_preset_and_order_on_resume(tmp_path, reference, capsys):
    ref, ref_bytes, _ = reference
    out = tmp_path / "preset"
    copy_study(ref, out, ref_bytes)
    assert study(out, "--resume", "--preset", "avron") == 2  # the options override it but data
    assert "data (--data): stored ['normal'], given ['digits', 'normal']" in capsys.readouterr().err
    assert main(["study", "--out", str(out), "--resume", "--preset", "avron",
                 "--no-progress"]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert "samplers (--samplers)" in err and "n_points (--n-points)" in err
    # ... and neither the order of names nor --level changes a row: accepted
    reordered = [a.replace("sincos,positive", "positive,sincos") for a in TINY]
    assert main(["study", "--out", str(out), *reordered, "--resume", "--level", "0.9"]) == 0
    assert (out / "results.csv").read_bytes() == ref_bytes
    assert json.loads((out / "summary.json").read_text())["cells"][0]["level"] == 0.9


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        (["--replications", "1"], "replications"),
        (["--maps", "sincos"], "maps"),
        (["--seed", "3"], "seed"),
        (["--n-points", "50", "--replications", "3"], "n_points"),
    ],
)
def test_extend_refuses_to_shrink_or_change(tmp_path, reference, capsys, extra, field):
    ref, ref_bytes, _ = reference
    out = tmp_path / "shrink"
    copy_study(ref, out, ref_bytes)
    spec_bytes = (out / "spec.json").read_bytes()
    assert study(out, "--extend", *extra) == 2
    err = capsys.readouterr().err
    assert f"{field} (" in err and len(err.strip().splitlines()) == 1
    assert ("--extend only adds" in err) == (field in ("replications", "maps"))
    assert "replications (" not in err or field == "replications"  # growing it is allowed
    assert (out / "results.csv").read_bytes() == ref_bytes
    assert (out / "spec.json").read_bytes() == spec_bytes


def test_extend_appends_exactly_the_rows_of_a_fresh_larger_run(tmp_path, reference, capsys):
    ref, ref_bytes, _ = reference
    out = tmp_path / "grow"
    copy_study(ref, out, ref_bytes)
    bigger = ["--replications", "3", "--features", "8,16,32,64", "--samplers", "mc,sobol,halton"]
    assert study(out, *bigger) == 2  # growing needs --extend ...
    assert study(out, "--resume", *bigger) == 2  # ... not --resume
    assert study(out, "--extend", *bigger) == 0
    fresh = tmp_path / "fresh"
    assert study(fresh, *bigger) == 0
    spec, rows = load_results(out)
    assert rows == load_results(fresh)[1] and spec.replications == 3
    assert_store(out, ref_bytes, load_results(fresh)[1])
    assert (out / "spec.json").read_bytes() == (fresh / "spec.json").read_bytes()
    summary = json.loads((out / "summary.json").read_text())
    assert {c["replications"] for c in summary["cells"]} == {3}
    assert {c["sampler"] for c in summary["cells"]} == {"mc", "sobol", "halton"}
    capsys.readouterr()
    assert study(out, "--resume") == 2  # the stored spec is the larger one now
    assert "replications (--replications): stored 3, given 2" in capsys.readouterr().err


def test_changed_data_file_is_refused(tmp_path, capsys):
    data = tmp_path / "data.npy"
    np.save(data, np.random.default_rng(0).normal(size=(60, 3)))
    out = tmp_path / "npy"
    args = ["--data", str(data), "--maps", "sincos", "--samplers", "mc", "--features", "8"]
    assert study(out, *args) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    np.save(data, np.random.default_rng(1).normal(size=(60, 3)))
    for extra in (["--resume"], ["--extend"], ["--extend", "--replications", "3"]):
        assert study(out, *args, *extra) == 2
        err = capsys.readouterr().err
        assert f"data file {str(data)!r} (--data) changed" in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    # the original content back, and a second file added by --extend: accepted
    np.save(data, np.random.default_rng(0).normal(size=(60, 3)))
    other = tmp_path / "other.npy"
    np.save(other, np.random.default_rng(2).normal(size=(60, 3)))
    both = [*args[:1], f"{data},{other}", *args[2:]]
    assert study(out, *both, "--extend") == 0
    assert study(out, *both, "--resume") == 0
    assert "0 cells run (2 cells resumed" in capsys.readouterr().out


# ---------------------------------------------------------------------- concurrency
def test_a_locked_folder_fails_at_once_in_another_process(tmp_path, reference):
    ref, ref_bytes, _ = reference
    out = tmp_path / "locked"
    copy_study(ref, out, rows_cut(ref_bytes, 6))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "kernelapprox", "study", "--out", str(out), *TINY, "--resume"]
    with locked(out):
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    assert "locked" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert (out / "results.csv").read_bytes() == rows_cut(ref_bytes, 6)


def test_two_concurrent_runs_leave_no_duplicates(tmp_path, reference):
    _, _, ref_rows = reference
    out = tmp_path / "both"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "kernelapprox", "study", "--out", str(out), *TINY, "--resume"]
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]  # fmt: skip
    results = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
    codes = sorted(code for code, _ in results)
    # one run writes the study; the other is refused by the lock (exit 1), or, if it
    # started after the first had finished, finds every cell done (exit 0)
    assert codes in ([0, 0], [0, 1]), results
    assert all("Traceback" not in err for _, err in results)
    assert_store(out, b"", ref_rows)


def test_lock_of_a_killed_process_is_taken_over(tmp_path, reference):
    _, _, ref_rows = reference
    out = tmp_path / "stale"
    out.mkdir()
    hold = (
        "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDONLY); "
        "fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); time.sleep(60)"
    )
    holder = subprocess.Popen([sys.executable, "-c", hold, str(out)], stdout=subprocess.PIPE,
                              text=True)  # fmt: skip
    assert holder.stdout.readline().strip() == "held"
    assert study(out) == 1  # held
    holder.kill()
    holder.wait()
    assert study(out) == 0  # the kernel released the dead holder's lock
    assert_store(out, b"", ref_rows)
