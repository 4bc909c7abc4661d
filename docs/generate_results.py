"""Regenerate the results page ``docs/results/index.md`` and its plots.

Runs ``kernelapprox study`` for the ``default`` and ``dijiang`` presets (under a minute each
on 2 cores) and the ``avron`` preset (both of its data sets, several minutes), copies each
study's figures (one per metric) next to the page, keeps what each study printed in
``docs/results/<name>.json`` (with its wall and CPU time when no cell was resumed) and writes
the page from those files: the command, the machine, the library versions and the tables as
Markdown tables. The outputs are committed, so building the site does not rerun the studies.
Each study writes to ``.cache/results/<name>`` and is resumed from there, so an interrupted
regeneration, or a second one, only runs the cells that are missing (a resumed run keeps the
timing of the last fresh one).

It also redraws the figure of the attention benchmark (``attention_bench.png``) from the
rows of its run stored in ``docs/results/attention_bench.json`` (see
:func:`render_bench_figure`).

Usage: ``python docs/generate_results.py [--render-only]`` (``--render-only`` rewrites the
page and the benchmark figure from the stored ``.json`` files without running anything).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "results"

STUDIES = (
    (
        "default",
        [],
        "The built-in study (`kernelapprox study` with no options): `sincos`, `positive` and "
        "DiJiang's `dct` map under MC, orthogonal, Sobol' and Halton frequencies for the "
        "Gaussian kernel (median length scale) on 400 standard-normal points in d = 8, "
        "m = 16..256, 5 independent replications per cell.",
    ),
    (
        "dijiang",
        ["--preset", "dijiang"],
        "The DiJiang comparison (`kernelapprox study --preset dijiang`): Performer's positive "
        "features, complex Fourier features, the paper's `dct` map and the released code's "
        "`dct_released` map, with MC and QMC radii, on attention-shaped data "
        "(`qk`: $\\mathcal{N}(0, I)$ rows; `qk_unit`: rows of norm $d^{1/4}$) in $d = 64$ at "
        "$m = d$ and $m = 4d$, for the softmax kernel $\\exp(q \\cdot k / \\sqrt{d})$ and the "
        "matching Gaussian kernel.",
    ),
    (
        "avron",
        ["--preset", "avron"],
        "The Gram-error protocol of Avron et al. (JMLR 2016) on both of its data sets in one run "
        "(`kernelapprox study --preset avron`): 500 digits (d = 64, a seeded random subsample) "
        "and 500 standard-normal points in d = 8, median length scale, `sincos` features, 10 "
        "replications. An earlier reproduction of this protocol, made while building the "
        "package (relative spectral error, MC / ORF / Halton / Sobol' / lattice), reads, on the "
        "digits, at m = 64: .0477 / "
        ".0132 / .0525 / .0520 / .0496 and at m = 1024: .0155 / .0036 / .0106 / .0044 / .0136 "
        "(orthogonal frequencies dominate in d = 64, and QMC overtakes MC only from a few "
        "hundred frequencies); in d = 8 at m = 64: .0463 / .0318 / .0294 / .0230 / .0407 and at "
        "m = 1024: .0129 / .0088 / .0027 / .0019 / .0040 (in low dimension QMC wins clearly, "
        "Sobol' below half of MC from m = 256 on).",
    ),
)


def _run(name: str, options: list[str]) -> dict:
    """Run one study; return what :func:`_render` needs (and what is stored in its .json)."""
    out = Path(".cache") / "results" / name  # relative to ROOT, the working directory below
    resume = ["--resume"] if (ROOT / out / "results.csv").exists() else []
    cmd = [sys.executable, "-m", "kernelapprox", "study", *options, "--out", str(out),
           "--no-progress", *resume]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env, cwd=ROOT)
    took = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    figures = []  # one per metric: convergence.png (the first), convergence_<metric>.png
    for png in sorted((ROOT / out).glob("convergence*.png"), key=lambda p: (len(p.name), p)):
        shutil.copyfile(png, OUT / f"{name}_{png.name}")
        figures.append(f"{name}_{png.name}")
    output = done.stdout.rstrip()
    record = {"options": options, "output": output, "wall_s": None, "cpu_s": None,
              "figures": figures}  # fmt: skip
    if not re.search(r"\((?:[1-9]\d*) cells? resumed from disk\)", output):
        record["wall_s"] = round(took, 1)
        record["cpu_s"] = round(after.ru_utime + after.ru_stime - cpu.ru_utime - cpu.ru_stime, 1)
        record["timed"] = datetime.date.today().isoformat()
    elif (OUT / f"{name}.json").exists():  # resumed: keep the timing of the last fresh run
        old = json.loads((OUT / f"{name}.json").read_text(encoding="utf-8"))
        for key in ("wall_s", "cpu_s", "timed"):
            record[key] = old.get(key)
    return record


_DASHES = re.compile(r"^-+(?: +-+)*\s*$")


def _md_cell(text: str) -> str:
    return text.strip().replace("|", "\\|").replace("*", "\\*")


def _cut(row: str, starts: list[int]) -> list[str]:
    """The cells of one fixed-width row whose columns start at ``starts``."""
    bounds = [*starts[1:], None]
    return [_md_cell(row[a:b]) for a, b in zip(starts, bounds, strict=True)]


def markdown_tables(output: str) -> str:
    """What ``kernelapprox study`` printed, with its fixed-width tables as Markdown tables.

    A table is a header line over a line of dashes (one run of dashes per column); its
    columns are cut where the runs of dashes start. The line above it (the metric and how the
    entries are computed) becomes its caption; notes after it stay text; the closing line
    (how many cells ran, where the files went) is left out.
    """
    lines = output.splitlines()
    parts: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if i + 1 < len(lines) and _DASHES.match(lines[i + 1]) and line.strip():
            starts = [m.start() for m in re.finditer(r"-+", lines[i + 1])]

            header = _cut(line, starts)
            numeric = ("m=", "slope", "features ratio")
            align = ["---:" if h.startswith(numeric) else "---" for h in header]
            table = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
            i += 2
            while (
                i < len(lines)
                and lines[i].strip()
                and not lines[i].startswith(("* ", "- ", "skipped:", "warning:"))
            ):
                table.append("| " + " | ".join(_cut(lines[i], starts)) + " |")
                i += 1
            parts += ['<div class="result-table" markdown>', "", "\n".join(table), "", "</div>", ""]
            continue
        if re.match(r"^\d+ cells? run\b", line):
            i += 1
            continue
        if line.strip():
            nxt = lines[i + 1] if i + 1 < len(lines) else ""
            text = _md_cell(line) if line.startswith(("* ", "- ")) else line.strip()
            if line.startswith("- "):  # the legend of "-" cells, not a list item
                text = "\\" + text
            if line.startswith("skipped:"):
                text = "Skipped cells: " + line[len("skipped:") :].strip()
            if i + 2 < len(lines) and _DASHES.match(lines[i + 2]) and nxt.strip():
                metric, _, rest = line.partition(" ")
                text = f"**`{metric}`** {rest.strip()}"
            parts += [text, ""]
        i += 1
    return "\n".join(parts).strip()


def _machine() -> str:
    threads = os.environ.get("OMP_NUM_THREADS", "unset")
    libs = ", ".join(f"{p} {version(p)}" for p in ("numpy", "scipy", "torch", "scikit-learn"))
    return (
        f"{platform.platform()}, {os.cpu_count()} CPU cores ({platform.machine()}), "
        f"Python {platform.python_version()}, {libs}; OMP_NUM_THREADS={threads}"
    )


def _timing(record: dict) -> str:
    if record.get("wall_s") is None:
        return "No fresh run of this study has been timed yet (its cells were resumed)."
    when = f" (timed on {record['timed']})" if record.get("timed") else ""
    return (
        f"A fresh run (no stored cells) took {record['wall_s']:.0f} s of wall time and "
        f"{record['cpu_s']:.0f} s of CPU time on the machine above{when}."
    )


def _render(records: dict[str, dict], stamp: str, machine: str) -> str:
    parts = [
        "---",
        "hide:",  # the wide tables get the whole width of the page
        "  - navigation",
        "  - toc",
        "---",
        "",
        "# Results",
        "",
        "Tables and plots produced by the study runner, with the exact command that made "
        "each one. Every entry is a mean over independent replications; `×÷f` gives its 95% "
        "interval [mean/f, mean·f] (a Student-t interval on the log scale, so it never reaches "
        "0); the slope is the fitted log-log rate of error against the number of frequencies "
        "m, with its interval. A `*` marks a cell whose measured RMS error excludes the "
        "analytic RMS prediction, Holm-adjusted over all tested cells (a finding, not a "
        "failure). Each table of errors is followed by its comparison with MC at equal m: "
        "the ratio of geometric mean errors with a Welch interval on log errors, and the "
        "ratio of the features needed for the same error (log-log interpolation, bootstrap "
        "interval); below 1 is better than MC. There is one figure per metric; a sampler has "
        "the same colour and marker in all of them. Click a figure to enlarge it.",
        "",
        "<!-- Generated by `python docs/generate_results.py`; do not edit by hand. -->",
        "",
        f"Generated on {stamp} by `python docs/generate_results.py` on: {machine}.",
        "",
    ]
    for name, options, blurb in STUDIES:
        record = records[name]
        command = " ".join(["kernelapprox", "study", *options])
        parts += [
            f"## `{command}`",
            "",
            blurb,
            "",
            _timing(record),
            "",
            markdown_tables(record["output"]),
            "",
        ]
        for figure in record.get("figures") or [f"{name}_convergence.png"]:
            parts += [f"![convergence curves of `{command}`]({figure})", ""]
    return "\n".join(parts)


def render_bench_figure() -> Path | None:
    """Redraw ``attention_bench.png`` of the benchmarks page from the stored rows of its run.

    ``docs/results/attention_bench.json`` holds the rows (the format of the ``results.json``
    that ``kernelapprox bench --out DIR`` writes) of the run the benchmarks page reports; a new
    run's ``results.json`` copied there replaces them. ``None`` when the file is missing.
    """
    from kernelapprox.bench.attention import plot_results

    source = OUT / "attention_bench.json"
    if not source.exists():
        return None
    stored = json.loads(source.read_text(encoding="utf-8"))
    return plot_results(stored["rows"], OUT / "attention_bench.png", stored.get("environment"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--render-only", action="store_true", help="rewrite the page from the stored .json files"
    )
    args = parser.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    records = {}
    for name, options, _blurb in STUDIES:
        if args.render_only:
            records[name] = json.loads((OUT / f"{name}.json").read_text(encoding="utf-8"))
            continue
        records[name] = _run(name, options)
        records[name]["generated"] = datetime.date.today().isoformat()
        records[name]["machine"] = _machine()
        text = json.dumps(records[name], indent=1, ensure_ascii=False) + "\n"
        (OUT / f"{name}.json").write_text(text, encoding="utf-8")
    bench = render_bench_figure()
    if bench is not None:
        print(f"wrote {bench}")
    first = records[STUDIES[0][0]]
    page = _render(records, first["generated"], first["machine"])
    (OUT / "index.md").write_text(page, encoding="utf-8")
    print(f"wrote {OUT / 'index.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
