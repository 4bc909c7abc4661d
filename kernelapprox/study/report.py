"""Summaries of a study run: per-cell intervals, per-curve slopes, a table and a plot."""

from __future__ import annotations

import json
import math
import zlib
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from kernelapprox._io import atomic_path, atomic_write, json_safe
from kernelapprox.errors import EnvironmentFailure
from kernelapprox.estimators.bootstrap import bootstrap_replications
from kernelapprox.estimators.comparisons import (
    cochran_replications,
    error_ratio,
    features_ratio,
    holm_adjust,
    rms_p_value,
)
from kernelapprox.estimators.gram import METRICS as GRAM_METRICS
from kernelapprox.estimators.rates import features_needed, fit_rate
from kernelapprox.estimators.replications import log_scale_interval, rms_interval
from kernelapprox.features import MAPS
from kernelapprox.sampling import SAMPLERS
from kernelapprox.study.records import StudyRun
from kernelapprox.study.spec import Cell
from kernelapprox.study.store import figure_name

CURVE_KEYS = ("data", "kernel", "map", "sampler", "weights", "dim", "metric")
#: relative Frobenius errors for which each curve reports "features needed"
TARGETS = (0.05, 0.01)


def _cell_key(entry: dict[str, Any]) -> str:
    return Cell(*(entry[k] for k in Cell.__dataclass_fields__)).key


def _finite_or_none(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


#: Cochran's 25 G1^2 for the ``positive`` map's relative Frobenius error, measured over 1000
#: replications (MC, Gaussian kernel, 400 normal points, d=8): G1 = 3.87 at m=16 and 4.31 at
#: m=256, so 375 and 464. A handful of replications almost never shows that skewness, so a
#: heavy-tailed curve is judged by the larger of this and its own sample's estimate.
HEAVY_TAILED_REPLICATIONS = 375


def _sort_key(key: tuple) -> tuple:
    """Natural order: text as text, numbers (dims, feature counts) as numbers."""
    return tuple((0, v, "") if isinstance(v, int | float) else (1, 0, str(v)) for v in key)


def shares_randomness(a: Cell, b: Cell, root: int, replications: int) -> bool:
    """Whether replication ``r`` of cells ``a`` and ``b`` draws from one seed, for every ``r``.

    The runner seeds a replication by its cell's key (:meth:`Cell.seed`), so two cells
    that differ only in their sampler never share seeds today; comparisons then treat their
    replications as independent samples (Welch on log errors), not as pairs.
    """
    return all(a.seed(root, r).spawn_key == b.seed(root, r).spawn_key for r in range(replications))


def _cell_stats(values: np.ndarray, level: float, n: int) -> dict[str, Any]:
    empty = dict.fromkeys(
        ("mean", "stderr", "ci_low", "ci_high", "boot_ci_low", "boot_ci_high"), None
    )
    if not (np.all(np.isfinite(values)) and np.all(values >= 0)):
        return empty
    est = log_scale_interval(values, level=level, n=n)
    stats = {
        "mean": est.value,
        "stderr": _finite_or_none(est.stderr),
        "ci_low": _finite_or_none(est.ci_low),
        "ci_high": _finite_or_none(est.ci_high),
        "boot_ci_low": None,
        "boot_ci_high": None,
    }
    if values.size >= 2:
        boot = bootstrap_replications(values, level=level, seed=0)
        stats["boot_ci_low"], stats["boot_ci_high"] = boot.ci_low, boot.ci_high
    return stats


def _compare_with_analytic(cells: list[dict[str, Any]], values: dict, level: float) -> int:
    """RMS interval, p-value and Holm-adjusted verdict for every cell with a prediction."""
    tested = [c for c in cells if c.get("analytic_rmse") is not None]
    pvals = []
    for c in tested:
        v = values[c["_key"]]
        finite = np.all(np.isfinite(v))
        rms = rms_interval(v, level=level) if finite else None
        c["rms"] = None if rms is None else _finite_or_none(rms.value)
        c["rms_ci_low"] = None if rms is None else _finite_or_none(rms.ci_low)
        c["rms_ci_high"] = None if rms is None else _finite_or_none(rms.ci_high)
        p = rms_p_value(v, c["analytic_rmse"]) if finite else float("nan")
        c["analytic_p"] = _finite_or_none(p)
        pvals.append(p)
    adjusted = holm_adjust(pvals) if pvals else np.array([])
    for c, p in zip(tested, adjusted, strict=True):
        c["analytic_p_holm"] = _finite_or_none(p)
        c["outside_prediction"] = None if np.isnan(p) else bool(p <= 1.0 - level)
    return int(np.sum(~np.isnan(adjusted)))


def summarize(run: StudyRun) -> dict[str, Any]:
    """``summary.json`` content: per cell, per curve, and each sampler against the baseline.

    Per cell: the mean over replications with its log-scale t interval (``ci_low``,
    ``ci_high``; positive, see
    :func:`~kernelapprox.estimators.replications.log_scale_interval`) and a percentile
    bootstrap interval over replications (``boot_ci_low``, ``boot_ci_high``); for
    ``rel_fro`` cells with an analytic RMS prediction, the measured RMS with its interval
    and the p-value of the agreement, Holm-adjusted over all tested cells
    (``outside_prediction`` is ``None`` without an interval); against the baseline sampler
    at equal ``m``, the ratio of geometric mean errors with its interval (``ratio``,
    :func:`~kernelapprox.estimators.comparisons.error_ratio`).

    Per curve: the fitted log-log slope, features needed for the :data:`TARGETS`, the
    ratio of features needed for equal error against the baseline
    (:func:`~kernelapprox.estimators.comparisons.features_ratio`, by interpolation), and for
    maps whose Gram errors are heavy-tailed (:attr:`FeatureMap.heavy_tailed
    <kernelapprox.features.FeatureMap.heavy_tailed>`: exponentials of Gaussian projections)
    Cochran's replications needed (``replications_needed``,
    :func:`~kernelapprox.estimators.comparisons.cochran_replications`).
    """
    spec = run.spec
    level = spec.level
    baseline = spec.baseline
    groups: dict[tuple, list[float]] = defaultdict(list)
    for row in run.rows:
        groups[(*(row[k] for k in CURVE_KEYS), row["n_features"])].append(row["value"])
    values = {k: np.asarray(v) for k, v in groups.items()}
    cells = []
    for key in sorted(groups, key=_sort_key):
        v = values[key]
        entry = dict(zip((*CURVE_KEYS, "n_features"), key, strict=True))
        cell = {**entry, **_cell_stats(v, level, int(key[-1])), "replications": int(v.size)}
        cell["level"] = level
        # non-finite errors (an overflowing feature map) are null in JSON, counted here
        cell["non_finite"] = int(np.sum(~np.isfinite(v)))
        cell["_key"] = key
        if entry["metric"] == "rel_fro":
            pred = run.predictions.get(_cell_key(entry))
            cell["analytic_rmse"] = None if pred is None else _finite_or_none(pred)
            cell["outside_prediction"] = None
        base_key = (*key[:3], baseline, *key[4:])
        if entry["sampler"] != baseline and base_key in values:
            b = values[base_key]
            paired = shares_randomness(
                Cell(*(entry[k] for k in Cell.__dataclass_fields__)),
                Cell(*(dict(entry, sampler=baseline)[k] for k in Cell.__dataclass_fields__)),
                spec.seed, max(v.size, b.size),
            )  # fmt: skip
            ok = all(np.all(np.isfinite(x)) and np.all(x > 0) for x in (v, b))
            ok = ok and (not paired or v.size == b.size)
            ratio = error_ratio(v, b, paired=paired, level=level) if ok else None
            cell["ratio"] = None if ratio is None else _finite_or_none(ratio.value)
            cell["ratio_ci_low"] = None if ratio is None else _finite_or_none(ratio.ci_low)
            cell["ratio_ci_high"] = None if ratio is None else _finite_or_none(ratio.ci_high)
            cell["ratio_method"] = None if ratio is None else ratio.method
        cells.append(cell)
    tested = _compare_with_analytic(cells, values, level)
    for c in cells:
        del c["_key"]
    curves = []
    by_curve: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for row in run.rows:
        by_curve[tuple(row[k] for k in CURVE_KEYS)].append(row)
    tables: dict[tuple, tuple[list[int], np.ndarray]] = {}
    for key, rows in by_curve.items():
        ms = sorted({r["n_features"] for r in rows})
        reps = sorted({r["replication"] for r in rows})
        table = np.full((len(reps), len(ms)), np.nan)
        for r in rows:
            table[reps.index(r["replication"]), ms.index(r["n_features"])] = r["value"]
        tables[key] = (ms, table)
    for key in sorted(by_curve, key=_sort_key):
        ms, table = tables[key]
        curve: dict[str, Any] = dict(zip(CURVE_KEYS, key, strict=True))
        curve["n_features"] = ms
        curve["mean"] = [_finite_or_none(v) for v in np.mean(table, axis=0)]
        curve["slope"] = None
        positive = bool(np.all(np.isfinite(table)) and np.all(table > 0))
        if key[-1] == "rel_fro" and len(ms) >= 2 and all(v is not None for v in curve["mean"]):
            for target in TARGETS:
                curve[f"features_needed_{target}"] = _finite_or_none(
                    features_needed(ms, curve["mean"], target)
                )
        if len(ms) >= 2 and positive:
            fit = fit_rate(ms, table, level=level)
            curve.update(
                slope=_finite_or_none(fit.slope),
                slope_stderr=_finite_or_none(fit.stderr),
                slope_ci_low=_finite_or_none(fit.ci_low),
                slope_ci_high=_finite_or_none(fit.ci_high),
            )
        base = (*key[:3], baseline, *key[4:])
        if key[3] != baseline and base in tables and len(ms) >= 2:
            bms, btable = tables[base]
            both = bool(np.all(np.isfinite(btable)) and np.all(btable > 0)) and positive
            if both and bms == ms:
                est, relation, target = features_ratio(ms, table, btable, level=level)
                curve.update(
                    features_ratio=_finite_or_none(est.value),
                    features_ratio_relation=relation,
                    features_ratio_ci_low=_finite_or_none(est.ci_low),
                    features_ratio_ci_high=_finite_or_none(est.ci_high),
                    features_ratio_error=target,
                )
        heavy_tailed = key[2] in MAPS and MAPS[key[2]].heavy_tailed
        if heavy_tailed and key[-1] in GRAM_METRICS and np.all(np.isfinite(table)):
            need = cochran_replications(table)
            need = max(HEAVY_TAILED_REPLICATIONS, need if np.isfinite(need) else 0)
            curve["replications_needed"] = math.ceil(need)
            curve["too_few_replications"] = bool(table.shape[0] < need)
        curves.append(curve)
    compared = baseline in spec.samplers
    return json_safe(
        {
            "spec": json.loads(spec.to_json()),
            "datasets": [d.describe() for d in run.datasets],
            "skipped": run.skipped,
            "baseline": baseline if compared else None,
            "analytic_cells_tested": tested,
            "cells": cells,
            "curves": curves,
        }
    )


def to_json(summary: dict[str, Any]) -> str:
    """``summary`` as strict JSON text (``NaN`` and ``Infinity`` are refused, never written)."""
    return json.dumps(summary, indent=2, allow_nan=False)


def _fmt(x: float | None, digits: int = 4) -> str:
    return "-" if x is None else f"{x:.{digits}g}" if abs(x) < 1e4 else f"{x:.2e}"


def _labels(curves: list[dict[str, Any]]) -> tuple[tuple[str, ...], dict[str, Any]]:
    """Label columns of a table, and the labels constant over it (they go into the title)."""
    all_labels = ("data", "kernel", "map", "sampler", "weights", "dim")
    constant = {k: curves[0][k] for k in all_labels if len({c[k] for c in curves}) == 1}
    labels = tuple(k for k in all_labels if k not in constant or k in ("map", "sampler"))
    return labels, constant


def _aligned_table(title: str, header: list[str], lines: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *lines]) for i in range(len(header))]

    def aligned(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    return [title, aligned(header), "  ".join("-" * w for w in widths), *map(aligned, lines)]


def _interval(value: float | None, low: float | None, high: float | None) -> str:
    if value is None:
        return "-"
    if low is None or high is None:
        return _fmt(value, 3)
    return f"{_fmt(value, 3)} [{_fmt(low, 2)}, {_fmt(high, 2)}]"


def format_table(summary: dict[str, Any], metric: str | None = None) -> str:
    """A text table of one metric: a row per curve, ``mean ×÷factor`` per feature count.

    ``mean ×÷f`` reads "the interval [mean/f, mean*f]": the log-scale t interval of the
    mean (positive, symmetric on the log axis of the plots). The "vs analytic" column
    compares the measured RMS with the analytic RMS prediction, Holm-adjusted over every
    tested cell, and gives no verdict without an interval (one replication).
    """
    metric = metric or summary["spec"]["metrics"][0]
    cells = [c for c in summary["cells"] if c["metric"] == metric]
    ms = sorted({c["n_features"] for c in cells})
    index = {(*(c[k] for k in CURVE_KEYS), c["n_features"]): c for c in cells}
    curves = [c for c in summary["curves"] if c["metric"] == metric]
    labels, constant = _labels(curves)
    with_analytic = any(c.get("analytic_rmse") is not None for c in cells)
    header = [*labels, *(f"m={m}" for m in ms), "slope [CI]"]
    header += ["vs analytic"] if with_analytic else []
    lines, dashes = [], False
    for curve in curves:
        row = [str(curve[k]) for k in labels]
        outside, predicted, judged = [], False, False
        for m in ms:
            c = index.get((*(curve[k] for k in CURVE_KEYS), m))
            if c is None or c["mean"] is None:
                row.append("-")
                dashes = True
            elif c["ci_high"] is None or c["ci_low"] is None or c["ci_low"] <= 0:
                row.append(_fmt(c["mean"]))
            else:
                mark = " *" if c.get("outside_prediction") else ""
                factor = c["ci_high"] / c["mean"]
                row.append(f"{_fmt(c['mean'])} ×÷{factor:.2f}{mark}")
            if c is not None and c.get("analytic_rmse") is not None:
                predicted = True
                judged = judged or c.get("outside_prediction") is not None
                if c.get("outside_prediction"):
                    outside.append(str(m))
        if curve["slope"] is None:
            row.append("-")
            dashes = True
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
    level = summary["spec"]["level"]
    fixed = ", ".join(f"{k}={v}" for k, v in constant.items() if k not in labels)
    title = (
        f"{metric} ({fixed}): mean over {summary['spec']['replications']} replications ×÷f, "
        f"its {level:.0%} interval [mean/f, mean·f] (Student t on the log scale); slope of "
        "log(error) vs log(m) with its CI"
    )
    out = _aligned_table(title, header, lines)
    floors = [
        f"{d['data']}/{kernel} {_fmt(values[metric])}"
        for d in summary["datasets"]
        for kernel, values in (d.get("exact_kernel") or {}).items()
        if metric in values
    ]
    if floors:
        out.append(f"exact kernel's {metric} on the same split: " + ", ".join(floors))
    if any(c.get("outside_prediction") for c in cells):
        tested = summary.get("analytic_cells_tested", 0)
        out.append(
            "* the measured RMS error's interval excludes the analytic RMS prediction "
            f"(Holm-adjusted over the {tested} tested cells, p <= {1 - level:.2g}; "
            "summary.json: rms, analytic_rmse, analytic_p_holm); a finding, not a failure"
        )
    if dashes:
        out.append(
            "- no value: the cell is not in the sweep or an error is not finite (summary.json: "
            "non_finite); a slope needs two feature counts with positive finite errors"
        )
    heavy = [c for c in curves if c.get("too_few_replications")]
    if heavy:
        names = sorted({f"{c['map']}/{c['sampler']}" for c in heavy})
        need = max(c["replications_needed"] for c in heavy)
        out.append(
            f"warning: {', '.join(names)}: heavy-tailed errors; Cochran's rule (n > 25 G1^2) asks "
            f"for about {need} replications, {summary['spec']['replications']} were run, so "
            "these means and intervals may fall short (summary.json: boot_ci_low/high "
            "are the bootstrap intervals; the ratios to the baseline use log errors)"
        )
    return "\n".join(out)


def format_comparison(summary: dict[str, Any], metric: str | None = None) -> str:
    """Each sampler against the baseline at equal m, and the features ratio ("" if none).

    A row per curve that has a baseline curve: the ratio of geometric mean errors per
    feature count with its interval
    (:func:`~kernelapprox.estimators.comparisons.error_ratio`), and the ratio of features
    needed for the error both curves reach at the largest m, with its bootstrap interval
    (:func:`~kernelapprox.estimators.comparisons.features_ratio`).
    """
    metric = metric or summary["spec"]["metrics"][0]
    baseline = summary.get("baseline")
    if baseline is None:
        return ""
    cells = [c for c in summary["cells"] if c["metric"] == metric and "ratio" in c]
    curves = [c for c in summary["curves"] if c["metric"] == metric and c["sampler"] != baseline]
    index = {(*(c[k] for k in CURVE_KEYS), c["n_features"]): c for c in cells}
    curves = [
        c for c in curves if any((*(c[k] for k in CURVE_KEYS), m) in index for m in c["n_features"])
    ]
    if not curves:
        return ""
    ms = sorted({c["n_features"] for c in cells})
    labels, constant = _labels(curves)
    header = [*labels, *(f"m={m}" for m in ms), "features ratio [CI]"]
    lines = []
    methods = set()
    for curve in curves:
        row = [str(curve[k]) for k in labels]
        for m in ms:
            c = index.get((*(curve[k] for k in CURVE_KEYS), m))
            if c is not None and c.get("ratio_method"):
                methods.add(c["ratio_method"])
            row.append("-" if c is None else _interval(c["ratio"], c["ratio_ci_low"],
                                                         c["ratio_ci_high"]))  # fmt: skip
        relation = curve.get("features_ratio_relation")
        if relation is None or relation == "?" or curve.get("features_ratio") is None:
            row.append("-")
        else:
            bound = "" if relation == "=" else relation
            low, high = curve.get("features_ratio_ci_low"), curve.get("features_ratio_ci_high")
            hi_text = "inf" if high is None and low is not None else _fmt(high, 2)
            ci = "" if low is None else f" [{_fmt(low, 2)}, {hi_text}]"
            row.append(f"{bound}{_fmt(curve['features_ratio'], 3)}{ci}")
        if any(entry != "-" for entry in row[len(labels) :]):  # rows with no ratio are left out
            lines.append(row)
    if not lines:  # e.g. error rates of 0, which have no log
        return ""
    level = summary["spec"]["level"]
    how = (
        "paired t on log errors"
        if methods == {"paired-log-t"}
        else "Welch t on log errors, the samplers' replications being independent"
    )
    fixed = ", ".join(f"{k}={v}" for k, v in constant.items() if k not in labels)
    title = (
        f"{metric} against {baseline} ({fixed}): ratio of geometric mean errors at equal m "
        f"[{level:.0%} CI, {how}]; features ratio: features needed for the error both reach "
        f"at m={ms[-1]}, over {baseline}'s (log-log interpolation, bootstrap CI); below 1 = "
        f"better than {baseline}"
    )
    return "\n".join(_aligned_table(title, header, lines))


def format_skipped(summary: dict[str, Any]) -> str:
    """One line naming the combinations a sweep left out, with the reasons ("" when none)."""
    if not summary["skipped"]:
        return ""
    return "skipped: " + "; ".join(f"{k} ({v})" for k, v in summary["skipped"].items())


#: One colour and one marker per sampler, the same in every panel and every figure.
SAMPLER_STYLE = {name: (f"C{i % 10}", "osD^vP*Xh"[i % 9]) for i, name in enumerate(SAMPLERS)}


def sampler_style(sampler: str) -> tuple[str, str]:
    """``(colour, marker)`` of a sampler; one with options (``spherical:directions=...``)
    keeps its base sampler's colour and gets a marker of its own, fixed by its spec string."""
    if sampler in SAMPLER_STYLE:
        return SAMPLER_STYLE[sampler]
    base = sampler.partition(":")[0]
    color = SAMPLER_STYLE.get(base, ("k", "o"))[0]
    return color, "dpH8<>"[zlib.crc32(sampler.encode()) % 6]


WEIGHT_LINES = {"uniform": "-", "box": "--", "fitted": ":"}


def _tick_label(value: float, _pos: Any = None) -> str:
    return f"{value:.2g}"  # 1.5 and 2 stay apart in every decade (1.5e+05, 2e+05)


def plot_convergence(summary: dict[str, Any], path: str | Path, metric: str | None = None) -> Path:
    """Save :func:`convergence_figure` of ``metric`` (default the first) to ``path``."""
    fig = convergence_figure(summary, metric)  # selects the Agg backend first
    import matplotlib.pyplot as plt

    path = Path(path)
    try:
        with atomic_path(path) as tmp:  # keeps the extension: savefig infers the format
            fig.savefig(tmp, dpi=120)
    finally:
        plt.close(fig)
    return path


def convergence_figure(summary: dict[str, Any], metric: str | None = None) -> Any:
    """Log-log convergence curves of one metric, one panel per (data, kernel, dim, map).

    Each sampler keeps one colour and marker (:data:`SAMPLER_STYLE`) everywhere; weights
    are line styles. The band is the log-scale interval of the mean (positive, so it stays
    on the log axis), the grey lines are the rates ``m^-1/2`` and ``m^-1`` through the
    panel's first point, and a curve with feature counts that have no finite value (``-``
    in the table) says so in the legend.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter, NullLocator

    metric = metric or summary["spec"]["metrics"][0]
    cells = [c for c in summary["cells"] if c["metric"] == metric]
    panels = sorted({(c["data"], c["kernel"], c["dim"], c["map"]) for c in cells}, key=_sort_key)
    ncols = min(4, len(panels))
    nrows = -(-len(panels) // ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(4.6 * ncols, 3.9 * nrows + 0.9), squeeze=False,
        constrained_layout=True,
    )  # fmt: skip
    legend: dict[str, Any] = {}
    order: dict[str, tuple] = {}
    for ax, panel in zip(axes.flat, panels, strict=False):
        data, kernel, dim, map_ = panel
        curves = defaultdict(list)
        for c in cells:
            if (c["data"], c["kernel"], c["dim"], c["map"]) == panel:
                curves[(c["sampler"], c["weights"])].append(c)
        firsts, all_m, gaps = [], set(), []
        for (sampler, weights), pts in sorted(curves.items(), key=lambda kv: _sort_key(kv[0])):
            pts.sort(key=lambda c: c["n_features"])
            missing = [p["n_features"] for p in pts if p["mean"] is None]
            pts = [p for p in pts if p["mean"] is not None]
            color, marker = sampler_style(sampler)
            line = WEIGHT_LINES.get(weights, "-.")
            label = sampler + ("" if weights == "uniform" else f" ({weights} weights)")
            if missing:
                gaps.append(f"{label} at m={','.join(map(str, missing))}")
            base = sampler.partition(":")[0]
            rank = list(SAMPLER_STYLE).index(base) if base in SAMPLER_STYLE else len(SAMPLER_STYLE)
            order[label] = (0, rank, sampler, weights)
            if not pts:
                legend.setdefault(label, Line2D([], [], color=color, marker=marker, ls=line, ms=4))
                continue
            m = np.array([p["n_features"] for p in pts], dtype=float)
            mean = np.array([p["mean"] for p in pts])
            all_m.update(m.tolist())
            (handle,) = ax.plot(m, mean, linestyle=line, marker=marker, ms=4, color=color, lw=1.3)
            legend.setdefault(label, handle)
            band = [
                (p["n_features"], p["ci_low"], p["ci_high"])
                for p in pts
                if p["ci_low"] is not None and p["ci_low"] > 0 and p["ci_high"] is not None
            ]
            if len(band) >= 2:
                bm, lo, hi = (np.array(v, dtype=float) for v in zip(*band, strict=True))
                ax.fill_between(bm, lo, hi, color=color, alpha=0.15, lw=0)
            firsts.append((m[0], mean[0]))
        if firsts:
            m0 = min(f[0] for f in firsts)
            at_m0 = [f[1] for f in firsts if f[0] == m0]
            y0 = float(np.exp(np.mean(np.log(at_m0))))
            grid = np.array(sorted(all_m))
            for power, ls, name in ((0.5, (0, (4, 3)), "m^-1/2"), (1.0, (0, (1, 2)), "m^-1")):
                (guide,) = ax.plot(grid, y0 * (grid / m0) ** -power, color="0.45", ls=ls, lw=1)
                legend.setdefault(f"rate {name}", guide)
                order[f"rate {name}"] = (1, int(power * 2), "", "")
        ax.set_title(f"{map_} map, {kernel} kernel\n{data} data, d={dim}", fontsize=9)
        if not firsts:  # nothing finite to draw: say so, with no axes to misread
            ax.set_xticks([])
            ax.set_yticks([])
            ax.text(0.5, 0.5, "no finite value (- in the table):\n" + "\n".join(gaps),
                    transform=ax.transAxes, fontsize=8, ha="center", va="center",
                    color="0.3")  # fmt: skip
            continue
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(grid, [str(int(v)) for v in grid])
        ax.xaxis.set_minor_locator(NullLocator())
        bottom, top = ax.get_ylim()  # a narrow panel (under a decade) gets more labels
        subs = (1.0, 2.0, 5.0) if top / bottom >= 8 else (1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 7.0)
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=subs))
        ax.yaxis.set_major_formatter(FuncFormatter(_tick_label))
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.tick_params(axis="both", labelsize=8)
        ax.set_xlabel("number of frequencies m", fontsize=8)
        ax.set_ylabel(metric, fontsize=8)
        ax.grid(True, which="major", alpha=0.3)
        if gaps:  # the "-" cells of the table: no finite value to plot
            ax.text(0.02, 0.02, "no finite value (- in the table):\n" + "\n".join(gaps),
                    transform=ax.transAxes, fontsize=7, va="bottom", color="0.3")  # fmt: skip
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_visible(False)
    level = summary["spec"]["level"]
    fig.suptitle(
        f"{metric}: mean over {summary['spec']['replications']} replications, band = its "
        f"{level:.0%} interval (log scale)", fontsize=10,
    )  # fmt: skip
    labels = sorted(legend, key=lambda k: order[k])
    fig.legend([legend[k] for k in labels], labels, loc="outside lower center",
               ncol=min(8, len(legend)), fontsize=8, frameon=False)  # fmt: skip
    return fig


def write_outputs(run: StudyRun, out: str | Path) -> dict[str, Any]:
    """Write ``summary.json`` and one figure per metric next to ``results.csv``, atomically.

    The first metric's figure is ``convergence.png``, each other metric's
    ``convergence_<metric>.png`` (:func:`figure_name`).

    A failed write leaves the previous file in place and raises
    :class:`~kernelapprox.errors.EnvironmentFailure` (``results.csv`` is complete by then).
    """
    out = Path(out)
    summary = summarize(run)
    metrics = summary["spec"]["metrics"]
    try:
        atomic_write(out / "summary.json", to_json(summary) + "\n")
        for metric in metrics:  # one figure per metric
            plot_convergence(summary, out / figure_name(metric, metrics), metric)
    except OSError as exc:
        raise EnvironmentFailure(
            f"cannot write the summary to {str(out)!r}: {exc.strerror or exc}; results.csv is "
            "complete and kept; fix this and rerun with --resume to write the summary"
        ) from None
    return summary
