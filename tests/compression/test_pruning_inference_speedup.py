"""``kernelapprox.compression.pruning.train.inference_speedup``: the shrunk model against the
full one, timed in one process, rounds alternating which goes first."""

from __future__ import annotations

from statistics import median

import pytest
import torch
from torch import nn

from kernelapprox.compression.pruning import train


class _Probe(nn.Module):
    """A model that records, per call, its name, the thread count and whether grad is on."""

    def __init__(self, name: str, log: list[tuple[str, int, bool]]) -> None:
        super().__init__()
        self.name, self.log = name, log
        self.lin = nn.Linear(4, 4)

    def forward(self, ids: torch.Tensor, att: torch.Tensor) -> torch.Tensor:
        self.log.append((self.name, torch.get_num_threads(), torch.is_grad_enabled()))
        return self.lin(ids * att)


def test_rounds_alternate_and_ratios_are_of_medians(monkeypatch: pytest.MonkeyPatch) -> None:
    log: list[tuple[str, int, bool]] = []
    full, shrunk = _Probe("full", log).train(), _Probe("shrunk", log).train()
    # each timing of a model returns the next preset (wall, cpu) lists of 3 runs
    preset = {
        "full": iter([([4.0, 6.0, 5.0], [2.0, 3.0, 9.0]), ([8.0, 8.0, 1.0], [1.0, 1.0, 1.0])]),
        "shrunk": iter([([1.0, 2.0, 3.0], [1.0, 1.0, 1.0]), ([2.0, 9.0, 4.0], [4.0, 2.0, 2.0])]),
    }
    order: list[str] = []

    def fake_measure(fn, repeats):
        assert repeats == 3
        fn()  # one call, to see which model it runs
        name = log[-1][0]
        order.append(name)
        return next(preset[name])

    monkeypatch.setattr(train, "measure", fake_measure)
    threads = torch.get_num_threads()
    ids, att = torch.ones(5, 4), torch.ones(5, 4)
    got = train.inference_speedup(full, shrunk, ids, att, rounds=2)
    assert order == ["full", "shrunk", "shrunk", "full"]
    assert got["wall_ratios"] == [median([4.0, 6.0, 5.0]) / 2.0, median([8.0, 8.0, 1.0]) / 4.0]
    assert got["cpu_ratios"] == [3.0 / 1.0, 1.0 / 2.0]
    assert got["batch"] == 5 and got["threads"] == 1
    assert all(t == 1 and not grad for _, t, grad in log)  # one thread, no autograd
    assert not full.training and not shrunk.training
    assert torch.get_num_threads() == threads  # restored


def test_real_timing_gives_one_positive_ratio_per_round() -> None:
    log: list[tuple[str, int, bool]] = []
    got = train.inference_speedup(
        _Probe("full", log), _Probe("shrunk", log), torch.ones(2, 4), torch.ones(2, 4), rounds=3
    )
    assert len(got["wall_ratios"]) == len(got["cpu_ratios"]) == 3
    assert all(r > 0 for r in got["wall_ratios"])
    # per round and model: one warm-up and 3 timed runs
    assert [name for name, _, _ in log].count("full") == 3 * 4
