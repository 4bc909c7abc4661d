"""The benchmark command produces well-formed output (nothing is timed or compared here)."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace

import pytest
import torch

from kernelapprox.bench.attention import (
    Case,
    algorithm_flops,
    build,
    make_inputs,
    matmul_rate,
    roofline_row,
    summarize,
)
from kernelapprox.cli import bench as bench_cli


def _parse(argv):
    parser = argparse.ArgumentParser()
    bench_cli.register(parser.add_subparsers())
    # glibc as it is: the process setting of --allocator retain is tested in a fresh process
    return parser.parse_args(["bench", "--allocator", "default", *argv])


def test_bench_json_rows_and_files(tmp_path, capsys):
    args = _parse(
        [
            "--lengths",
            "16,32",
            "--repeats",
            "1",
            "--impls",
            "ours,sdpa",
            "--heads",
            "2",
            "--head-dims",
            "8",
            "--modes",
            "fwd,fwdbwd,decode",
            "--decode-tokens",
            "2",
            "--format",
            "json",
            "--out",
            str(tmp_path),
        ]
    )
    assert args.func(args) == 0
    data = json.loads(capsys.readouterr().out)
    rows = data["rows"]
    assert len(rows) == 2 * 2 * 3
    assert all(r["status"] == "ok" and r["time_ms"] > 0 for r in rows)
    fwd = [r for r in rows if r["mode"] != "decode"]
    assert all(0 <= r["rel_error"] < 10 for r in fwd)
    assert [r["rel_error"] for r in fwd if r["impl"] == "sdpa"] == [0.0] * 4
    assert all(r["tokens_per_s"] > 0 for r in rows if r["mode"] == "decode")
    linear = [r for r in fwd if r["impl"] == "ours"]
    assert all(r["roofline"] == r["gflops"] / r["matmul_gflops"] > 0 for r in linear)
    assert all(r["roofline_compute"] == r["gflops"] / r["compute_gflops"] > 0 for r in linear)
    assert not any("roofline" in r for r in rows if r["impl"] == "sdpa" or r["mode"] == "decode")
    assert len(data["summary"]["roofline"]) == len(linear)
    assert {p.name for p in tmp_path.iterdir()} >= {
        "results.json",
        "results.csv",
        "table.txt",
        "attention_bench.png",
    }


def test_summary_ratios_and_crossover():
    def row(impl, T, ms):
        return {
            "impl": impl,
            "mode": "fwd",
            "T": T,
            "head_dim": 64,
            "n_features": 256,
            "status": "ok",
            "time_ms": ms,
        }

    rows = [
        row("ours", 1024, 10.0),
        row("sdpa", 1024, 5.0),
        row("ours", 4096, 40.0),
        row("sdpa", 4096, 80.0),
        row("performer", 4096, 800.0),
    ]
    s = summarize(rows)
    speed = {(r["peer"], r["T"]): r["speedup"] for r in s["speedups"]}
    assert speed == {("sdpa", 1024): 0.5, ("sdpa", 4096): 2.0, ("performer", 4096): 20.0}
    assert s["crossover_with_sdpa"] == {"fwd d=64 m=256": 4096}


@pytest.mark.parametrize(
    "bad", [["--modes", "sideways"], ["--impls", "xformers"], ["--dtype", "int8"]]
)
def test_bench_rejects_bad_choices(bad):
    args = _parse([*bad, "--lengths", "8"])
    with pytest.raises(ValueError):
        args.func(args)


def test_summary_compares_triton_with_every_peer_and_the_torch_path():
    def row(impl, T, ms):
        return {
            "impl": impl,
            "mode": "fwdbwd",
            "T": T,
            "head_dim": 64,
            "n_features": 128,
            "status": "ok",
            "time_ms": ms,
        }

    rows = [
        row("triton", 2048, 2.0),
        row("ours", 2048, 8.0),
        row("sdpa", 2048, 1.0),
        row("triton", 8192, 4.0),
        row("ours", 8192, 30.0),
        row("sdpa", 8192, 16.0),
    ]
    s = summarize(rows)
    speed = {(r["impl"], r["peer"], r["T"]): r["speedup"] for r in s["speedups"]}
    assert speed[("triton", "ours", 8192)] == 7.5
    assert speed[("triton", "sdpa", 2048)] == 0.5
    assert ("ours", "ours", 2048) not in speed
    assert s["crossover_with_sdpa"] == {"triton fwdbwd d=64 m=128": 8192, "fwdbwd d=64 m=128": None}


MATMUL_PARTS = ("projection", "chunk_products", "state")


def _flop_counter():
    """torch's FlopCounterMode, also counting the in-place ``baddbmm_`` (the causal chunks
    accumulate into their targets with it; torch's table has only the out-of-place op):
    ``2 b n k p`` for ``(b, n, k) @ (b, k, p)``, as for ``bmm``."""
    from torch.utils.flop_counter import FlopCounterMode

    def baddbmm_inplace(self_shape, a_shape, b_shape, out_shape=None, **kwargs):
        (batch, n, k), (_, _, p) = a_shape, b_shape
        return 2 * batch * n * k * p

    return FlopCounterMode(display=False, custom_mapping={torch.ops.aten.baddbmm_: baddbmm_inplace})


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("T", [128, 256])
def test_algorithm_flops_match_torch_flop_counter(causal, T):
    """The matrix-product parts of the count are exactly the products the forward runs
    (counted independently by torch's FlopCounterMode) when T is a whole number of chunks."""
    case = Case("ours", "fwd", T, 16, 32, batch=2, heads=3, causal=causal)
    q, k, v = make_inputs(case)
    with torch.no_grad(), _flop_counter() as counter:
        build(case)(q, k, v)
    flops = algorithm_flops(case)
    assert sum(flops[p] for p in MATMUL_PARTS) == counter.get_total_flops()
    assert flops["total"] == sum(v for p, v in flops.items() if p != "total")
    assert algorithm_flops(replace(case, mode="fwdbwd"))["total"] == 3 * flops["total"]


def test_algorithm_flops_do_not_count_the_padded_tail():
    """With T not a multiple of the chunk the implementation pads the last chunk; the count
    is of what the algorithm needs, so it stays at or below what the padded run does."""
    case = Case("ours", "fwd", 200, 16, 32, batch=1, heads=2)
    q, k, v = make_inputs(case)
    with torch.no_grad(), _flop_counter() as counter:
        build(case)(q, k, v)
    assert sum(algorithm_flops(case)[p] for p in MATMUL_PARTS) < counter.get_total_flops()


def test_roofline_row_is_achieved_rate_over_matmul_rate():
    case = Case("ours", "fwd", 64, 8, 16, heads=2)
    row = roofline_row(case, 2.0, 50.0)
    assert row["gflop"] == pytest.approx(algorithm_flops(case)["total"] / 1e9)
    assert row["gflops"] == pytest.approx(row["gflop"] / 2e-3)
    assert row["roofline"] == pytest.approx(row["gflops"] / 50.0)
    assert "roofline_compute" not in row
    both = roofline_row(case, 2.0, 50.0, 125.0)
    assert both["roofline_compute"] == pytest.approx(row["gflops"] / 125.0)
    assert matmul_rate(case, repeats=1) > 0
    assert matmul_rate(case, repeats=1, preallocated=True) > 0


def test_written_results_are_valid_json_when_a_value_is_not_finite(tmp_path):
    from kernelapprox.bench.attention import write_results

    row = {
        "impl": "ours",
        "mode": "fwd",
        "T": 8,
        "head_dim": 8,
        "n_features": 8,
        "status": "ok",
        "time_ms": 1.0,
        "rel_error": float("nan"),
    }
    write_results([row], tmp_path, plot=False)
    stored = json.loads((tmp_path / "results.json").read_text())
    assert stored["rows"][0]["rel_error"] is None
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "results.csv",
        "results.json",
        "table.txt",
    ]


def test_input_std_option_reaches_every_case(tmp_path):
    """``--input-std`` scales q and k of every case (its rows record it)."""
    options = "--lengths 32 --impls ours,sdpa --repeats 1 --input-std 0.25 --format json"
    args = _parse([*options.split(), "--out", str(tmp_path), "--no-progress"])
    assert args.func(args) == 0
    rows = json.loads((tmp_path / "results.json").read_text())["rows"]
    assert rows and all(r["input_std"] == 0.25 for r in rows)
