"""``kernelapprox compress quantize``: a tiny run end to end, and bad options before any work."""

from __future__ import annotations

import itertools
import json

import pytest

from kernelapprox.cli import main


def test_tiny_run_json_and_results_file(tmp_path, capsys) -> None:
    out = tmp_path / "q"
    argv = [
        "compress",
        "quantize",
        "--model",
        "tiny",
        "--train-steps",
        "5",
        "--calibration",
        "2",
        "--evaluation",
        "2",
        "--iterations",
        "3",
        "--max-bits",
        "5",
        "--optimal-rows",
        "1",
        "--format",
        "json",
        "--out",
        str(out),
        "--no-progress",
        "--seed",
        "1",
    ]
    assert main(argv) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload == json.loads((out / "results.json").read_text())
    rows = payload["per_bits"]
    assert [r["bits"] for r in rows] == [3, 4, 5]
    for r in rows:
        assert {
            "bits",
            "sse_nested",
            "sse_independent",
            "sse_optimal",
            "quality_nested",
            "quality_independent",
            "bytes",
        } <= set(r)
        assert r["sse_optimal"] <= r["sse_nested_sample"] * (1 + 1e-9)
        assert r["sse_optimal"] <= r["sse_independent_sample"] * (1 + 1e-9)
        assert r["quality_nested"] > 1  # a perplexity
    # the paper's seed is k-means itself; the tree (default) re-chooses the seed runs
    assert rows[0]["sse_upscale"] == rows[0]["sse_independent"]
    assert all(a["sse_nested"] >= b["sse_nested"] for a, b in itertools.pairwise(rows))
    assert payload["storage"]["one_model"] == rows[-1]["bytes"]
    assert payload["throughput"]["linear_tokens_per_s_batch1"] > 0
    paths = payload["throughput"]["per_bits"]  # both paths without a kept weight, per width
    assert [r["bits"] for r in paths] == [3, 4, 5]
    for r in paths:
        for batch in (1, 64):
            ratio = (
                r[f"dequantize_tokens_per_s_batch{batch}"] / r[f"lookup_tokens_per_s_batch{batch}"]
            )
            assert r[f"lookup_over_dequantize_batch{batch}"] == pytest.approx(ratio, rel=1e-12)
    from kernelapprox.cli.compress_quantize import table

    lines = table(payload).splitlines()
    assert [line.split()[0] for line in lines[3:6]] == ["3", "4", "5"]
    assert "x one 5-bit model" in table(payload)
    assert "time(lookup) / time(dequantize-and-matmul)" in table(payload)
    assert 0 < payload["seconds"]["nested_cpu"] and "s CPU" in table(payload)
    assert not any(r["lossless"] for r in rows)  # 64-wide rows, at most 32 clusters


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--seed-bits", "4", "--max-bits", "3"], "--seed-bits must be <= --max-bits"),
        (["--max-bits", "9"], "--max-bits"),
        (["--seed-bits", "0"], "--seed-bits"),
        (["--iterations", "-1"], "--iterations"),
        (["--calibration", "0"], "--calibration"),
        (["--seed", "-2"], "--seed"),
        (["--model", "gpt2"], "invalid choice"),
        (["--format", "csv"], "invalid choice"),
    ],
)
def test_bad_options_fail_before_any_model_loads(argv, message, monkeypatch, capsys) -> None:
    import kernelapprox.compression.quantization.experiment as experiment

    def refuse(*args, **kwargs):
        raise AssertionError("the model must not load for a bad option")

    monkeypatch.setattr(experiment, "run_quantization", refuse)
    try:
        status = main(["compress", "quantize", *argv])
    except SystemExit as exc:  # argparse
        status = exc.code
    assert status == 2
    assert message in capsys.readouterr().err


def test_tiny_run_upscale_alone_and_the_text_table(capsys) -> None:
    argv = [
        "compress",
        "quantize",
        "--model",
        "tiny",
        "--train-steps",
        "3",
        "--calibration",
        "1",
        "--evaluation",
        "1",
        "--iterations",
        "2",
        "--max-bits",
        "4",
        "--optimal-rows",
        "0",
        "--no-progress",
        "--method",
    ]
    assert main([*argv, "upscale", "--format", "json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["method"] == "upscale"
    assert all("sse_upscale" not in r for r in payload["per_bits"])
    assert payload["per_bits"][0]["sse_nested"] == payload["per_bits"][0]["sse_independent"]
    assert main([*argv, "tree"]) == 0
    text = capsys.readouterr().out
    assert "nested quantization (tree)" in text and "upsc/ind" in text


def test_out_that_is_a_file_is_refused(tmp_path, capsys) -> None:
    path = tmp_path / "file"
    path.write_text("x")
    assert main(["compress", "quantize", "--out", str(path)]) == 2
    assert "--out" in capsys.readouterr().err


def test_ratios_are_not_reported_at_a_lossless_width() -> None:
    """Where every row has no more distinct weights (of positive sensitivity) than clusters,
    the optimum is 0 and a ratio would be one of rounding errors (1.8e22 on the small decoder
    at 8 bits before this rule)."""
    import torch

    from kernelapprox.compression.quantization.experiment import _most_distinct, _ratio

    g = torch.Generator().manual_seed(0)
    w = torch.randint(0, 6, (5, 40), generator=g).double()
    f = torch.rand(5, 40, generator=g, dtype=torch.float64)
    f[f < 0.3] = 0
    rows = [
        [v for v, s in zip(a, b, strict=True) if s > 0]
        for a, b in zip(w.tolist(), f.tolist(), strict=True)
    ]
    expected = max(len(set(r)) for r in rows)
    assert _most_distinct(w, f) == expected
    assert _most_distinct(w, torch.ones_like(f)) == max(len(set(a.tolist())) for a in w)
    assert _ratio(2.0, 1e-30, lossless=True) is None
    assert _ratio(2.0, 0.0, lossless=False) is None
    assert _ratio(3.0, 2.0, lossless=False) == 1.5
