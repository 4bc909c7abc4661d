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
