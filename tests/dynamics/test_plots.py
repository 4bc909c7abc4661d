"""The dynamics figures: their titles state the setting, the invariant values are the ones
closest to rho(t), and every figure is written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kernelapprox.dynamics.plots import invariant_values, plot_theorem, setting_title
from kernelapprox.dynamics.theorem import verify_invariant_subspace


def test_setting_title_states_d_r_l_eps() -> None:
    title = setting_title({"dim": 30, "rank": 3, "depth": 3, "eps": 0.01, "seed": 4})
    assert title == "d = 30, r = 3, L = 3, ε = 0.01"


def test_invariant_values_are_the_closest_to_rho() -> None:
    spectra = np.array([[[3.0, 0.5, 0.1, 0.52]], [[4.0, 0.7, 0.2, 0.69]]])  # (2 steps, 1, 4)
    rho = np.array([0.5, 0.7])
    picked = invariant_values(spectra, rho, 2)
    assert picked.shape == (2, 1, 2)
    np.testing.assert_array_equal(np.sort(picked, axis=2), [[[0.5, 0.52]], [[0.69, 0.7]]])


def test_theorem_figures_are_written(tmp_path: Path) -> None:
    result = verify_invariant_subspace(dim=8, rank=1, depth=2, eps=0.1, lr=0.1, steps=20,
                                       negative_controls=False, keep_history=True)  # fmt: skip
    paths = plot_theorem(result, tmp_path)
    names = ["singular_values.png", "principal_angles.png", "loss.png"]
    assert [p.name for p in paths] == names
    assert all(p.stat().st_size > 10_000 for p in paths)
    with pytest.raises(ValueError, match="rank"):
        plot_theorem({"history": result["history"]}, tmp_path)


def _visible_ytick_labels(ax) -> list[str]:
    """The non-empty y tick labels (major and minor) inside the axis' view."""
    low, high = sorted(ax.get_ylim())
    ticks = list(zip(ax.yaxis.get_majorticklocs(), ax.get_yticklabels(), strict=True))
    ticks += list(zip(ax.yaxis.get_minorticklocs(), ax.get_yticklabels(minor=True), strict=True))
    return [t.get_text() for loc, t in ticks if low <= loc <= high and t.get_text()]


@pytest.mark.parametrize(
    ("start", "stop"),
    [(0.0435851, 0.0435851 * (1 - 1e-7)), (2.46, 2.38), (1.0000000016, 1.0000000010)],
)
def test_log_axis_labels_stay_readable_when_the_curve_barely_moves(start, stop) -> None:
    # A curve spanning far less than a decade: matplotlib's log labels then read the same
    # ("4.35851 x 10^-2" at every tick) or none is in view; readable_log_yaxis makes them
    # round, evenly spaced and distinct, and each stands for the tick it labels.
    import matplotlib.pyplot as plt

    from kernelapprox.dynamics.plots import readable_log_yaxis

    fig, ax = plt.subplots()
    ax.semilogy(np.arange(30), np.linspace(start, stop, 30))
    readable_log_yaxis(ax)
    fig.canvas.draw()
    labels = _visible_ytick_labels(ax)
    plt.close(fig)
    assert len(labels) >= 3 and len(set(labels)) == len(labels), labels
    values = sorted(float(text) for text in labels)
    assert values[0] >= min(start, stop) * (1 - 1e-6) and values[-1] <= max(start, stop) * 1.1
    steps = np.diff(values)
    np.testing.assert_allclose(steps, steps[0], rtol=1e-3)  # evenly spaced (labels rounded)


def test_log_axis_over_decades_keeps_matplotlib_ticks() -> None:
    import matplotlib.pyplot as plt

    from kernelapprox.dynamics.plots import readable_log_yaxis

    fig, ax = plt.subplots()
    ax.semilogy(np.arange(30), np.logspace(0, -6, 30))
    readable_log_yaxis(ax)
    fig.canvas.draw()
    labels = _visible_ytick_labels(ax)
    plt.close(fig)
    assert "$\\mathdefault{10^{-3}}$" in labels
    with pytest.raises(ValueError, match="ax"):
        fig, linear = plt.subplots()
        readable_log_yaxis(linear)
    plt.close("all")


def test_distinct_labels() -> None:
    from kernelapprox.dynamics.plots import distinct_labels

    assert distinct_labels(np.array([2.4, 2.45, 2.5])) == ["2.40", "2.45", "2.50"]
    assert distinct_labels(np.array([0.5, 1.0])) == ["0.5", "1.0"]
    assert distinct_labels(np.array([1.2e-5, 1.3e-5])) == ["1.2e-05", "1.3e-05"]
    with pytest.raises(ValueError, match="values"):
        distinct_labels(np.array([1.0, 1.0]))


def test_completion_figure_labels_a_loss_that_barely_moves(tmp_path: Path, saved_figures) -> None:
    # The figure `kernelapprox dynamics completion --out` draws, from curves (step,
    # relative error, loss) that change in their 7th digit, as a short run's do.

    from kernelapprox.dynamics import plots

    steps = np.arange(0, 31, 10, dtype=float)
    loss = 0.0435851 * (1 - 1e-7 * steps)
    curve = np.stack([steps, 1 + 1e-10 * steps, loss], axis=1)
    figures = saved_figures
    paths = plots.plot_completion({"full": {"curve": curve}}, tmp_path, {"dim": 30})
    assert [p.name for p in paths] == ["loss.png"] and paths[0].is_file()
    for ax in figures[0].axes:
        labels = _visible_ytick_labels(ax)
        assert len(labels) >= 2 and len(set(labels)) == len(labels), labels
