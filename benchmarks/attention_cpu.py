"""CPU benchmark of the issue's targets (opt-in; not part of the tests).

Configuration: float32, B=1, H=8, d=64, m=256 positive features, causal, forward. Measured in
one run: ours, torch SDPA (exact) and performer-pytorch's ``FastAttention`` (when installed;
``pip install performer-pytorch``). Targets, as ratios of times in the same run:

* T=4096: ours at least 20x faster than performer-pytorch's causal path;
* T=16384: ours at least 2x faster than SDPA causal; the crossover length with SDPA;
* memory linear in T (``--memory`` measures the peak of a fresh process per case).

Usage::

    python benchmarks/attention_cpu.py --out benchmarks/results/cpu [--threads 2] [--memory]

Writes ``results.json`` (rows, summary, targets, environment), ``results.csv``,
``table.txt`` and ``attention_bench.png`` and prints the table and the target verdicts.
The load average is recorded: on a shared machine the numbers move with it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from kernelapprox.bench import attention as bench


def targets(rows: list[dict]) -> list[dict]:
    """The issue's CPU targets evaluated on the measured rows."""
    ok = {(r["impl"], r["mode"], r["T"]): r for r in rows if r.get("status") == "ok"}

    def ratio(peer: str, T: int, key: str = "time_ms") -> float | None:
        a, b = ok.get(("ours", "fwd", T)), ok.get((peer, "fwd", T))
        return None if a is None or b is None else b[key] / a[key]

    out = []
    for name, peer, T, goal in (
        ("vs performer causal", "performer", 4096, 20.0),
        ("vs SDPA causal", "sdpa", 16384, 2.0),
    ):
        r, rc, rm = ratio(peer, T), ratio(peer, T, "cpu_ms"), ratio(peer, T, "time_min_ms")
        out.append(
            {
                "target": f"T={T} {name}",
                "goal": f">= {goal:g}x",
                "measured": None if r is None else round(r, 2),
                "measured_min_times": None if rm is None else round(rm, 2),
                "measured_cpu_time": None if rc is None else round(rc, 2),
                "met": None if r is None else r >= goal,
            }
        )
    crossover = min(
        (T for (impl, mode, T) in ok if impl == "ours" and (ratio("sdpa", T) or 0) >= 1.0),
        default=None,
    )
    out.append(
        {
            "target": "crossover with SDPA (smallest measured T where ours is faster)",
            "measured": crossover,
        }
    )
    mem = sorted(
        (r["T"], r["peak_mb"])
        for r in rows
        if r.get("impl") == "ours" and isinstance(r.get("peak_mb"), float)
    )
    if len(mem) >= 2:
        (_, m0), (_, m1) = mem[-2], mem[-1]
        out.append(
            {
                "target": "memory ratio of ours between the two longest T (x2 each)",
                "measured": round(m1 / max(m0, 1e-9), 2),
                "goal": "~2 (linear)",
            }
        )
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--lengths", default="512,1024,2048,4096,8192,16384,32768")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--memory", action="store_true")
    p.add_argument("--max-seconds", type=float, default=30.0)
    p.add_argument("--out", default="benchmarks/results/cpu")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    sweep = bench.Sweep(
        lengths=[int(x) for x in args.lengths.split(",")],
        head_dims=[64],
        feature_multipliers=[4],
        modes=["fwd"],
        causal=True,
        batch=1,
        heads=8,
        dtype="float32",
        device="cpu",
        repeats=args.repeats,
        memory=args.memory,
        max_seconds=args.max_seconds,
    )
    rows = sweep.run(
        lambda r: print(
            f"  {r['impl']:>9} T={r['T']:<6} {r['time_ms']:.1f} ms"
            if "time_ms" in r
            else f"  {r['impl']} T={r['T']} {r['status']}",
            file=sys.stderr,
            flush=True,
        )
    )
    written = bench.write_results(rows, args.out)
    verdicts = targets(rows)
    path = Path(args.out) / "results.json"
    data = json.loads(path.read_text())
    data["targets"] = verdicts
    path.write_text(json.dumps(data, indent=2))
    print(bench.format_table(rows))
    print("\ntargets:")
    for t in verdicts:
        print(f"  {t}")
    print(f"\nenvironment: {bench.environment()}")
    print("written:", ", ".join(str(w) for w in written))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
