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
