"""Diagnostics: principal angles against scipy, the rho recursion against torch.optim."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch
from hypothesis import given
from hypothesis import strategies as st

from kernelapprox.dynamics import (
    DeepFactorization,
    FullObservation,
    complement_leakage,
    count_equal,
    invariant_value_error,
    largest_principal_angle,
    principal_angles,
    rho_trajectory,
    smallest_principal_angle,
    train,
)


@given(
    n=st.integers(2, 12),
    a=st.integers(1, 6),
    b=st.integers(1, 6),
    seed=st.integers(0, 2**32 - 1),
)
def test_principal_angles_match_scipy(n, a, b, seed):
    rng = np.random.default_rng(seed)
    a, b = min(a, n), min(b, n)
    x, y = rng.standard_normal((n, a)), rng.standard_normal((n, b))
    ours = principal_angles(x, y)
    ref = np.sort(scipy.linalg.subspace_angles(x, y))
    # when a + b > n the subspaces intersect: that many angles are exactly 0; scipy returns
    # them only to ~sqrt(machine eps) (1.5e-8), we keep them at rounding level
    forced = max(0, a + b - n)
    assert np.all(ours[:forced] < 1e-12) and np.all(ref[:forced] < 1e-7)
    np.testing.assert_allclose(ours[forced:], ref[forced:], atol=1e-12)
    assert largest_principal_angle(x, y) == pytest.approx(ref[-1], abs=1e-12)
    assert smallest_principal_angle(x, y) == pytest.approx(
        ref[0], abs=1e-12 if not forced else 1e-7
    )


def test_small_angles_keep_full_accuracy():
    # angles of 1e-9: arccos alone would return ~1e-8 noise; the sine branch is exact
    rng = np.random.default_rng(3)
    q, _ = np.linalg.qr(rng.standard_normal((10, 6)))
    x = q[:, :3]
    y = np.cos(1e-9) * x + np.sin(1e-9) * q[:, 3:6]
    np.testing.assert_allclose(principal_angles(x, y), [1e-9] * 3, rtol=1e-6)
    np.testing.assert_allclose(
        principal_angles(x, y), np.sort(scipy.linalg.subspace_angles(x, y)), rtol=1e-6
    )


def test_principal_angles_rejects_bad_shapes():
    with pytest.raises(ValueError, match="same number of rows"):
        principal_angles(np.ones((3, 1)), np.ones((4, 1)))
    with pytest.raises(ValueError, match="zero matrix"):
        principal_angles(np.zeros((3, 1)), np.ones((3, 1)))


@pytest.mark.parametrize(
    ("optimizer", "momentum", "weight_decay", "reduction"),
    [
        ("gd", 0.0, 0.0, "sum"),
        ("gd", 0.0, 1e-2, "sum"),
        ("momentum", 0.9, 1e-2, "sum"),
        ("gd", 0.0, 0.0, "mean"),
    ],
)
def test_rho_recursion_matches_torch_scalar_dynamics(optimizer, momentum, weight_decay, reduction):
    # The complement block evolves like a 1x1 factorization with target 0 (theorem proof):
    # sign(W_l(0)) W_l(t) must follow rho(t) for the same torch optimizer (momentum may
    # overshoot through 0, so the sign is kept).
    depth, eps, lr, steps = 3, 0.8, 0.2, 60
    model = DeepFactorization(1, depth=depth, eps=eps, seed=0)
    target = torch.zeros(1, 1, dtype=torch.float64)
    objective = FullObservation(target, reduction=reduction)
    signs = [float(torch.sign(f.detach())) for f in model.factors]
    seen = []
    train(
        model,
        objective,
        lr=lr,
        steps=steps,
        optimizer=optimizer,
        momentum=0.9,
        weight_decay=weight_decay,
        record_steps=range(steps + 1),
        recorder=lambda t, m, e: seen.append(
            [s * float(f.detach()) for s, f in zip(signs, m.factors, strict=True)]
        ),
    )
    rho = rho_trajectory(
        eps=eps,
        lr=lr,
        depth=depth,
        steps=steps,
        weight_decay=weight_decay,
        loss_scale=objective.scale,
        momentum=momentum,
    )
    np.testing.assert_allclose(np.asarray(seen), np.repeat(rho[:, None], depth, 1), rtol=1e-13)
    assert rho[-1] < rho[0]  # it actually moved


def test_rho_recursion_closed_form_one_step():
    rho = rho_trajectory(eps=0.5, lr=0.1, depth=2, steps=1, weight_decay=0.2)
    assert rho[1] == pytest.approx(0.5 * (1 - 0.1 * 0.2 - 0.1 * 0.5**2), rel=1e-15)


def test_invariant_value_error_uses_closest_values_not_smallest():
    # Notes §1.2 pitfall: a block singular value (0.080) below rho = 0.0986
    values = np.array([2.0, 0.5, 0.0986, 0.0986, 0.0986, 0.080])
    assert invariant_value_error(values, 0.0986, 3) == 0.0
    smallest = np.sort(values)[:3]
    assert np.max(np.abs(smallest - 0.0986)) > 0.01  # the wrong test would fail here
    assert count_equal(values, 0.0986, atol=1e-12) == 3
    assert invariant_value_error(values, 0.0986, 4) == pytest.approx(0.0186)


def test_complement_leakage_zero_for_isometry_and_positive_otherwise():
    rng = np.random.default_rng(0)
    q1 = torch.as_tensor(np.linalg.qr(rng.standard_normal((6, 6)))[0])
    q2 = torch.as_tensor(np.linalg.qr(rng.standard_normal((6, 6)))[0])
    w = 0.3 * q2 @ q1.T
    leak, coef = complement_leakage(w, q1[:, 2:], q2[:, 2:])
    assert leak < 1e-14 and coef == pytest.approx(0.3)
    leak, _ = complement_leakage(w + 0.01 * q2[:, :1] @ q1[:, 2:3].T, q1[:, 2:], q2[:, 2:])
    assert leak > 1e-3


def test_rho_trajectory_validates():
    with pytest.raises(ValueError, match="eps"):
        rho_trajectory(eps=-1.0, lr=0.1, depth=3, steps=3)
    with pytest.raises(TypeError, match="depth"):
        rho_trajectory(eps=1.0, lr=0.1, depth=2.5, steps=3)


def test_rho_trajectory_takes_the_loss_factor_from_the_objective():
    import torch

    from kernelapprox.dynamics import FullObservation

    objective = FullObservation(torch.eye(4, dtype=torch.float64), reduction="mean")
    kw = dict(eps=0.5, lr=0.3, depth=3, steps=5)
    np.testing.assert_array_equal(
        rho_trajectory(**kw, objective=objective), rho_trajectory(**kw, loss_scale=1 / 16)
    )
    with pytest.raises(ValueError, match="contradicts"):
        rho_trajectory(**kw, objective=objective, loss_scale=1.0)
