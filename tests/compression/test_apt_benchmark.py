"""``benchmarks/apt_minilm.py`` reads issue 16's targets off the command's JSON, paired by seed."""

from __future__ import annotations

from pathlib import Path

import pytest

from kernelapprox.compression.pruning.paired import paired_difference, paired_ratio
from tests.scripts import load_script

ROOT = Path(__file__).resolve().parents[2]


def _load(script: str = "apt_minilm"):
    return load_script(ROOT / "benchmarks" / f"{script}.py")


def _summary(apt, full, magnitude=None, random=None, mem=0.36, speed=(2.2, 1.7, 2.5)):
    s = {
        "config": {"task": "classify"},
        "accuracy_ratio": paired_ratio(apt, full),
        "peak_mem_ratio": mem,
        "infer_speedup": speed[0],
        "infer_speedup_range": list(speed[1:]),
        "infer_speedup_rounds": 4 * len(apt),
    }
    if magnitude is not None:
        s["accuracy_minus_magnitude"] = paired_difference(apt, magnitude)
    if random is not None:
        s["accuracy_minus_random"] = paired_difference(apt, random)
    return s


def test_verdicts_follow_the_paired_intervals() -> None:
    bench = _load()
    # ratios 0.99, 1.0, 1.01: interval about [0.975, 1.025], above 0.95
    met = bench.target_checks(_summary([0.792, 0.8, 0.808], [0.8, 0.8, 0.8], [0.5] * 3, [0.8] * 3))
    assert met["accuracy >= 95 % of full"][0] == "met"
    assert met["beats magnitude"][0] == "met"
    # APT - random is (-0.008, 0, 0.008): the interval straddles 0
    assert met["beats random"][0] == "inconclusive"
    assert met["memory <= 60 % of full"][0] == "met"
    assert met["inference >= 1.8x"][0] == "met"
    # ratios 0.8, 0.81, 0.82: interval below 0.95; APT below magnitude on every seed
    low = bench.target_checks(
        _summary([0.64, 0.648, 0.656], [0.8] * 3, [0.7] * 3, None, mem=0.7, speed=(1.5, 1, 2))
    )
    assert low["accuracy >= 95 % of full"][0] == "not met"
    assert low["beats magnitude"][0] == "not met"
    assert low["beats random"][0] == "not measured"
    assert low["memory <= 60 % of full"][0] == "not met"
    assert low["inference >= 1.8x"][0] == "not met"
    # ratios 0.87, 0.97, 1.02: the interval straddles 0.95
    mid = bench.target_checks(_summary([0.87, 0.97, 1.02], [1.0] * 3))
    assert mid["accuracy >= 95 % of full"][0] == "inconclusive"
    assert mid["accuracy >= 95 % of full"][1].endswith("3 seeds")


def test_one_seed_gives_no_interval_and_missing_methods_are_not_measured() -> None:
    bench = _load()
    one = bench.target_checks(_summary([0.8], [0.8], mem=None, speed=(None, 0, 0)))
    assert one["accuracy >= 95 % of full"][0] == "no interval"
    assert one["memory <= 60 % of full"] == ("not measured", "")
    assert one["inference >= 1.8x"] == ("not measured", "")
    assert bench.target_checks({})["accuracy >= 95 % of full"] == ("not measured", "")


@pytest.mark.parametrize("task, key", [("classify", "accuracy_ratio"), ("embed", "cosine_ratio")])
def test_the_score_follows_the_task(task: str, key: str) -> None:
    bench = _load()
    s = {"config": {"task": task}, key: paired_ratio([0.99, 1.0, 1.01], [1.0] * 3)}
    metric = "accuracy" if task == "classify" else "cosine"
    assert bench.target_checks(s)[f"{metric} >= 95 % of full"][0] == "met"


def test_validation_variants_cross_adapters_and_learning_rates() -> None:
    pytest.importorskip("transformers")
    from kernelapprox.compression.pruning.train import ADAPTER_SETS

    bench = _load("apt_validation")
    runs = bench.variants(["qv", "qv+ffn"], [2e-3, 4e-3], [5e-5, 1e-4])
    assert [(m, n) for m, n, _ in runs] == [
        ("full", "lr=5e-05"),
        ("full", "lr=0.0001"),
        ("apt", "qv lr=0.002"),
        ("apt", "qv lr=0.004"),
        ("apt", "qv+ffn lr=0.002"),
        ("apt", "qv+ffn lr=0.004"),
    ]
    assert runs[1][2] == {"lr_full": 1e-4}
    no_hidden = {"prune_hidden": False, "mask_fade": 0, "prune_end": 0.7}
    assert runs[5][2] == {"adapted": ADAPTER_SETS["qv+ffn"], "lr": 4e-3, "distill": 0.0} | no_hidden
    runs = bench.variants(["qv"], [2e-3], None, [0.0, 1.0])
    assert [n for _, n, _ in runs] == ["qv distill=0", "qv distill=1"]
    assert runs[1][2] == {"adapted": ADAPTER_SETS["qv"], "lr": 2e-3, "distill": 1.0} | no_hidden
    runs = bench.variants(["qv"], [2e-3], None, [0.0], [False, True])
    assert [n for _, n, _ in runs] == ["qv", "qv hidden"]
    assert runs[1][2]["prune_hidden"] is True
    runs = bench.variants(["qv"], [2e-3], None, [0.0], [True], [0, 7])
    assert [n for _, n, _ in runs] == ["qv hidden fade=0", "qv hidden fade=7"]
    assert runs[1][2]["mask_fade"] == 7
    runs = bench.variants(["qv"], [2e-3], None, [0.0], [False], [0], [0.7, 0.5])
    assert [n for _, n, _ in runs] == ["qv end=0.7", "qv end=0.5"]
    assert runs[1][2]["prune_end"] == 0.5
    assert [n for _, n, _ in bench.variants(["qv"], [2e-3], None)] == ["qv"]
    assert [(m, n) for m, n, _ in bench.variants([], [2e-3], [2e-4])] == [("full", "lr=0.0002")]


def test_validation_without_apt_needs_full_fine_tuning() -> None:
    pytest.importorskip("transformers")
    bench = _load("apt_validation")
    with pytest.raises(SystemExit):
        bench.main(["--variants", "none"])


@pytest.mark.parametrize(
    ("option", "value"),
    [("--seeds", v) for v in ("-1", "0,x", ",")]
    + [("--distills", v) for v in ("1.5", "-0.1", "x")]
    + [("--prune-hidden", v) for v in ("maybe", "yes,1")]
    + [("--mask-fades", v) for v in ("-1", "1.5")]
    + [("--prune-ends", v) for v in ("0.1", "1.2", "x")],
)
def test_validation_refuses_bad_seeds_and_weights_before_any_run(
    option: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    bench = _load("apt_validation")
    with pytest.raises(SystemExit) as exc:
        bench.main([option, value])
    assert exc.value.code == 2
    assert option in capsys.readouterr().err


def test_validation_compares_each_method_with_its_own_first_variant() -> None:
    bench = _load("apt_validation")
    acc = {("full", "a"): [0.5, 0.6, 0.7], ("full", "b"): [0.6, 0.6, 0.9]}
    acc |= {("apt", "x"): [0.4, 0.5, 0.5], ("apt", "y"): [0.3, 0.5, 0.4]}
    rows = [
        {"seed": s, "method": m, "variant": v, "accuracy": a[s]}
        for (m, v), a in acc.items()
        for s in range(3)
    ]
    rows.append({"seed": 9, "method": "apt", "variant": "y", "accuracy": 1.0})  # x lacks seed 9
    out = bench.compare_variants(rows)
    assert sorted(out) == ["apt y", "full b"]
    assert out["full b"] == paired_difference([0.6, 0.6, 0.9], [0.5, 0.6, 0.7])
    assert out["apt y"] == paired_difference([0.3, 0.5, 0.4], [0.4, 0.5, 0.5])


def test_validation_data_holds_out_the_last_training_examples_and_the_teacher_split() -> None:
    """The validation split is the tail of the command's training subsample, the teacher's
    split comes only when asked for, and asking for it changes neither of the other two."""
    pytest.importorskip("transformers")
    import torch

    from kernelapprox.compression.pruning.train import APTConfig, prepare

    bench = _load("apt_validation")
    config = APTConfig(model="tiny-bert", n_train=24, n_eval=8, max_length=8, seed=3)
    _, plain = bench.validation_data(config, 6)
    _, with_teacher = bench.validation_data(config, 6, teacher_split=True)
    _, command = prepare(config)
    assert "eval_ids" not in plain and with_teacher["eval_ids"].shape[0] == 8
    assert torch.equal(plain["train_ids"], command["train_ids"][:18])
    assert torch.equal(plain["test_ids"], command["train_ids"][18:])
    for key in ("train_ids", "train_y", "test_ids", "test_y"):
        assert torch.equal(plain[key], with_teacher[key])
