"""Figures of the dynamics experiments (matplotlib, Agg backend, written to files only)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_theorem(result: dict[str, Any], out: Path) -> list[Path]:
    """Singular values of every layer with rho(t), principal angles, and loss full vs compressed.

    ``result`` is :func:`~kernelapprox.dynamics.verify_invariant_subspace` output with
    ``keep_history=True``.
    """
    plt = _pyplot()
    hist = result["history"]
    steps = np.asarray(hist["steps"])
    spectra = np.asarray(hist["spectra"])  # (n_steps, L, d)
    depth = spectra.shape[1]
    paths = []

    fig, axes = plt.subplots(1, depth, figsize=(4 * depth, 3.4), squeeze=False)
    for l in range(depth):
        ax = axes[0, l]
        ax.semilogy(steps, spectra[:, l, :], color="tab:blue", lw=0.8, alpha=0.7)
        if np.all(np.isfinite(hist["rho"])):
            ax.semilogy(steps, hist["rho"], "k--", lw=1.5, label=r"$\rho(t)$")
            ax.legend(loc="best")
        ax.set_title(f"singular values of $W_{l + 1}(t)$")
        ax.set_xlabel("step")
    fig.tight_layout()
    paths.append(out / "singular_values.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 3.6))
    tiny = 1e-18
    comp = np.max(np.asarray(hist["complement_angle"]), axis=1)
    block = np.max(np.asarray(hist["block_angle"]), axis=1)
    ax.semilogy(steps, comp + tiny, label=r"largest angle $W_lU_{l,2}$ vs $t=0$ (invariant)")
    ax.semilogy(steps, block + tiny, label=r"largest angle $W_lU_{l,1}$ vs $t=0$")
    ax.semilogy(
        steps,
        np.asarray(hist["target_angles_largest"]) + tiny,
        label=r"largest angle top-$r$ of $W_{L:1}$ vs $U_\Phi$",
    )
    ax.semilogy(
        steps,
        np.asarray(hist["target_angles_smallest"]) + tiny,
        label=r"smallest angle top-$r$ of $W_{L:1}$ vs $U_\Phi$",
    )
    ax.set_xlabel("step")
    ax.set_ylabel("radians")
    ax.legend(fontsize=7)
    fig.tight_layout()
    paths.append(out / "principal_angles.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.semilogy(steps, hist["loss_full"], label="full width")
    ax.semilogy(steps, hist["loss_compressed"], "--", label="compressed (2r)")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.legend()
    fig.tight_layout()
    paths.append(out / "loss.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
    return paths


def plot_completion(results: dict[str, dict[str, Any]], out: Path) -> list[Path]:
    """Training loss and relative unobserved error against steps for each model."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for name, res in results.items():
        curve = np.asarray(res["curve"])
        if curve.size == 0:
            continue
        axes[0].semilogy(curve[:, 0], curve[:, 2], label=name)
        axes[1].semilogy(curve[:, 0], curve[:, 1], label=name)
    axes[0].set_title("training loss")
    axes[1].set_title("relative error on unobserved entries")
    for ax in axes:
        ax.set_xlabel("step")
        ax.legend()
    fig.tight_layout()
    path = out / "loss.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]


def plot_depth(rows: list[dict[str, Any]], out: Path) -> list[Path]:
    """Recovery error and iterations against width, one line per depth."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for depth in sorted({r["depth"] for r in rows}):
        sel = [r for r in rows if r["depth"] == depth]
        widths = [r["width"] for r in sel]
        axes[0].plot(widths, [r["recovery_error"] for r in sel], "o-", label=f"L={depth}")
        axes[1].plot(widths, [r["iterations"] for r in sel], "o-", label=f"L={depth}")
    axes[0].set_title("recovery error (1/2 mean over unobserved)")
    axes[1].set_title("iterations")
    for ax in axes:
        ax.set_xlabel("width")
        ax.legend()
    fig.tight_layout()
    path = out / "depth_sweep.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]
