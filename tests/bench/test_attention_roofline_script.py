"""``benchmarks/attention_roofline.py``: which runs get huge pages, what their processes see,
and the recorded allocator settings (nothing is timed here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kernelapprox.bench.attention import (
    anon_huge_kib,
    cpu_huge_pages,
    environment,
    transparent_hugepage_mode,
)
from tests.scripts import load_script

ROOT = Path(__file__).resolve().parents[2]


def _load():
    return load_script(ROOT / "benchmarks" / "attention_roofline.py")


def test_schedule_alternates_with_both_and_is_uniform_otherwise() -> None:
    roofline = _load()
    assert roofline.schedule(3, "both") == [(False, "retain"), (True, "retain")] * 3
    assert roofline.schedule(2, "on") == [(True, "retain")] * 2
    assert roofline.schedule(2, "off", "default") == [(False, "default")] * 2
    assert roofline.schedule(2, "on", "both") == [(True, "default"), (True, "retain")] * 2
    both = [(False, "default"), (False, "retain"), (True, "default"), (True, "retain")]
    assert roofline.schedule(1, "both", "both") == both


def test_child_environment_sets_the_switch_either_way(monkeypatch: pytest.MonkeyPatch) -> None:
    """Explicitly ``0`` for off: left unset, ``import kernelapprox`` would turn it on."""
    roofline = _load()
    monkeypatch.setenv("THP_MEM_ALLOC_ENABLE", "1")
    monkeypatch.setenv("KERNELAPPROX_PROBE", "kept")
    off = roofline.child_environment(False)
    assert off["THP_MEM_ALLOC_ENABLE"] == "0" and off["KERNELAPPROX_PROBE"] == "kept"
    monkeypatch.delenv("THP_MEM_ALLOC_ENABLE")
    on = roofline.child_environment(True)
    assert on["THP_MEM_ALLOC_ENABLE"] == "1" and on["KERNELAPPROX_PROBE"] == "kept"


def test_each_run_gets_its_configuration(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    roofline = _load()
    seen = []

    def fake_run(
        folder: Path, *, huge_pages: bool = False, allocator: str = "retain"
    ) -> tuple[list[dict], dict]:
        assert allocator == "retain"
        seen.append(huge_pages)
        row = {"status": "ok", "impl": "ours", "mode": "fwd", "T": 4096}
        times = {"time_ms": 1.0 + huge_pages, "roofline": 0.5, "roofline_compute": 0.3}
        return [row | times], {"cpu_huge_pages": huge_pages}

    monkeypatch.setattr(roofline, "one_run", fake_run)
    out = tmp_path / "roofline.json"
    assert roofline.main(["--runs", "2", "--huge-pages", "both", "--out", str(out)]) == 0
    assert seen == [False, True, False, True]
    record = json.loads(out.read_text())
    assert record["huge_pages_per_run"] == seen
    assert [e["cpu_huge_pages"] for e in record["environments"]] == seen
    assert record["allocator_per_run"] == ["retain"] * 4
    huge, small = "huge pages, freed memory kept", "4 KB pages, freed memory kept"
    assert record["summaries"][huge][0]["time_ms"]["median"] == 2.0
    assert record["summaries"][small][0]["time_ms"]["median"] == 1.0
    assert record["summary"] == record["summaries"][huge]


def test_each_run_gets_its_allocator(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    roofline = _load()
    seen = []

    def fake_run(folder: Path, *, huge_pages: bool, allocator: str) -> tuple[list[dict], dict]:
        seen.append((huge_pages, allocator))
        row = {"status": "ok", "impl": "ours", "mode": "fwdbwd", "T": 4096}
        fast = allocator == "retain"
        times = {"time_ms": 2.0 - fast, "roofline": 0.2 + 0.2 * fast, "roofline_compute": 0.3}
        return [row | times], {"cpu_huge_pages": huge_pages}

    monkeypatch.setattr(roofline, "one_run", fake_run)
    out = tmp_path / "roofline.json"
    assert roofline.main(["--runs", "2", "--allocator", "both", "--out", str(out)]) == 0
    assert seen == [(True, "default"), (True, "retain")] * 2
    record = json.loads(out.read_text())
    assert record["allocator_per_run"] == ["default", "retain"] * 2
    kept, default = "huge pages, freed memory kept", "huge pages, glibc default"
    assert record["summaries"][kept][0]["time_ms"]["median"] == 1.0
    assert record["summaries"][default][0]["roofline"]["median"] == 0.2
    assert record["summary"] == record["summaries"][kept]


def test_one_run_passes_the_allocator(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    roofline = _load()
    commands = []

    def fake_subprocess_run(cmd, **kwargs):
        commands.append((cmd, kwargs["env"]))
        (tmp_path / "results.json").write_text(json.dumps({"rows": [], "environment": {}}))

    monkeypatch.setattr(roofline.subprocess, "run", fake_subprocess_run)
    assert roofline.one_run(tmp_path, huge_pages=False, allocator="default") == ([], {})
    cmd, env = commands[0]
    assert cmd[cmd.index("--allocator") + 1] == "default" and env["THP_MEM_ALLOC_ENABLE"] == "0"


@pytest.mark.parametrize(
    ("text", "mode"),
    [("always [madvise] never\n", "madvise"), ("[always] madvise never", "always"), ("", None)],
)
def test_transparent_hugepage_mode_reads_the_bracketed_word(
    tmp_path: Path, text: str, mode: str | None
) -> None:
    setting = tmp_path / "enabled"
    setting.write_text(text)
    assert transparent_hugepage_mode(setting) == mode
    assert transparent_hugepage_mode(tmp_path / "missing") is None


def test_environment_records_the_huge_page_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("THP_MEM_ALLOC_ENABLE", "1")
    assert environment()["THP_MEM_ALLOC_ENABLE"] == "1"
    monkeypatch.delenv("THP_MEM_ALLOC_ENABLE")
    env = environment()
    assert env["THP_MEM_ALLOC_ENABLE"] is None and "transparent_hugepage" in env


def _probe_in_a_fresh_process(switch: str | None) -> str:
    """:func:`cpu_huge_pages` in a new interpreter with torch's switch set to ``switch``
    (``None``: unset), importing kernelapprox before torch as a user's script would."""
    env = {k: v for k, v in os.environ.items() if k != "THP_MEM_ALLOC_ENABLE"}
    if switch is not None:
        env["THP_MEM_ALLOC_ENABLE"] = switch
    code = "from kernelapprox.bench.attention import cpu_huge_pages; print(cpu_huge_pages())"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.skipif(sys.platform != "linux", reason="page-fault counts and THP are Linux's")
def test_the_huge_page_probe_tells_the_configurations_apart() -> None:
    """With the kernel's ``madvise`` mode, fresh tensors get huge pages when torch's switch is
    on, and when it is unset (``import kernelapprox`` turns it on), not when it is ``0``."""
    mode = transparent_hugepage_mode()
    if mode not in ("madvise", "always"):
        pytest.skip(f"the kernel grants no transparent huge pages here (mode {mode})")
    assert _probe_in_a_fresh_process("1") == "True"
    assert _probe_in_a_fresh_process(None) == "True"
    assert _probe_in_a_fresh_process("0") == ("True" if mode == "always" else "False")
    assert cpu_huge_pages() in (True, False)


def test_a_run_without_the_pages_it_asked_for_is_reported(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    roofline = _load()
    row = {"status": "ok", "impl": "ours", "mode": "fwd", "T": 64, "time_ms": 1.0}
    row |= {"roofline": 0.5, "roofline_compute": 0.3}
    env = {"cpu_huge_pages": False, "transparent_hugepage": "never"}
    monkeypatch.setattr(roofline, "one_run", lambda folder, huge_pages, allocator: ([row], env))
    assert roofline.main(["--runs", "1", "--huge-pages", "on"]) == 0
    err = capsys.readouterr().err
    assert "asked for huge pages" in err and "never" in err


SMAPS_TEXT = """\
55d0c0000000-55d0c2000000 rw-p 00000000 00:00 0                          [heap]
Size:              32768 kB
AnonHugePages:         0 kB
7f0000000000-7f0002200000 rw-p 00000000 00:00 0
Size:              34816 kB
AnonHugePages:     32768 kB
7f0003000000-7f0003001000 r--p 00000000 08:01 123                        /usr/lib/libc.so.6
AnonHugePages:         0 kB
"""


def test_anon_huge_kib_reads_the_mapping_that_holds_the_address() -> None:
    assert anon_huge_kib(0x7F0000100000, SMAPS_TEXT) == 32768
    assert anon_huge_kib(0x55D0C0000010, SMAPS_TEXT) == 0
    assert anon_huge_kib(0x7F0002200000, SMAPS_TEXT) is None  # the end is outside
    assert anon_huge_kib(0x1000, SMAPS_TEXT) is None
