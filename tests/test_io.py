"""Atomic writes and strict JSON (``kernelapprox._io``), shared by every command."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from kernelapprox._io import atomic_path, atomic_write, json_safe, json_text


def test_json_text_never_holds_nan():
    value = {"a": float("nan"), 1: (np.float64(np.inf), np.int64(3), torch.tensor(2.5))}
    assert json.loads(json_text(value)) == {"a": None, "1": [None, 3, 2.5]}
    assert json_safe([np.float32(-np.inf), "nan"]) == [None, "nan"]


def test_atomic_write_replaces_and_a_failed_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "summary.json"
    atomic_write(target, "old")
    atomic_write(target, "new")
    assert target.read_text() == "new"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed while writing")
    assert target.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]
