"""Matrix completion: problem construction, runner, and the slow reference experiment."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kernelapprox.dynamics import (
    REFERENCE_SETTINGS,
    completion_problem,
    depth_width_sweep,
    run_completion,
)


def test_problem_has_exact_mask_count_and_rank():
    problem = completion_problem(50, 4, 0.3, seed=0)
    assert int(problem.mask.sum()) == int(np.floor(0.3 * 50 * 50))
    s = torch.linalg.svdvals(problem.target)
    assert float(s[4] / s[0]) < 1e-12 and float(s[3] / s[0]) > 1e-3
    # Gaussian d x d truncated: singular values at most about 2 sqrt(d)
    assert 0.5 * 2 * np.sqrt(50) < float(s[0]) < 1.5 * 2 * np.sqrt(50)


def test_recovery_errors_match_their_definitions():
    problem = completion_problem(20, 2, 0.5, seed=1)
    w = problem.target + 0.1 * torch.ones(20, 20, dtype=torch.float64)
    hidden = ~problem.mask
    rel = 0.1 * np.sqrt(float(hidden.sum())) / float(torch.linalg.norm(problem.target[hidden]))
    assert problem.relative_recovery_error(w) == pytest.approx(rel, rel=1e-12)
    assert problem.recovery_error(w) == pytest.approx(0.5 * 0.01 * float(hidden.sum()) / 400)
    # mean loss counts all d^2 entries (official convention)
    assert float(problem(w)) == pytest.approx(0.5 * 0.01 * float(problem.mask.sum()) / 400)


def test_small_run_reports_every_model():
    out = run_completion(
        dim=20, rank=2, fraction=0.5, lr=100.0, gamma=0.01, max_steps=400, check_every=20
    )
    assert set(out) == {"full", "compressed", "frozen"}
    for res in out.values():
        assert res["iterations"] <= 400
        assert res["iterations"] % 20 == 0 or not res["converged"]
        assert np.isfinite(res["relative_recovery_error"])
        assert res["curve"][0][0] == 0
    assert out["full"]["width"] == 20 and out["compressed"]["width"] == 4
    assert out["compressed"]["parameters"] < out["full"]["parameters"]


def test_divergence_is_reported_not_raised():
    out = run_completion(
        dim=12, rank=2, fraction=0.5, eps=0.5, lr=1e6, max_steps=50, models=("full",)
    )
    assert out["full"]["diverged"] and not out["full"]["converged"]


def test_run_completion_validates():
    with pytest.raises(ValueError, match="fraction"):
        run_completion(dim=10, rank=2, fraction=1.5)
    with pytest.raises(ValueError, match="models"):
        run_completion(dim=10, rank=2, models=("wide",))
    with pytest.raises(ValueError, match="rank_estimate"):
        run_completion(dim=10, rank=2, rank_estimate=6)


def test_depth_sweep_rows():
    rows = depth_width_sweep(
        dim=16, rank=2, widths=(4, 16), depths=(2, 3), max_steps=200, check_every=50
    )
    assert [(r["depth"], r["width"]) for r in rows] == [(2, 4), (2, 16), (3, 4), (3, 16)]
    assert all(r["iterations"] <= 200 for r in rows)


@pytest.mark.slow
def test_reference_completion_compressed_matches_full_and_gamma_zero_stalls():
    """Notes §1.5-1.7 test 5: d=100, r=5, p=0.3, L=3, eps=1e-3, mean-loss lr 300, gamma 0.01."""
    s = REFERENCE_SETTINGS["d100"]
    common = dict(
        dim=s.dim,
        rank=s.rank,
        fraction=s.fraction,
        depth=s.depth,
        eps=s.eps,
        lr=s.lr,
        tol=1e-3,
        check_every=10,
        seed=0,
    )
    out = run_completion(**common, gamma=s.gamma, max_steps=20000, models=("full", "compressed"))
    full, small = out["full"], out["compressed"]
    assert full["converged"] and full["relative_recovery_error"] < 1e-3
    assert small["converged"] and small["relative_recovery_error"] < 1e-3
    assert small["iterations"] <= 1.5 * full["iterations"]
    frozen = run_completion(
        **common, gamma=s.gamma, max_steps=int(1.5 * full["iterations"]), models=("frozen",)
    )["frozen"]
    assert not frozen["converged"]
    assert frozen["relative_recovery_error"] > 0.3


def test_completion_setting_uses_references_and_a_step_rule_close_to_them():
    from kernelapprox.dynamics.completion import completion_setting, scaled_step

    for name, ref in REFERENCE_SETTINGS.items():
        assert completion_setting(ref.dim) is ref, name
    # the rule 0.03 (100/d)^(2/3) d^2, exactly, anchored at the d=100 reference; the d=200 and
    # d=1000 references are independently tuned steps (the rule gives 0.945x and 1.29x of them,
    # not asserted: that runs with the rule's step converge is what the run_completion tests check)
    assert scaled_step(100) == REFERENCE_SETTINGS["d100"].lr
    for d in (50, 200, 500, 1000):
        assert scaled_step(d) == pytest.approx(0.03 * (100 / d) ** (2 / 3) * d**2, rel=1e-15)
    s = completion_setting(500)
    assert (s.dim, s.rank, s.fraction, s.gamma) == (500, 5, 0.2, 0.01)
    assert s.lr == pytest.approx(scaled_step(500))
    with pytest.raises(ValueError, match="dim"):
        completion_setting(1)
