"""``kernelapprox compress apt``: options checked before loading, JSON keys, --resume."""

from __future__ import annotations

import json

import pytest
import torch

from kernelapprox.cli import main

pytest.importorskip("transformers")

SMALL = [
    "--model",
    "tiny-bert",
    "--steps",
    "10",
    "--n-train",
    "16",
    "--n-test",
    "8",
    "--max-length",
    "16",
    "--batch-size",
    "4",
    "--no-progress",
    "--seed",
    "3",
    "--n-seeds",
    "2",
]


def _tiny_task(config):
    """Two classes of made-up texts: 16 to train, 8 to test, and with distillation the next
    ``n_eval`` (at most 16) as the teacher's evaluation split."""
    texts = [f"{w} {i} " * 3 for i in range(20) for w in ("alpha", "omega")]
    labels = torch.tensor([i % 2 for i in range(40)])
    task = {
        "labels": ["a", "b"],
        "train": (texts[:16], labels[:16]),
        "test": (texts[16:24], labels[16:24]),
    }
    if config.distill > 0:  # the teacher's evaluation split
        task["eval"] = (texts[24 : 24 + config.n_eval], labels[24 : 24 + config.n_eval])
    return task


@pytest.fixture
def no_loading(monkeypatch):
    from kernelapprox.compression.pruning import train

    def refuse(*args, **kwargs):
        raise AssertionError("a model or the corpus was loaded before the options were checked")

    monkeypatch.setattr(train, "prepare", refuse)


@pytest.mark.parametrize(
    "argv, word",
    [
        (["--keep", "0"], "--keep"),
        (["--keep", "1.5"], "--keep"),
        (["--keep", "nan"], "keep"),
        (["--steps", "3"], "--steps"),
        (["--rank", "0"], "--rank"),
        (["--distill", "1.5"], "--distill"),
        (["--lr", "0"], "--lr must"),
        (["--lr-full=-1e-5"], "--lr-full must"),
        (["--lr", "inf"], "--lr must"),
        (["--n-eval", "0"], "--n-eval"),
        (["--methods", "apt,pruned"], "--methods"),
        (["--resume"], "--resume"),
        (["--n-seeds", "0"], "--n-seeds"),
    ],
)
def test_bad_options_are_one_line_and_status_2(no_loading, capsys, argv, word):
    assert main(["compress", "apt", *argv, "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and word in err and "Traceback" not in err


def test_out_that_is_a_file(no_loading, capsys, tmp_path):
    (tmp_path / "f").write_text("x")
    assert main(["compress", "apt", "--out", str(tmp_path / "f")]) == 2
    assert "--out" in capsys.readouterr().err


def test_small_run_json_keys_and_resume(monkeypatch, capsys, tmp_path):
    from kernelapprox.compression.pruning import train

    monkeypatch.setattr(train, "load_task", _tiny_task)
    out = tmp_path / "run"
    argv = [
        "compress",
        "apt",
        *SMALL,
        "--methods",
        "full,apt",
        "--distill",
        "1",  # the distillation path runs too
        "--n-eval",
        "8",
        "--format",
        "json",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    for key in (
        "kept_params_fraction",
        "accuracy",
        "accuracy_full",
        "cosine",
        "train_s",
        "train_s_full",
        "peak_mem_mb",
        "peak_mem_mb_full",
        "infer_speedup",
    ):
        assert key in summary, key
    assert 0 < summary["kept_params_fraction"] < 0.6  # heads and neurons at 40 %
    assert summary["methods"]["full"]["kept_params_fraction"] == 1.0
    assert summary["peak_mem_mb"] < summary["peak_mem_mb_full"]  # adapters only are trained
    assert json.loads((out / "results.json").read_text())["accuracy"] == summary["accuracy"]
    # seeds 3 and 4, each with both methods on its own data; the ratio is paired by seed
    assert summary["n_seeds"] == 2 and sorted(summary["per_seed"]) == ["3", "4"]
    runs = summary["per_seed"]
    full = [runs[k]["full"]["accuracy"] for k in ("3", "4")]
    apt = [runs[k]["apt"]["accuracy"] for k in ("3", "4")]
    assert summary["accuracy_full"] == (full[0] + full[1]) / 2
    ratio = summary["accuracy_ratio"]
    assert ratio["target"] == 0.95
    if min(full) > 0:
        assert ratio["per_seed"] == [apt[0] / full[0], apt[1] / full[1]]
        assert ratio["verdict"] in ("met", "not met", "inconclusive")
    speed = summary["infer_speed_per_seed"]
    assert sorted(speed) == ["3", "4"] and all(len(s["wall_ratios"]) == 4 for s in speed.values())
    assert summary["infer_speedup_rounds"] == 8 and summary["infer_speedup"] > 0

    def no_training(*args, **kwargs):
        raise AssertionError("--resume retrained a finished method")

    monkeypatch.setattr(train, "fit_method", no_training)
    assert main([*argv, "--resume"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["methods"] == summary["methods"]
    monkeypatch.setattr(  # other docstrings (another numpy): the checkpoint is refused
        train, "task_fingerprint", lambda task: {"n_train": 16, "n_test": 8, "crc32": 1}
    )
    assert main([*argv, "--resume"]) == 2
    assert "differ" in capsys.readouterr().err
    changed = [a if a != "3" else "4" for a in argv]  # another --seed
    assert main([*changed, "--resume"]) == 2
    assert "other options" in capsys.readouterr().err


def test_option_defaults_are_the_configs():
    from kernelapprox.cli.compress_apt import DEFAULTS
    from kernelapprox.compression.pruning.train import APTConfig

    config = APTConfig()
    for name, value in DEFAULTS.items():
        if name != "n_seeds":
            assert getattr(config, name) == value, name
