"""Summaries of a study run: per-cell intervals, per-curve slopes, a table and a plot."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from kernelapprox._io import atomic_path, atomic_write, json_safe
from kernelapprox.errors import EnvironmentFailure
from kernelapprox.estimators.rates import features_needed, fit_rate
from kernelapprox.estimators.replications import replication_interval
from kernelapprox.study.runner import StudyRun
from kernelapprox.study.spec import Cell

CURVE_KEYS = ("data", "kernel", "map", "sampler", "weights", "dim", "metric")
#: relative Frobenius errors for which each curve reports "features needed"
TARGETS = (0.05, 0.01)


def _cell_key(entry: dict[str, Any]) -> str:
    return Cell(*(entry[k] for k in Cell.__dataclass_fields__)).key


def _finite_or_none(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def summarize(run: StudyRun) -> dict[str, Any]:
    """``summary.json`` content: per cell mean/stderr/CI, per curve the fitted log-log slope."""
    level = run.spec.level
    groups: dict[tuple, list[float]] = defaultdict(list)
    for row in run.rows:
        groups[(*(row[k] for k in CURVE_KEYS), row["n_features"])].append(row["value"])
    cells = []
    for key in sorted(groups, key=lambda k: (*map(str, k[:-1]), k[-1])):
        values = np.asarray(groups[key])
        entry = dict(zip((*CURVE_KEYS, "n_features"), key, strict=True))
        if np.all(np.isfinite(values)):
            est = replication_interval(values, level=level, n=int(key[-1]))
            stats = {
                "mean": est.value,
                "stderr": _finite_or_none(est.stderr),
                "ci_low": _finite_or_none(est.ci_low),
                "ci_high": _finite_or_none(est.ci_high),
            }
        else:
            stats = {"mean": None, "stderr": None, "ci_low": None, "ci_high": None}
        cell = {**entry, **stats, "replications": int(values.size), "level": level}
        # non-finite errors (an overflowing feature map) are null in JSON, counted here
        cell["non_finite"] = int(np.sum(~np.isfinite(values)))
        if entry["metric"] == "rel_fro":
            pred = run.predictions.get(_cell_key(entry))
            pred = None if pred is None else _finite_or_none(pred)
            cell["analytic_rmse"] = pred
            cell["outside_prediction"] = (
                None
                if pred is None or stats["ci_low"] is None
                else not (stats["ci_low"] <= pred <= stats["ci_high"])
            )
        cells.append(cell)
    curves = []
    by_curve: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for row in run.rows:
        by_curve[tuple(row[k] for k in CURVE_KEYS)].append(row)
    for key in sorted(by_curve, key=lambda k: tuple(map(str, k))):
        rows = by_curve[key]
        ms = sorted({r["n_features"] for r in rows})
        reps = sorted({r["replication"] for r in rows})
        table = np.full((len(reps), len(ms)), np.nan)
        for r in rows:
            table[reps.index(r["replication"]), ms.index(r["n_features"])] = r["value"]
        curve: dict[str, Any] = dict(zip(CURVE_KEYS, key, strict=True))
        curve["n_features"] = ms
        curve["mean"] = [_finite_or_none(v) for v in np.mean(table, axis=0)]
        curve["slope"] = None
        if key[-1] == "rel_fro" and len(ms) >= 2 and all(v is not None for v in curve["mean"]):
            for target in TARGETS:
                curve[f"features_needed_{target}"] = _finite_or_none(
                    features_needed(ms, curve["mean"], target)
                )
        if len(ms) >= 2 and np.all(np.isfinite(table)) and np.all(table > 0):
            fit = fit_rate(ms, table, level=level)
            curve.update(
                slope=_finite_or_none(fit.slope),
                slope_stderr=_finite_or_none(fit.stderr),
                slope_ci_low=_finite_or_none(fit.ci_low),
                slope_ci_high=_finite_or_none(fit.ci_high),
            )
        curves.append(curve)
    return json_safe(
        {
            "spec": json.loads(run.spec.to_json()),
            "datasets": [d.describe() for d in run.datasets],
            "skipped": run.skipped,
            "cells": cells,
            "curves": curves,
        }
    )


def to_json(summary: dict[str, Any]) -> str:
    """``summary`` as strict JSON text (``NaN`` and ``Infinity`` are refused, never written)."""
    return json.dumps(summary, indent=2, allow_nan=False)


def _fmt(x: float | None, digits: int = 4) -> str:
    return "-" if x is None else f"{x:.{digits}g}" if abs(x) < 1e4 else f"{x:.2e}"


def format_table(summary: dict[str, Any], metric: str | None = None) -> str:
    """A text table of one metric: a row per curve, ``mean ±half-width`` per feature count."""
    metric = metric or summary["spec"]["metrics"][0]
    cells = [c for c in summary["cells"] if c["metric"] == metric]
    ms = sorted({c["n_features"] for c in cells})
    index = {(*(c[k] for k in CURVE_KEYS), c["n_features"]): c for c in cells}
    all_labels = ("data", "kernel", "map", "sampler", "weights", "dim")
    curves = [c for c in summary["curves"] if c["metric"] == metric]
    # columns with one value for the whole table go into the title instead
    constant = {k: curves[0][k] for k in all_labels if len({c[k] for c in curves}) == 1}
    labels = tuple(k for k in all_labels if k not in constant or k in ("map", "sampler"))
    with_analytic = any(c.get("analytic_rmse") is not None for c in cells)
    header = [*labels, *(f"m={m}" for m in ms), "slope [CI]"]
    header += ["vs analytic"] if with_analytic else []
    lines = []
    for curve in curves:
        row = [str(curve[k]) for k in labels]
        outside, predicted, judged = [], False, False
        for m in ms:
            c = index.get((*(curve[k] for k in CURVE_KEYS), m))
            if c is None or c["mean"] is None:
                row.append("-")
            elif c["ci_high"] is None:
                row.append(_fmt(c["mean"]))
            else:
                mark = " *" if c.get("outside_prediction") else ""
                row.append(f"{_fmt(c['mean'])} ±{_fmt(c['ci_high'] - c['mean'], 2)}{mark}")
            if c is not None and c.get("analytic_rmse") is not None:
                predicted = True
                judged = judged or c.get("outside_prediction") is not None
                if c.get("outside_prediction"):
                    outside.append(str(m))
        if curve["slope"] is None:
            row.append("-")
        elif curve.get("slope_ci_low") is None:
            row.append(f"{curve['slope']:.2f}")
        else:
            row.append(
                f"{curve['slope']:.2f} [{curve['slope_ci_low']:.2f}, {curve['slope_ci_high']:.2f}]"
            )
        if with_analytic:
            reps = summary["spec"]["replications"]
            no_interval = f"n/a ({reps} replication{'s' if reps > 1 else ''}: no interval)"
            verdict = "outside at m=" + ",".join(outside) if outside else "agrees"
            row.append(verdict if judged else no_interval if predicted else "-")
        lines.append(row)
    widths = [max(len(r[i]) for r in [header, *lines]) for i in range(len(header))]
    level = summary["spec"]["level"]
    fixed = ", ".join(f"{k}={v}" for k, v in constant.items() if k not in labels)
    title = (
        f"{metric} ({fixed}): mean over {summary['spec']['replications']} replications "
        f"± {level:.0%} Student-t half-width; slope of log(error) vs log(m) with its CI"
    )

    def aligned(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    out = [title, aligned(header), "  ".join("-" * w for w in widths)]
    out.extend(aligned(r) for r in lines)
    if any(c.get("outside_prediction") for c in cells):
        out.append(
            "* the interval excludes the analytic RMS error predicted for this cell "
            "(summary.json: analytic_rmse); a finding, not a failure"
        )
    return "\n".join(out)


def format_skipped(summary: dict[str, Any]) -> str:
    """One line naming the combinations a sweep left out, with the reasons ("" when none)."""
    if not summary["skipped"]:
        return ""
    return "skipped: " + "; ".join(f"{k} ({v})" for k, v in summary["skipped"].items())


def plot_convergence(summary: dict[str, Any], path: str | Path, metric: str | None = None) -> Path:
    """Log-log convergence curves with confidence intervals, one panel per (data, kernel)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metric = metric or summary["spec"]["metrics"][0]
    cells = [c for c in summary["cells"] if c["metric"] == metric]
    panels = sorted({(c["data"], c["kernel"], c["dim"], c["map"]) for c in cells}, key=str)
    ncols = min(4, len(panels))
    nrows = -(-len(panels) // ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(5.2 * ncols, 4.2 * nrows), squeeze=False, constrained_layout=True
    )
    samplers = sorted({c["sampler"] for c in cells})
    weights_all = sorted({c["weights"] for c in cells})
    colors = {s: plt.cm.tab10(i % 10) for i, s in enumerate(samplers)}
    styles = {w: ("-", "--", ":", "-.")[i % 4] for i, w in enumerate(weights_all)}
    for ax, panel in zip(axes.flat, panels, strict=False):
        data, kernel, dim, map_ = panel
        curves = defaultdict(list)
        for c in cells:
            if (c["data"], c["kernel"], c["dim"], c["map"]) == panel and c["mean"] is not None:
                curves[(c["sampler"], c["weights"])].append(c)
        for (sampler, weights), pts in sorted(curves.items()):
            pts.sort(key=lambda c: c["n_features"])
            m = [p["n_features"] for p in pts]
            mean = np.array([p["mean"] for p in pts])
            lo = np.array([p["ci_low"] if p["ci_low"] is not None else p["mean"] for p in pts])
            hi = np.array([p["ci_high"] if p["ci_high"] is not None else p["mean"] for p in pts])
            label = sampler + ("" if weights == "uniform" else f" ({weights} weights)")
            ax.plot(m, mean, linestyle=styles[weights], marker="o", ms=3, color=colors[sampler],
                    label=label)  # fmt: skip
            ax.fill_between(m, np.maximum(lo, 1e-300), hi, color=colors[sampler], alpha=0.15)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_title(f"{map_} map, {kernel} kernel, {data} data (d={dim})", fontsize=9)
        ax.set_xlabel("number of frequencies m")
        ax.set_ylabel(metric)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_visible(False)
    path = Path(path)
    try:
        with atomic_path(path) as tmp:  # keeps the extension: savefig infers the format
            fig.savefig(tmp, dpi=120)
    finally:
        plt.close(fig)
    return path


def write_outputs(run: StudyRun, out: str | Path) -> dict[str, Any]:
    """Write ``summary.json`` and ``convergence.png`` next to ``results.csv``, each atomically.

    A failed write leaves the previous file in place and raises
    :class:`~kernelapprox.errors.EnvironmentFailure` (``results.csv`` is complete by then).
    """
    out = Path(out)
    summary = summarize(run)
    try:
        atomic_write(out / "summary.json", to_json(summary) + "\n")
        plot_convergence(summary, out / "convergence.png")
    except OSError as exc:
        raise EnvironmentFailure(
            f"cannot write the summary to {str(out)!r}: {exc.strerror or exc}; results.csv is "
            "complete and kept; fix this and rerun with --resume to write the summary"
        ) from None
    return summary
