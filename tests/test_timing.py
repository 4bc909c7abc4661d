"""The one timer (kernelapprox._timing, public as kernelapprox.bench.timing).

No test here asserts a speed: a fake clock that each callable advances by a known amount
checks what is timed and how it is divided, and a call log checks the order of the calls.
"""

from __future__ import annotations

import types

import pytest

from kernelapprox import _timing
from kernelapprox.bench import timing


class FakeClock:
    """``time.perf_counter`` and ``time.process_time`` that move only when a callable says."""

    def __init__(self) -> None:
        self.now = 0.0

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def read(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    module = types.SimpleNamespace(perf_counter=fake.read, process_time=fake.read)
    monkeypatch.setattr(_timing, "time", module)
    return fake


def _logged(log: list[str], clock: FakeClock, name: str, seconds: float):
    def fn() -> None:
        log.append(name)
        clock.advance(seconds)

    return fn


def test_the_public_name_is_the_one_implementation():
    assert timing.measure is _timing.measure
    assert timing.median_time is _timing.median_time
    assert timing.interleaved_times is _timing.interleaved_times


def test_interleaved_rounds_rotate_the_order_after_one_warm_up_each(clock):
    log: list[str] = []
    fns = {n: _logged(log, clock, n, s) for n, s in (("a", 1.0), ("b", 2.0), ("c", 4.0))}
    times = _timing.interleaved_times(fns, 4)
    warm_up, rounds = log[:3], [log[3 * r : 3 * r + 3] for r in range(1, 5)]
    assert warm_up == ["a", "b", "c"]
    assert rounds == [["a", "b", "c"], ["b", "c", "a"], ["c", "a", "b"], ["a", "b", "c"]]
    assert times == {"a": [1.0] * 4, "b": [2.0] * 4, "c": [4.0] * 4}
    assert list(times) == ["a", "b", "c"]


def test_each_timing_covers_its_calls_and_is_divided_by_them(clock):
    log: list[str] = []
    fns = {"fast": _logged(log, clock, "fast", 0.5), "slow": _logged(log, clock, "slow", 3.0)}
    times = _timing.interleaved_times(fns, 2, calls={"fast": 4, "slow": 1}, warm_up=False)
    assert log == [*["fast"] * 4, "slow", "slow", *["fast"] * 4]
    assert times == {"fast": [0.5, 0.5], "slow": [3.0, 3.0]}
    assert _timing.interleaved_times(fns, 1, calls=3)["slow"] == [3.0]


def test_interleaved_times_reads_the_cpu_clock_when_asked(monkeypatch):
    fake = FakeClock()
    wall_stands_still = types.SimpleNamespace(perf_counter=lambda: 0.0, process_time=fake.read)
    monkeypatch.setattr(_timing, "time", wall_stands_still)
    log: list[str] = []
    fns = {"a": _logged(log, fake, "a", 1.5), "b": _logged(log, fake, "b", 0.5)}
    assert _timing.interleaved_times(fns, 2, cpu=True) == {"a": [1.5, 1.5], "b": [0.5, 0.5]}
    assert _timing.interleaved_times(fns, 1) == {"a": [0.0], "b": [0.0]}


def test_measure_warms_up_once_and_times_each_repeat(clock):
    log: list[str] = []
    wall, cpu = _timing.measure(_logged(log, clock, "f", 0.25), 3)
    assert log == ["f"] * 4 and wall == cpu == [0.25] * 3
    assert _timing.median_time(_logged(log, clock, "g", 1.5), 2) == 1.5


def test_interleaved_times_rejects_bad_input():
    def f() -> None:
        return None

    with pytest.raises(ValueError, match="fns"):
        _timing.interleaved_times({}, 3)
    with pytest.raises(ValueError, match="rounds"):
        _timing.interleaved_times({"f": f}, 0)
    with pytest.raises(TypeError, match="rounds"):
        _timing.interleaved_times({"f": f}, 1.5)
    with pytest.raises(ValueError, match="calls must name exactly"):
        _timing.interleaved_times({"f": f}, 1, calls={"g": 2})
    with pytest.raises(ValueError, match=r"calls\['f'\]"):
        _timing.interleaved_times({"f": f}, 1, calls=0)
