"""The benchmark command produces well-formed output (nothing is timed or compared here)."""

from __future__ import annotations

import argparse
import json

import pytest

from kernelapprox.attention import bench_cli
from kernelapprox.attention.benchmark import summarize


def _parse(argv):
    parser = argparse.ArgumentParser()
    bench_cli.register(parser.add_subparsers())
    return parser.parse_args(["bench", *argv])


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
        return {"impl": impl, "mode": "fwdbwd", "T": T, "head_dim": 64, "n_features": 128,
                "status": "ok", "time_ms": ms}

    rows = [row("triton", 2048, 2.0), row("ours", 2048, 8.0), row("sdpa", 2048, 1.0),
            row("triton", 8192, 4.0), row("ours", 8192, 30.0), row("sdpa", 8192, 16.0)]
    s = summarize(rows)
    speed = {(r["impl"], r["peer"], r["T"]): r["speedup"] for r in s["speedups"]}
    assert speed[("triton", "ours", 8192)] == 7.5
    assert speed[("triton", "sdpa", 2048)] == 0.5
    assert ("ours", "ours", 2048) not in speed
    assert s["crossover_with_sdpa"] == {"triton fwdbwd d=64 m=128": 8192,
                                        "fwdbwd d=64 m=128": None}
