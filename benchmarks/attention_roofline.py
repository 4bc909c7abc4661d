r"""Roofline ratio of the CPU attention path over several fresh runs (opt-in; not a test).

Runs ``kernelapprox bench`` ``--runs`` times, each in a fresh process (the C allocator's state,
which moves the plain matmul peer, starts the same way each time), and reports per (mode, T)
the median and range over the runs of the time, of ``roofline`` (against a plain fp32 matmul
timed right after the case) and of ``roofline_compute`` (the table's ``vs_mm_out``: against
the same product into a preallocated output). The load average before each run is
recorded: on a shared machine the numbers move with it.

``--huge-pages`` sets torch's ``THP_MEM_ALLOC_ENABLE`` in the processes: ``on`` (the default,
and what ``import kernelapprox`` before torch sets when the variable is unset) ``madvise``\ s
CPU tensors of 2 MB and more for transparent huge pages, so that a fresh block is faulted in
2 MB at a time instead of 4 KB (where the kernel's mode, recorded, is ``madvise`` or
``always``); ``off`` sets it to ``0``. torch reads it at its first large allocation, hence fresh
processes. ``both`` alternates runs without and with huge pages (a paired comparison under the
same drift of the machine) and summarizes each configuration apart. ``--allocator`` passes
``kernelapprox bench``'s own option (``retain``, the default, keeps freed memory in the
process: :mod:`kernelapprox.bench.allocator`); ``both`` alternates ``default`` and ``retain``.

Usage::

    python benchmarks/attention_roofline.py --runs 5 --out docs/results/attention_roofline.json
    python benchmarks/attention_roofline.py --runs 5 --huge-pages both --out FILE
    python benchmarks/attention_roofline.py --runs 5 --allocator both --out FILE

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
from kernelapprox.bench.attention import transparent_hugepage_mode
from kernelapprox.cli._common import positive_int

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


HUGE_PAGES_VARIABLE = "THP_MEM_ALLOC_ENABLE"


def child_environment(huge_pages: bool) -> dict[str, str]:
    """This process's environment with torch's huge-page switch set to ``1`` or ``0`` (left
    unset, ``import kernelapprox`` would set it to ``1``)."""
    return {**os.environ, HUGE_PAGES_VARIABLE: "1" if huge_pages else "0"}


def one_run(
    folder: Path, *, huge_pages: bool = False, allocator: str = "retain"
) -> tuple[list[dict], dict]:
    """The rows and the environment (with ``cpu_huge_pages``, whether the process's fresh
    tensors did get huge pages) of one fresh ``kernelapprox bench --allocator allocator``
    process."""
    cmd = [sys.executable, "-m", "kernelapprox", *COMMAND, "--allocator", allocator]
    cmd += ["--format", "json", "--out", str(folder)]
    env = child_environment(huge_pages)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=env)
    result = json.loads((folder / "results.json").read_text())
    return result["rows"], result.get("environment", {})


def pages(huge: bool) -> str:
    """A configuration's name, as the summaries and messages call it."""
    return "huge pages" if huge else "4 KB pages"


def configuration(huge: bool, allocator: str) -> str:
    """A configuration's name, as the summaries call it."""
    return f"{pages(huge)}, " + ("freed memory kept" if allocator == "retain" else "glibc default")


def schedule(runs: int, huge_pages: str, allocator: str = "retain") -> list[tuple[bool, str]]:
    """``(huge pages, allocator)`` of each run: ``runs`` rounds of every configuration asked
    for (``both``: off first, then on; ``default`` first, then ``retain``), in turn."""
    pages_asked = [False, True] if huge_pages == "both" else [huge_pages == "on"]
    allocators = ["default", "retain"] if allocator == "both" else [allocator]
    return [(h, a) for h in pages_asked for a in allocators] * runs


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
    parser.add_argument("--runs", type=positive_int, default=5, help="runs per configuration")
    parser.add_argument("--huge-pages", choices=("off", "on", "both"), default="on")
    parser.add_argument("--allocator", choices=("retain", "default", "both"), default="retain")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    plan = schedule(args.runs, args.huge_pages, args.allocator)
    runs, loads, environments = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (huge, allocator) in enumerate(plan):
            loads.append(os.getloadavg()[0])
            rows, env = one_run(Path(tmp) / f"run{i}", huge_pages=huge, allocator=allocator)
            runs.append(rows)
            environments.append(env)
            if env.get("cpu_huge_pages") not in (None, huge):
                print(
                    f"run {i}: asked for {pages(huge)}, the process had "
                    f"{pages(env['cpu_huge_pages'])} (kernel mode "
                    f"{env.get('transparent_hugepage')})",
                    file=sys.stderr,
                )
    summaries = {}
    for config in dict.fromkeys(plan):
        name = configuration(*config)
        summaries[name] = summarize([r for r, c in zip(runs, plan, strict=True) if c == config])
        print(f"{name} ({HUGE_PAGES_VARIABLE}={int(config[0])}, --allocator {config[1]}):")
        print(markdown(summaries[name]))
    print(f"load average (1 min) before each run: {', '.join(f'{x:.2f}' for x in loads)}")
    if args.out is not None:
        payload = {
            "command": "kernelapprox " + " ".join(COMMAND),
            "runs": args.runs,
            "huge_pages": args.huge_pages,
            "allocator": args.allocator,
            "huge_pages_per_run": [h for h, _ in plan],
            "allocator_per_run": [a for _, a in plan],
            "transparent_hugepage_mode": transparent_hugepage_mode(),
            "load_before_runs": loads,
            # the bench's own defaults where a comparison was asked for
            "summary": summaries[configuration(args.huge_pages != "off", plan[-1][1])],
            "summaries": summaries,
            "rows": runs,
            "environments": environments,
        }
        atomic_write(args.out, json_text(payload))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
