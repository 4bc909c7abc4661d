"""Invariant-subspace theorem and compressed-trajectory equivalence (notes §1.7, tests 1-4)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from kernelapprox.dynamics import (
    DeepFactorization,
    FullObservation,
    MaskedObservation,
    compress,
    exact_count_mask,
    first_factor_gradient,
    largest_principal_angle,
    low_rank_target,
    rho_trajectory,
    verify_invariant_subspace,
    whitened_regression,
)

D, R, L = 30, 3, 3


@pytest.fixture(scope="module", params=[1.0, 1e-2], ids=["eps=1", "eps=1e-2"])
def gd_run(request):
    return verify_invariant_subspace(
        dim=D, rank=R, depth=L, eps=request.param, lr=0.3, steps=500, record_every=10, seed=1
    )


def test_invariance_of_the_complement(gd_run):
    # at least d-2r singular values of every W_l(t) equal rho(t) to 1e-10 ...
    assert gd_run["min_invariant_count"] >= D - 2 * R
    assert gd_run["invariance_error"] < 1e-10
    # ... and W_l(t) maps U_{l,2} to rho(t) U_{l+1,2}
    assert gd_run["complement_residual"] < 1e-10
    assert gd_run["leakage"] < 1e-10
    assert gd_run["largest_complement_angle"] < 1e-10


def test_subspace_identity(gd_run):
    # span(V_11) from the first gradient equals span(V_phi, O_{L:1}^T U_phi)
    assert gd_run["subspace_cosine"] > 1 - 1e-10


def test_trajectory_equivalence_including_rho_L_term(gd_run):
    assert gd_run["trajectory_gap"] < 1e-10
    # without the rho^L U_perp V_perp^T term the gap is exactly rho^L sqrt(d-2r) / ||E2E||
    assert gd_run["trajectory_gap_without_complement"] == pytest.approx(
        gd_run["complement_gap_predicted"], rel=1e-6
    )
    assert gd_run["trajectory_gap_without_complement"] > 1e3 * gd_run["trajectory_gap"]
    # the run actually fitted something: the top block moved
    assert gd_run["final_relative_fit"] < 0.5


def test_rho_final_follows_recursion(gd_run):
    # an independent loop of rho(t+1) = rho(t) (1 - lr rho(t)^(2(L-1))) (sum loss, c = 1, no decay)
    rho = gd_run["eps"]
    for _ in range(500):
        rho = rho * (1.0 - 0.3 * rho ** (2 * (L - 1)))
    assert gd_run["rho_final"] == pytest.approx(rho, rel=1e-12)
    assert rho_trajectory(eps=gd_run["eps"], lr=0.3, depth=L, steps=500)[-1] == pytest.approx(
        rho, rel=1e-12
    )


@pytest.mark.parametrize(
    "options",
    [
        {"weight_decay": 1e-2, "eps": 0.5},
        {"optimizer": "momentum", "lr": 0.05},
        {"loss": "whitened"},
        {"reduction": "mean", "lr": 0.3 * D * D},
    ],
    ids=["weight-decay", "momentum", "whitened", "mean-loss"],
)
def test_theorem_holds_for_variants(options):
    kw = {"dim": D, "rank": R, "eps": 1e-2, "lr": 0.3, "steps": 300, "seed": 2}
    kw.update(options)
    out = verify_invariant_subspace(**kw, negative_controls=False)
    assert out["invariance_error"] < 1e-10
    assert out["complement_residual"] < 1e-10
    assert out["trajectory_gap"] < 1e-10
    assert out["rho_final"] < kw["eps"]


def test_negative_controls_break_invariance(gd_run):
    # Adam is not rotation-equivariant: the complement leaks
    assert gd_run["adam_leakage"] > 1e-2
    # masked loss: invariance is only approximate, yet the bulk stays near eps
    assert gd_run["masked_leakage"] > 1e-8
    if gd_run["eps"] < 1:
        assert 0.5 <= gd_run["masked_bulk_ratio_min"] <= gd_run["masked_bulk_ratio_max"] <= 2.0


def test_gradient_matches_closed_form():
    # grad_{W_l} f = W_{L:l+1}^T (W_{L:1} - Phi) W_{l-1:1}^T  (notes §1.1)
    model = DeepFactorization(7, depth=4, eps=0.7, seed=3)
    phi = low_rank_target(7, 2, seed=4)
    loss = FullObservation(phi)(model())
    grads = torch.autograd.grad(loss, list(model.factors))
    ws = [f.detach() for f in model.factors]
    residual = model().detach() - phi
    eye = torch.eye(7, dtype=torch.float64)
    for l in range(4):
        above = eye
        for w in ws[l + 1 :]:
            above = w @ above
        below = eye
        for w in ws[:l]:
            below = w @ below
        torch.testing.assert_close(grads[l], above.T @ residual @ below.T, rtol=1e-12, atol=1e-14)


def test_first_gradient_closed_form():
    # G = eps^{L-1} O_{L:2}^T (eps^L O_{L:1} - Phi)  (notes §1.3 step 1)
    eps = 0.3
    model = DeepFactorization(8, depth=3, eps=eps, seed=5)
    phi = low_rank_target(8, 2, seed=6)
    o = [f.detach() / eps for f in model.factors]
    o_l2 = o[2] @ o[1]
    expected = eps**2 * o_l2.T @ (eps**3 * o_l2 @ o[0] - phi)
    torch.testing.assert_close(
        first_factor_gradient(model, FullObservation(phi)), expected, rtol=1e-12, atol=1e-15
    )


def test_compression_uses_side_by_side_bases_not_stacked_svd():
    # With a masked (noisy, full-rank) gradient, span(V_11) must contain both V_g and
    # W_1^T U_g / eps exactly; the stacked-SVD shortcut [G; G^T W_1] does not (notes §1.3).
    d, r, eps = 40, 3, 1e-3
    phi = low_rank_target(d, r, seed=7, normalize=False)
    objective = MaskedObservation(phi, exact_count_mask(d, d, 480, seed=8))
    model = DeepFactorization(d, depth=3, eps=eps, seed=9)
    grad = first_factor_gradient(model, objective)
    small = compress(copy.deepcopy(model), objective, rank=r)
    u, _, vh = torch.linalg.svd(grad)
    w1 = model.factors[0].detach()
    wanted = torch.cat([vh[:r].T, w1.T @ u[:, :r] / eps], dim=1)
    assert largest_principal_angle(wanted, small.right) < 1e-10
    stacked = torch.cat([grad, grad.T @ w1], dim=0)
    shortcut = torch.linalg.svd(stacked)[2][: 2 * r].T
    assert largest_principal_angle(wanted, shortcut) > 1e-3
    # U_{L,1} = O_{L:1} V_{1,1} is orthonormal
    gram = small.left.detach().T @ small.left.detach()
    torch.testing.assert_close(gram, torch.eye(2 * r, dtype=torch.float64), atol=1e-12, rtol=0)


def test_whitened_regression_has_full_observation_gradient():
    phi = low_rank_target(6, 2, seed=10)
    problem = whitened_regression(phi, n_samples=15, seed=11)
    w = torch.randn(6, 6, dtype=torch.float64, requires_grad=True)
    (g1,) = torch.autograd.grad(problem(w), [w])
    (g2,) = torch.autograd.grad(FullObservation(phi)(w), [w])
    torch.testing.assert_close(g1, g2, rtol=1e-12, atol=1e-13)


def test_verify_rejects_bad_input():
    with pytest.raises(ValueError, match="rank"):
        verify_invariant_subspace(dim=5, rank=3)
    with pytest.raises(ValueError, match="optimizer"):
        verify_invariant_subspace(optimizer="lbfgs")
    with pytest.raises(ValueError, match="depth"):
        verify_invariant_subspace(depth=1)


def test_seeded_runs_are_reproducible():
    a = verify_invariant_subspace(dim=10, rank=2, steps=20, seed=5, negative_controls=False)
    b = verify_invariant_subspace(dim=10, rank=2, steps=20, seed=5, negative_controls=False)
    assert a["final_relative_fit"] == b["final_relative_fit"]
    c = verify_invariant_subspace(dim=10, rank=2, steps=20, seed=6, negative_controls=False)
    assert not np.isclose(a["final_relative_fit"], c["final_relative_fit"], rtol=1e-12)
