"""The quantization experiment times its paths with the project's one timer.

``_best_times`` is the minimum over the rounds of
:func:`kernelapprox._timing.interleaved_times`: one warm-up call each in the given order, then
every round runs each callable once, the order rotated by the round's index.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from kernelapprox import _timing
from kernelapprox.compression.quantization.experiment import _best_times


def test_calls_in_warm_up_then_rotated_rounds() -> None:
    calls: list[str] = []
    fns = {name: (lambda name=name: calls.append(name)) for name in "abc"}
    best = _best_times(fns, 4)
    warm_up = list("abc")
    rounds = list("abc") + list("bca") + list("cab") + list("abc")
    assert calls == warm_up + rounds
    assert list(best) == ["a", "b", "c"]
    assert all(0.0 <= seconds < float("inf") for seconds in best.values())


def test_best_is_the_fastest_round(monkeypatch: pytest.MonkeyPatch) -> None:
    # a clock that advances by the listed steps: each timing reads it twice
    ticks = iter([0.0, 5.0, 10.0, 12.0, 20.0, 23.0, 30.0, 31.0])
    monkeypatch.setattr(_timing, "time", SimpleNamespace(perf_counter=lambda: next(ticks)))
    best = _best_times({"a": lambda: None, "b": lambda: None}, 2)
    # round 0: a 5 s, b 2 s; round 1 (b first): b 3 s, a 1 s
    assert best == {"a": 1.0, "b": 2.0}


def test_rejects_zero_rounds() -> None:
    with pytest.raises(ValueError, match="rounds"):
        _best_times({"a": lambda: None}, 0)
