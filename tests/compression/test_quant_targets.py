"""``benchmarks/quantization_targets.py`` reads the four targets off the command's JSON."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from tests.scripts import load_script

ROOT = Path(__file__).resolve().parents[2]
RESULT = ROOT / "docs" / "results" / "quantization.json"


def _load():
    return load_script(ROOT / "benchmarks" / "quantization_targets.py")


def test_targets_of_the_recorded_minilm_run() -> None:
    result = json.loads(RESULT.read_text())
    checks = _load().targets(result)
    rows = {r["bits"]: r for r in result["per_bits"]}
    for k in range(3, 7):  # relative gap of 1 - cosine, recomputed from the raw rows
        gap = (1 - rows[k]["quality_nested"]) / (1 - rows[k]["quality_independent"]) - 1
        assert checks["quality_gap_3_to_6"][k] == pytest.approx(gap, rel=1e-12)
    assert set(checks["nested_over_optimal"]) == {3, 4, 5}
    # 4096 x 4096 at widths 3..8: planes 8 * 128 int32 words per row, tables 2 * (8 + ... + 256)
    assert checks["bytes_4096"]["nested_over_one_model"] == pytest.approx(5104 / 4608)
    assert checks["nested_cpu_seconds"] == result["seconds"]["nested_cpu"]
    assert all(checks[k] for k in ("quality_gap_ok", "optimal_ok", "bytes_ok", "time_ok"))


def test_a_missed_target_is_reported() -> None:
    result = json.loads(RESULT.read_text())
    targets = _load().targets
    worse = copy.deepcopy(result)
    row = next(r for r in worse["per_bits"] if r["bits"] == 6)
    row["quality_nested"] = 1 - 1.06 * (1 - row["quality_independent"])  # 6 % worse
    assert not targets(worse)["quality_gap_ok"]
    worse = copy.deepcopy(result)
    worse["per_bits"][0]["nested_over_optimal"] = 1.3
    assert not targets(worse)["optimal_ok"]
    worse["seconds"]["nested"] = 61.0
    assert not targets(worse)["time_ok"]
