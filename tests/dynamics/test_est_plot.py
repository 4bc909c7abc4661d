"""The EST figure (``kernelapprox dynamics est --out``, drawn by ``dynamics.plots.plot_est``):
its title states the model's and the run's sizes, and each stage of the schedule is named
with its keep rates."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt

from kernelapprox.dynamics.plots import est_title, plot_est


def _result(seeds: int) -> dict:
    """A result shaped like compare_over_seeds' output, with made-up curves."""
    history = [
        {"step": s, "val_loss_full": 5 - s / 30, "val_loss_est": 5 - s / 40,
         "flops_full": 1e9 * s, "flops_est": 0.8e9 * s}
        for s in (0, 10, 20, 30, 40)
    ]  # fmt: skip
    run = {"history": history}
    return {
        "config": {"n_layers": 4, "d_model": 32, "n_heads": 2, "d_mlp": 128, "context": 16},
        "batch_size": 8, "steps": 40, "seeds": seeds, "flops_saving": 0.25, "wall_saving": 0.1,
        "schedule": {"boundaries": [10, 25, 40],
                     "rates": [[0.5, 0.5, 0.5], [0.5, 0.5, 1.0], [1.0, 1.0, 1.0]]},
        "runs": [run] * seeds,
    }  # fmt: skip


def test_est_figure_names_the_stages_and_states_the_sizes(tmp_path: Path, saved_figures) -> None:
    figures = saved_figures
    path = plot_est(_result(seeds=2), tmp_path)
    assert path == tmp_path / "est.png" and path.stat().st_size > 10_000
    title = figures[0]._suptitle.get_text()
    assert title == est_title(_result(seeds=2))
    assert "4 layers, d = 32, 2 heads, MLP 128, T = 16; batch 8, 40 steps, 2 seeds" in title
    assert "block FLOPs saving 25.0 %" in title
    left = figures[0].axes[0]
    legends = [a for a in left.get_children() if isinstance(a, plt.matplotlib.legend.Legend)]
    texts = {t.get_text() for legend in legends for t in legend.get_texts()}
    assert texts == {
        "full (2 seeds)",
        "EST (2 seeds)",
        "stage 1, steps 0–10: (.5, .5, .5)",
        "stage 2, steps 10–25: (.5, .5, 1)",
        "stage 3, steps 25–40: full model",
    }
    plt.close("all")


def test_est_title_one_seed() -> None:
    assert "40 steps, 1 seed\n" in est_title(_result(seeds=1))
