"""Roofline ratio of the CPU attention path over several fresh runs (opt-in; not a test).

Runs ``kernelapprox bench`` ``--runs`` times, each in a fresh process (the C allocator's state,
which moves the plain matmul peer, starts the same way each time), and reports per (mode, T)
the median and range over the runs of the time, of ``roofline`` (against a plain fp32 matmul
timed right after the case) and of ``roofline_compute`` (the table's ``vs_mm_out``: against
the same product into a preallocated output). The load average before each run is
recorded: on a shared machine the numbers move with it.

Usage::

    python benchmarks/attention_roofline.py --runs 5 --out docs/results/attention_roofline.json

Writes the summary, every run's rows and the command line as JSON, and prints a Markdown
table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from kernelapprox._io import atomic_write, json_text

COMMAND = [
    "bench",
    "--lengths",
    "4096,8192",
    "--head-dims",
    "64",
    "--feature-multipliers",
    "4",
    "--impls",
    "ours",
    "--modes",
    "fwd,fwdbwd",
    "--threads",
    "2",
    "--repeats",
    "5",
    "--no-progress",
]
FIELDS = ("time_ms", "roofline", "roofline_compute")
TARGETS = {"fwd": 0.50, "fwdbwd": 0.35}


def one_run(folder: Path) -> list[dict]:
    """The rows of one fresh ``kernelapprox bench`` process."""
    cmd = [sys.executable, "-m", "kernelapprox", *COMMAND, "--format", "json", "--out", str(folder)]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return json.loads((folder / "results.json").read_text())["rows"]


def summarize(runs: list[list[dict]]) -> list[dict]:
    """Median, min and max over the runs of each field, per (mode, T)."""
    cells: dict[tuple[str, int], list[dict]] = {}
    for rows in runs:
        for row in rows:
            if row.get("status") == "ok" and row["impl"] == "ours":
                cells.setdefault((row["mode"], row["T"]), []).append(row)
    out = []
    for (mode, T), rows in sorted(cells.items()):
        entry = {"mode": mode, "T": T, "runs": len(rows), "target": TARGETS.get(mode)}
        for field in FIELDS:
            values = [r[field] for r in rows if isinstance(r.get(field), float)]
            entry[field] = {
                "median": statistics.median(values),
                "min": min(values),
                "max": max(values),
            }
        out.append(entry)
    return out


def markdown(summary: list[dict]) -> str:
    def cell(s: dict, pct: bool) -> str:
        f = (lambda x: f"{100 * x:.1f} %") if pct else (lambda x: f"{x:.1f}")
        return f"{f(s['median'])} [{f(s['min'])}, {f(s['max'])}]"

    lines = [
        "| mode | T | time (ms) | roofline (plain matmul) | vs preallocated matmul | target |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for e in summary:
        target = f"{100 * e['target']:.0f} %" if e["target"] else ""
        lines.append(
            f"| {e['mode']} | {e['T']} | {cell(e['time_ms'], False)} | "
            f"{cell(e['roofline'], True)} | {cell(e['roofline_compute'], True)} | {target} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    runs, loads = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.runs):
            loads.append(os.getloadavg()[0])
            runs.append(one_run(Path(tmp) / f"run{i}"))
    summary = summarize(runs)
    print(markdown(summary))
    print(f"load average (1 min) before each run: {', '.join(f'{x:.2f}' for x in loads)}")
    if args.out is not None:
        payload = {
            "command": "kernelapprox " + " ".join(COMMAND),
            "runs": args.runs,
            "load_before_runs": loads,
            "summary": summary,
            "rows": runs,
        }
        atomic_write(args.out, json_text(payload))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
