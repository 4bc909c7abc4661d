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
        (["--mask-fade", "-1"], "--mask-fade"),
        (["--prune-end", "0.1"], "--prune-end"),
        (["--prune-end", "1.5"], "--prune-end"),
        (["--prune-end", "nan"], "--prune-end"),
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


def test_prune_hidden_run_and_an_earlier_checkpoint(monkeypatch, capsys, tmp_path):
    from kernelapprox.compression.pruning import train

    monkeypatch.setattr(train, "load_task", _tiny_task)
    out = tmp_path / "run"
    argv = ["compress", "apt", *SMALL, "--n-seeds", "1", "--methods", "apt,magnitude,random"]
    argv += ["--prune-hidden", "--distill", "1", "--n-eval", "8", "--format", "json"]
    argv += ["--out", str(out)]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["config"]["prune_hidden"] is True
    for method in ("apt", "magnitude", "random"):
        # the encoder layers' own parameters, counted on the shrunk model: the budget holds
        kept = summary["methods"][method]["kept_params_fraction"]
        assert 0.3 < kept <= 0.4, (method, kept)
        assert 1 <= summary["methods"][method]["hidden_kept"] <= 32
    # a checkpoint written before --prune-hidden, --mask-fade and --prune-end resumes as one
    # without them
    plain = [a for a in argv if a != "--prune-hidden"]
    assert main(plain) == 0
    first = json.loads(capsys.readouterr().out)
    stored = json.loads((out / "checkpoint.json").read_text())
    del stored["config"]["prune_hidden"], stored["config"]["mask_fade"]
    del stored["config"]["prune_end"]
    (out / "checkpoint.json").write_text(json.dumps(stored))

    def no_training(*args, **kwargs):
        raise AssertionError("--resume retrained a finished method")

    monkeypatch.setattr(train, "fit_method", no_training)
    assert main([*plain, "--resume"]) == 0
    assert json.loads(capsys.readouterr().out)["methods"] == first["methods"]


def test_fading_masks_run_and_keep_the_budget(monkeypatch, capsys, tmp_path):
    from kernelapprox.compression.pruning import train
    from kernelapprox.compression.pruning.schedule import Pruner

    monkeypatch.setattr(train, "load_task", _tiny_task)
    fades = []
    fade_toward = Pruner._fade_toward

    def counted(self, target):
        fades.append(self.fade)
        return fade_toward(self, target)

    monkeypatch.setattr(Pruner, "_fade_toward", counted)
    steps = ["--steps", "30"]  # updates 2 or 3 steps apart, so masks fade between them
    argv = ["compress", "apt", *SMALL, *steps, "--n-seeds", "1", "--prune-hidden"]
    argv += ["--methods", "apt,magnitude,random", "--mask-fade", "3", "--format", "json"]
    assert main([*argv, "--out", str(tmp_path / "run")]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["config"]["mask_fade"] == 3
    # updates at 3, 5, 7, 8, 10, 12, 14, 16, 17, 19, 21: 8 steps between them, in 3 methods
    assert len(fades) == 3 * 8 and set(fades) == {3}
    for method in ("apt", "magnitude", "random"):
        assert 0.3 < summary["methods"][method]["kept_params_fraction"] <= 0.4, method


def test_option_defaults_are_the_configs():
    from kernelapprox.cli.compress_apt import DEFAULTS
    from kernelapprox.compression.pruning.train import APTConfig

    config = APTConfig()
    for name, value in DEFAULTS.items():
        if name != "n_seeds":
            assert getattr(config, name) == value, name


# ------------------------------------------------------------------------------- --combine
def _method(accuracy: float, mem: float, kept: float) -> dict:
    return {
        "accuracy": accuracy,
        "cosine": 0.5,
        "train_s": 1.0,
        "peak_mem_mb": mem,
        "kept_params_fraction": kept,
    }


def _fake_run(folder, seeds, accuracies, *, steps=480, test_crc=7, methods=("full", "apt")):
    """A finished run's ``checkpoint.json`` (and ``results.json``) as ``compress apt`` writes
    them, with ``accuracies[s] = (full, apt)`` per seed."""
    folder.mkdir(parents=True)
    config = {"task": "classify", "steps": steps, "lr": 2e-3, "methods": list(methods)}
    config |= {"seed": seeds[0], "n_seeds": len(seeds)}
    results = {
        str(s): {
            "full": _method(accuracies[s][0], 500.0, 1.0),
            "apt": _method(accuracies[s][1], 250.0, 0.4),
        }
        for s in seeds
    }
    data = {str(s): {"n_train": 512, "crc32": 100 + s, "test_set_crc32": test_crc} for s in seeds}
    speed = {str(s): {"wall_ratios": [2.0 + s / 10], "cpu_ratios": [2.1]} for s in seeds}
    stored = {"config": config, "data": data, "results": results, "infer_speed": speed}
    (folder / "checkpoint.json").write_text(json.dumps(stored))
    (folder / "results.json").write_text(json.dumps({"n_classes": 11}))
    return folder


ACC = {0: (0.9, 0.85), 1: (0.8, 0.8), 2: (0.88, 0.8), 3: (0.9, 0.9)}


def test_combine_pools_the_seeds_of_two_runs_paired(no_loading, capsys, tmp_path):
    from kernelapprox.compression.pruning.paired import paired_difference, paired_ratio

    a = _fake_run(tmp_path / "a", [0, 1], ACC)
    b = _fake_run(tmp_path / "b", [2, 3], ACC)
    out = tmp_path / "pooled"
    argv = ["compress", "apt", "--combine", str(a), str(b), "--out", str(out), "--format", "json"]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    full, apt = [ACC[s][0] for s in range(4)], [ACC[s][1] for s in range(4)]
    expected = paired_ratio(apt, full)
    assert summary["accuracy_ratio"]["per_seed"] == expected["per_seed"]
    assert summary["accuracy_ratio"]["ci_low"] == pytest.approx(expected["ci_low"])
    assert summary["accuracy_ratio"]["verdict"] in ("met", "not met", "inconclusive")
    assert summary["n_seeds"] == 4 and list(summary["per_seed"]) == ["0", "1", "2", "3"]
    assert summary["accuracy_full"] == pytest.approx(sum(full) / 4)
    assert summary["peak_mem_ratio"] == pytest.approx(0.5)
    assert summary["infer_speedup_rounds"] == 4 and summary["infer_speedup"] == pytest.approx(2.15)
    assert summary["n_classes"] == 11
    assert summary["config"]["seeds"] == [0, 1, 2, 3] and summary["config"]["steps"] == 480
    assert "seed" not in summary["config"] and len(summary["config"]["combined_from"]) == 2
    assert json.loads((out / "results.json").read_text()) == summary
    # the same numbers as one run would give: the difference is paired as well
    assert paired_difference(apt, full)["value"] == pytest.approx(sum(apt) / 4 - sum(full) / 4)
    assert main(["compress", "apt", "--combine", str(a), str(b)]) == 0  # the text table
    assert "APT / full accuracy" in capsys.readouterr().out


@pytest.mark.parametrize(
    "second, word",
    [
        (dict(seeds=[1, 2]), "seed 1 appears in more than one run"),
        (dict(seeds=[2, 3], steps=240), "other options"),
        (dict(seeds=[2, 3], test_crc=8), "same docstrings"),
    ],
)
def test_combine_refuses_runs_that_do_not_pool(no_loading, capsys, tmp_path, second, word):
    a = _fake_run(tmp_path / "a", [0, 1], ACC)
    seeds = second.pop("seeds")
    b = _fake_run(tmp_path / "b", seeds, ACC, **second)
    assert main(["compress", "apt", "--combine", str(a), str(b)]) == 2
    err = capsys.readouterr().err.strip()
    assert word in err and len(err.splitlines()) == 1


def test_combine_refuses_an_unfinished_seed_and_its_own_folders(no_loading, capsys, tmp_path):
    a = _fake_run(tmp_path / "a", [0, 1], ACC)
    b = _fake_run(tmp_path / "b", [2, 3], ACC)
    stored = json.loads((b / "checkpoint.json").read_text())
    del stored["results"]["3"]["apt"]  # a run stopped during seed 3
    (b / "checkpoint.json").write_text(json.dumps(stored))
    before = {p: p.read_bytes() for p in (a / "results.json", b / "results.json")}
    assert main(["compress", "apt", "--combine", str(a), str(b)]) == 2
    assert "seed 3" in capsys.readouterr().err
    assert main(["compress", "apt", "--combine", str(a), str(tmp_path / "none")]) == 2
    assert "no checkpoint" in capsys.readouterr().err
    assert main(["compress", "apt", "--combine", str(a), str(b), "--out", str(a)]) == 2
    assert "--out" in capsys.readouterr().err
    assert main(["compress", "apt", "--combine", str(a), str(a)]) == 2
    assert "two or more" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in before} == before  # nothing of the runs rewritten
