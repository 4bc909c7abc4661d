"""APTConfig: the adapted projections are checked, and the stored options survive JSON."""

from __future__ import annotations

import json

import pytest

from kernelapprox.compression.pruning.train import ADAPTED, APTConfig, config_dict


@pytest.mark.parametrize("bad", [(), ["attention.self.query"], ("",), ("query", 3), "query"])
def test_adapted_must_be_a_tuple_of_names(bad):
    with pytest.raises(TypeError, match="adapted"):
        APTConfig(adapted=bad)


def test_config_dict_equals_its_json_reading():
    config = APTConfig(adapted=(*ADAPTED, "intermediate.dense"))
    stored = config_dict(config)
    assert json.loads(json.dumps(stored)) == stored
    assert stored["adapted"] == [*ADAPTED, "intermediate.dense"]


def test_fingerprint_tells_the_same_test_set_apart_from_the_same_data():
    import torch

    from kernelapprox.compression.pruning.train import task_fingerprint

    texts, labels = ["a doc", "b doc", "c doc"], torch.tensor([0, 1, 0])
    task = {"train": (["t"], torch.tensor([1])), "test": (texts, labels)}
    shuffled = {"train": (["t"], torch.tensor([1])), "test": (texts[::-1], labels.flip(0))}
    other = {"train": (["t"], torch.tensor([1])), "test": (["a doc", "b doc", "d doc"], labels)}
    fa, fb, fc = (task_fingerprint(t) for t in (task, shuffled, other))
    assert fa["test_set_crc32"] == fb["test_set_crc32"] != fc["test_set_crc32"]
    assert fa["crc32"] != fb["crc32"]  # the order of a split is part of the data


@pytest.mark.parametrize("steps", [10, 15, 25, 30, 60, 70, 240, 1000])
def test_the_default_pruning_window_is_10_to_70_percent_rounded_down(steps):
    assert APTConfig(steps=steps).window == (max(1, steps // 10), (7 * steps) // 10)


def test_prune_end_moves_the_end_of_the_window_only():
    assert APTConfig(steps=240, prune_end=0.5).window == (24, 120)
    assert APTConfig(steps=240, prune_end=1.0).window == (24, 240)
    assert APTConfig(steps=10, prune_end=0.15).window == (1, 2)  # always after t_warm


@pytest.mark.parametrize("bad", [0.1, 0.0, 1.01, float("nan")])
def test_prune_end_outside_its_range_is_refused(bad):
    with pytest.raises((ValueError, TypeError), match="prune_end"):
        APTConfig(prune_end=bad)
