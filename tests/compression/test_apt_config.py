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
