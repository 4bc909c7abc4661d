"""``benchmarks/attention_roofline.py``: which runs get huge pages, what their processes see,
and the recorded allocator settings (nothing is timed here)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kernelapprox.bench.attention import environment, transparent_hugepage_mode
from tests.scripts import load_script

ROOT = Path(__file__).resolve().parents[2]


def _load():
    return load_script(ROOT / "benchmarks" / "attention_roofline.py")


def test_schedule_alternates_with_both_and_is_uniform_otherwise() -> None:
    roofline = _load()
    assert roofline.schedule(3, "both") == [False, True] * 3
    assert roofline.schedule(2, "on") == [True, True]
    assert roofline.schedule(2, "off") == [False, False]


def test_child_environment_sets_or_removes_the_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    roofline = _load()
    monkeypatch.setenv("THP_MEM_ALLOC_ENABLE", "1")
    monkeypatch.setenv("KERNELAPPROX_PROBE", "kept")
    off = roofline.child_environment(False)
    assert "THP_MEM_ALLOC_ENABLE" not in off and off["KERNELAPPROX_PROBE"] == "kept"
    monkeypatch.delenv("THP_MEM_ALLOC_ENABLE")
    on = roofline.child_environment(True)
    assert on["THP_MEM_ALLOC_ENABLE"] == "1" and on["KERNELAPPROX_PROBE"] == "kept"


def test_each_run_gets_its_configuration(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    roofline = _load()
    seen = []

    def fake_run(folder: Path, *, huge_pages: bool = False) -> list[dict]:
        seen.append(huge_pages)
        row = {"status": "ok", "impl": "ours", "mode": "fwd", "T": 4096}
        return [row | {"time_ms": 1.0 + huge_pages, "roofline": 0.5, "roofline_compute": 0.3}]

    monkeypatch.setattr(roofline, "one_run", fake_run)
    out = tmp_path / "roofline.json"
    assert roofline.main(["--runs", "2", "--huge-pages", "both", "--out", str(out)]) == 0
    assert seen == [False, True, False, True]
    record = json.loads(out.read_text())
    assert record["huge_pages_per_run"] == seen
    assert record["summaries"]["huge pages"][0]["time_ms"]["median"] == 2.0
    assert record["summaries"]["4 KB pages"][0]["time_ms"]["median"] == 1.0
    assert record["summary"] == record["summaries"]["4 KB pages"]


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
