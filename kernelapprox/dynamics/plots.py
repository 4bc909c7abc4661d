"""Figures of the dynamics experiments (matplotlib, Agg backend, written to files only).

Each model (``full``, ``compressed``, ``frozen``) has one colour and marker in every figure
(:data:`kernelapprox._style.IMPLEMENTATION_STYLE`), and each title states the setting (width
``d``, rank ``r``, depth ``L``, initial scale ``eps``) the figure was made with.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from kernelapprox._style import GUIDE_COLOR, implementation_style

#: The colour of what the theorem predicts (invariant values, gaps), no implementation's.
_THEOREM_COLOUR = "#a6761d"
#: Floor under quantities that are exactly 0 on a log axis (below every plotted value).
_TINY = 1e-18


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def distinct_labels(values: np.ndarray, max_digits: int = 16) -> list[str]:
    """``values`` (at least two, distinct) printed alike with the fewest digits that tell
    them apart: each label differs from its value by at most 1 % of the smallest gap between
    two of the values.

    Fixed-point with a common number of decimals (``["2.40", "2.45", "2.50"]``,
    ``["0.04358512", "0.04358514"]``) when every value lies in ``[1e-3, 1e4)``, else
    scientific with a common number of mantissa digits (``["1.2e-05", "1.3e-05"]``); at most
    ``max_digits`` digits.
    """
    values = np.asarray(values, dtype=float)
    if values.ndim != 1 or values.size < 2 or not np.all(np.isfinite(values)):
        raise ValueError(f"values must be at least two finite numbers, got {values!r}")
    tolerance = 0.01 * np.min(np.diff(np.sort(values)))
    if tolerance == 0:
        raise ValueError(f"values must be distinct, got {values!r}")
    magnitudes = np.abs(values[values != 0])
    fixed = magnitudes.size == 0 or (magnitudes.min() >= 1e-3 and magnitudes.max() < 1e4)
    code = "f" if fixed else "e"
    labels: list[str] = []
    for digits in range(0 if fixed else 1, max_digits + 1):
        labels = [f"{v:.{digits}{code}}" for v in values]
        if np.max(np.abs(np.array([float(x) for x in labels]) - values)) <= tolerance:
            break
    return labels


def readable_log_yaxis(ax: Any, ticks: int = 5) -> None:
    """Give a log y axis labels that can be read however little its range spans.

    Matplotlib labels a log axis at powers of 10 and, below one decade, at some of the
    minor ticks ``k * 10^n`` with a few digits: on a curve that barely moves (a loss
    that changes in its 6th digit) every label reads the same or none is in view. When the
    view spans less than one decade, the ticks become about ``ticks`` evenly spaced round
    values (:class:`matplotlib.ticker.MaxNLocator`) labelled by :func:`distinct_labels`,
    with no minor ticks; a wider axis keeps matplotlib's log ticks. Call it after plotting.
    """
    from matplotlib.ticker import FixedFormatter, FixedLocator, MaxNLocator, NullLocator

    if ax.get_yscale() != "log":
        raise ValueError(f"ax must have a log y axis, got yscale={ax.get_yscale()!r}")
    if not isinstance(ticks, int) or isinstance(ticks, bool) or ticks < 2:
        raise ValueError(f"ticks must be an integer >= 2, got {ticks!r}")
    ax.autoscale_view()
    low, high = sorted(ax.get_ylim())
    if not (np.isfinite(low) and np.isfinite(high)) or low <= 0 or np.log10(high / low) >= 1:
        return
    locs = MaxNLocator(nbins=ticks, steps=[1, 2, 2.5, 5, 10]).tick_values(low, high)
    locs = locs[(locs >= low) & (locs <= high) & (locs > 0)]
    if len(locs) < 2:  # a range too narrow for float64 to hold two round values: its ends
        locs = np.array([low, high])
    ax.yaxis.set_major_locator(FixedLocator(locs))
    ax.yaxis.set_major_formatter(FixedFormatter(distinct_labels(locs)))
    ax.yaxis.set_minor_locator(NullLocator())
    ax.set_ylim(low, high)


def setting_title(setting: dict[str, Any]) -> str:
    """``"d = 30, r = 3, L = 3, eps = 0.01, ..."`` from the keys of ``setting`` that are set
    (``dim``, ``rank``, ``depth``, ``eps``, ``fraction``, ``lr``, ``steps``, ``optimizer``)."""
    names = (("dim", "d"), ("rank", "r"), ("depth", "L"), ("eps", "ε"), ("fraction", "p"),
             ("lr", "lr"), ("steps", "steps"), ("optimizer", ""))  # fmt: skip
    parts = []
    for key, name in names:
        value = setting.get(key)
        if value is None:
            continue
        text = f"{value:g}" if isinstance(value, float) else str(value)
        parts.append(f"{name} = {text}" if name else text)
    return ", ".join(parts)


def invariant_values(spectra: np.ndarray, rho: np.ndarray, count: int) -> np.ndarray:
    """The ``count`` singular values closest to ``rho(t)``, per step and layer.

    ``spectra`` has shape ``(n_steps, L, d)``; the result ``(n_steps, L, count)``. The
    theorem (Yaras et al., ICML 2024, Thm. 1) says that ``d - 2r`` singular values of every
    layer stay equal to ``rho(t)`` for all ``t``: these are the ones it speaks of.
    """
    dev = np.abs(spectra - rho[:, None, None])
    order = np.argsort(dev, axis=2)[:, :, :count]
    return np.take_along_axis(spectra, order, axis=2)


def plot_theorem(result: dict[str, Any], out: Path) -> list[Path]:
    """Three figures of the invariant-subspace theorem, written into ``out``.

    * ``singular_values.png``: per layer, the singular values of ``W_l(t)`` (the ``d - 2r``
      invariant ones as markers over the thin ``rho(t)`` line, the ``2r`` others as lines),
      and below, the largest relative distance ``|sigma_i - rho| / rho`` of the invariant ones;
    * ``principal_angles.png``: the principal angles the theorem keeps at 0 and the ones that
      move;
    * ``loss.png``: the loss of the full-width and the compressed (width ``2r``) model, and
      below, the gap between them: the relative loss difference and the relative difference
      of the end-to-end matrices once the predicted complement ``rho^L U_perp V_perp^T`` is
      added to the compressed one.

    ``result`` is :func:`~kernelapprox.dynamics.verify_invariant_subspace` output with
    ``keep_history=True``: its ``history`` and its setting (``dim``, ``rank``, ``depth``,
    ``eps``, ...), which the titles state.
    """
    if "history" not in result or "rank" not in result:
        raise ValueError("result must hold 'history' (keep_history=True) and 'rank'")
    plt = _pyplot()
    hist = result["history"]
    steps = np.asarray(hist["steps"])
    spectra = np.asarray(hist["spectra"])  # (n_steps, L, d)
    rho = np.asarray(hist["rho"], dtype=float)
    n_steps, depth, dim = spectra.shape
    count = dim - 2 * int(result["rank"])
    title = setting_title({"dim": dim, "depth": depth, **result})
    paths = []

    fig, axes = plt.subplots(2, depth, figsize=(4.2 * depth, 6.4), squeeze=False,
                             sharex=True, height_ratios=(2, 1))  # fmt: skip
    have_rho = bool(np.all(np.isfinite(rho)))
    invariant = invariant_values(spectra, rho, count) if have_rho and count > 0 else None
    every = max(1, n_steps // 25)  # markers at about 25 steps, so that the lines show through
    full_colour = implementation_style("full")[0]
    for l in range(depth):
        ax = axes[0, l]
        moving = spectra[:, l, :]
        if invariant is not None:
            dev = np.abs(spectra[:, l, :] - rho[:, None])
            keep = np.argsort(dev, axis=1)[:, count:]
            moving = np.take_along_axis(spectra[:, l, :], keep, axis=1)
            ax.semilogy(steps, rho, color="k", lw=0.8, zorder=2, label=r"$\rho(t)$")
            ax.semilogy(steps[::every], invariant[::every, l, :], ls="none", marker="o",
                        ms=3.5, mfc="none", color=_THEOREM_COLOUR, zorder=3)  # fmt: skip
            ax.lines[-1].set_label(f"the {count} = d − 2r invariant values")
        ax.semilogy(steps, moving, color=full_colour, lw=1.0, zorder=1)
        ax.lines[-1].set_label(f"the other {moving.shape[1]}")
        ax.set_title(f"singular values of $W_{l + 1}(t)$")
        ax.set_ylabel("singular value")
        readable_log_yaxis(ax)
        ax.legend(fontsize=7, loc="upper left")
        low = axes[1, l]
        if invariant is not None:
            rel = np.max(np.abs(invariant[:, l, :] - rho[:, None]), axis=1) / rho
            low.semilogy(steps, rel + _TINY, color=_THEOREM_COLOUR)
            low.axhline(np.finfo(float).eps, color=GUIDE_COLOR, ls=":", lw=1)
            low.annotate("float64 eps", (steps[0], np.finfo(float).eps), fontsize=7,
                         color="0.4", va="bottom")  # fmt: skip
            readable_log_yaxis(low)
        low.set_ylabel(r"max $|\sigma_i - \rho| / \rho$")
        low.set_xlabel("step")
        low.set_title(f"distance of the {count} invariant values from $\\rho(t)$", fontsize=9)
    fig.suptitle(f"invariant singular values of each layer: {title}", fontsize=10)
    fig.tight_layout()
    paths.append(out / "singular_values.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4.2))
    comp = np.max(np.asarray(hist["complement_angle"]), axis=1)
    block = np.max(np.asarray(hist["block_angle"]), axis=1)
    ax.semilogy(steps, comp + _TINY, label=r"largest angle $W_lU_{l,2}$ vs $t=0$ (invariant)")
    ax.semilogy(steps, block + _TINY, label=r"largest angle $W_lU_{l,1}$ vs $t=0$")
    ax.semilogy(
        steps,
        np.asarray(hist["target_angles_largest"]) + _TINY,
        label=r"largest angle top-$r$ of $W_{L:1}$ vs $U_\Phi$",
    )
    ax.semilogy(
        steps,
        np.asarray(hist["target_angles_smallest"]) + _TINY,
        label=r"smallest angle top-$r$ of $W_{L:1}$ vs $U_\Phi$",
    )
    ax.set_xlabel("step")
    ax.set_ylabel("angle (radians)")
    readable_log_yaxis(ax)
    ax.set_title(f"principal angles: {title}", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    paths.append(out / "principal_angles.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    fig, (top, low) = plt.subplots(2, 1, figsize=(7, 6.2), sharex=True, height_ratios=(3, 2))
    full = np.asarray(hist["loss_full"], dtype=float)
    small = np.asarray(hist["loss_compressed"], dtype=float)
    for name, loss, ls, label in (("full", full, "-", "full width d"),
                                  ("compressed", small, "--", "compressed, width 2r")):  # fmt: skip
        colour, marker = implementation_style(name)
        marks = (0 if name == "full" else every // 2, every)  # alternate the two markers
        top.semilogy(steps, loss, color=colour, ls=ls, marker=marker, ms=3, markevery=marks,
                     label=label)  # fmt: skip
    top.set_ylabel("loss")
    readable_log_yaxis(top)
    top.set_title(f"loss, full vs compressed: {title}", fontsize=9)
    top.legend(fontsize=8)
    low.semilogy(steps, np.abs(full - small) / np.abs(full) + _TINY, color="0.25",
                 label="relative loss gap |loss full − loss compressed| / loss full")  # fmt: skip
    if "gap" in hist:
        label = r"end-to-end gap with the predicted complement $\rho^L U_\perp V_\perp^T$"
        low.semilogy(steps, np.asarray(hist["gap"]) + _TINY, color=_THEOREM_COLOUR, label=label)
    low.axhline(np.finfo(float).eps, color=GUIDE_COLOR, ls=":", lw=1)
    low.set_xlabel("step")
    low.set_ylabel("relative gap")
    readable_log_yaxis(low)
    low.legend(fontsize=7)
    fig.tight_layout()
    paths.append(out / "loss.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
    return paths


def plot_completion(
    results: dict[str, dict[str, Any]], out: Path, setting: dict[str, Any] | None = None
) -> list[Path]:
    """Training loss and relative unobserved error against steps for each model; the title
    states ``setting`` (the options of the run)."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.9))
    dashes = {"full": "-", "compressed": "--", "frozen": ":"}  # frozen may lie on compressed
    drawn = 0
    for name, res in results.items():
        curve = np.asarray(res["curve"], dtype=float)
        if curve.size == 0:
            continue
        colour, marker = implementation_style(name)
        style = dict(color=colour, ls=dashes.get(name, "-"), marker=marker, ms=3.5,
                     markevery=(drawn, max(1, len(curve) // 12)), label=name)  # fmt: skip
        axes[0].semilogy(curve[:, 0], curve[:, 2], **style)
        axes[1].semilogy(curve[:, 0], curve[:, 1], **style)
        drawn += 1
    axes[0].set(title="training loss", ylabel="loss")
    axes[1].set(title="relative error on unobserved entries", ylabel="relative error")
    for ax in axes:
        ax.set_xlabel("step")
        if drawn:
            readable_log_yaxis(ax)
            ax.legend()
    if setting:
        fig.suptitle(f"deep matrix completion: {setting_title(setting)}", fontsize=10)
    fig.tight_layout()
    path = out / "loss.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]


def plot_depth(
    rows: list[dict[str, Any]], out: Path, setting: dict[str, Any] | None = None
) -> list[Path]:
    """Recovery error and iterations against width, one line per depth; the title states
    ``setting``."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.9))
    for depth in sorted({r["depth"] for r in rows}):
        sel = [r for r in rows if r["depth"] == depth]
        widths = [r["width"] for r in sel]
        axes[0].plot(widths, [r["recovery_error"] for r in sel], "o-", label=f"L={depth}")
        axes[1].plot(widths, [r["iterations"] for r in sel], "o-", label=f"L={depth}")
    axes[0].set(title="recovery error (1/2 mean over unobserved)", ylabel="recovery error")
    axes[1].set(title="iterations", ylabel="iterations")
    for ax in axes:
        ax.set_xlabel("width")
        ax.legend()
    if setting:
        shown = {k: v for k, v in setting.items() if k not in ("depth", "depths")}
        fig.suptitle(f"depth 2 vs 3, width sweep: {setting_title(shown)}", fontsize=10)
    fig.tight_layout()
    path = out / "depth_sweep.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]


def _rates_text(rates: Any) -> str:
    """``"(.5, .5, 1)"``: a stage's keep rates ``(p_H, p_M, p_L)`` without leading zeros."""
    return "(" + ", ".join(f"{float(p):g}".removeprefix("0") for p in rates) + ")"


def est_title(result: dict[str, Any]) -> str:
    """The EST figure's title: the model's and the run's sizes, the replications and the
    savings, from ``result`` (:func:`~kernelapprox.dynamics.est.compare_over_seeds`)."""
    cfg = result["config"]
    seeds = int(result.get("seeds", 1))
    return (
        f"EST vs full: {cfg['n_layers']} layers, d = {cfg['d_model']}, {cfg['n_heads']} heads, "
        f"MLP {cfg['d_mlp']}, T = {cfg['context']}; batch {result['batch_size']}, "
        f"{result['steps']} steps, {seeds} seed{'s' if seeds != 1 else ''}\n"
        f"block FLOPs saving {100 * result['flops_saving']:.1f} %, "
        f"wall saving {100 * result['wall_saving']:.1f} %"
    )


def plot_est(result: dict[str, Any], out: Path) -> Path:
    """``out/est.png``: validation loss of both runs against steps and against FLOPs.

    One line per run and replication; in the left panel each stage of the schedule is a
    shaded band named by its keep rates ``(p_H, p_M, p_L)`` in a legend of its own, the last
    (every rate 1: the full model) left white. The title states the model's and the run's
    sizes (:func:`est_title`).
    """
    from kernelapprox._io import atomic_path

    plt = _pyplot()
    out.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6))
    runs = result.get("runs", [result])
    names = {"full": "full", "est": "EST"}
    for i, replication in enumerate(runs):
        hist = replication["history"]
        for run in ("full", "est"):
            color, marker = implementation_style(run)  # the same colour in every figure
            loss = [h[f"val_loss_{run}"] for h in hist]
            label = f"{names[run]} ({len(runs)} seeds)" if len(runs) > 1 else names[run]
            style = dict(color=color, marker=marker, ms=3.5, label=label if i == 0 else None)
            axes[0].plot([h["step"] for h in hist], loss, **style)
            axes[1].plot([h[f"flops_{run}"] / 1e9 for h in hist], loss, **style)
    schedule = result["schedule"]
    starts = [0, *schedule["boundaries"][:-1]]
    shades = ("0.80", "0.90", "0.95")
    bands = []
    for k, (start, stop, rates) in enumerate(
        zip(starts, schedule["boundaries"], schedule["rates"], strict=True)
    ):
        full_model = all(float(p) == 1.0 for p in rates)
        text = f"stage {k + 1}, steps {start}–{stop}: " + (
            "full model" if full_model else _rates_text(rates)
        )
        colour = "white" if full_model else shades[min(k, len(shades) - 1)]
        bands.append(axes[0].axvspan(start, stop, color=colour, ec="0.6", lw=0.5, zorder=0,
                                     label=text))  # fmt: skip
    curves = axes[0].legend(handles=axes[0].lines[:2], loc="upper right")
    axes[0].add_artist(curves)
    axes[0].legend(handles=bands, loc="center right", fontsize=8,
                   title="stages, keep rates $(p_H, p_M, p_L)$", title_fontsize=8)  # fmt: skip
    axes[0].set_xlim(0, schedule["boundaries"][-1])
    axes[0].set_xlabel("step")
    axes[1].set_xlabel("training compute with the LM head (GFLOP)")
    axes[1].legend(loc="upper right")
    for ax in axes:
        ax.set_ylabel("validation loss (nats/byte)")
    fig.suptitle(est_title(result), fontsize=10)
    fig.tight_layout()
    path = out / "est.png"
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
    return path
