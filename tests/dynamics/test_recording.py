"""TrajectoryRecorder records what train() passes it, checked against scipy."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

from kernelapprox.dynamics import (
    DeepFactorization,
    FullObservation,
    TrajectoryRecorder,
    invariant_bases,
    low_rank_target,
    rho_trajectory,
    train,
)


def test_recorder_matches_scipy_and_the_theorem():
    d, r, L, eps, lr, steps = 12, 2, 3, 1e-2, 0.5, 30
    target = low_rank_target(d, r, seed=0)
    objective = FullObservation(target, reduction="sum")
    model = DeepFactorization(d, depth=L, eps=eps, seed=1)
    bases = invariant_bases(model, target, r)
    u_phi = torch.linalg.svd(target)[0][:, :r]
    rec = TrajectoryRecorder(bases, 2 * r, u_phi, keep_factors=True)
    record = [0, 10, 30]
    train(model, objective, lr=lr, steps=steps, record_steps=record, recorder=rec)

    assert rec.steps == record
    assert rec.spectra_array().shape == (3, L, d)
    last = [f.numpy() for f in rec.factors[-1]]
    for l, w in enumerate(last):
        np.testing.assert_allclose(rec.spectra[-1][l], scipy.linalg.svdvals(w), rtol=1e-12)
        assert float(torch.linalg.norm(rec.factors[-1][l] - model.factors[l].detach())) == 0.0
    torch.testing.assert_close(rec.end_to_end[-1], model().detach())
    # angles against scipy's (subspace_angles returns them largest first)
    learned = np.linalg.svd(rec.end_to_end[-1].numpy())[0][:, :r]
    np.testing.assert_allclose(
        rec.target_angles[-1],
        np.sort(scipy.linalg.subspace_angles(learned, u_phi.numpy())),
        atol=1e-10,
    )
    # the theorem: no leakage, complement mapped onto the next one by rho(t)
    rho = rho_trajectory(eps=eps, lr=lr, depth=L, steps=steps, loss_scale=objective.scale)
    assert max(max(x) for x in rec.leakage) < 1e-10
    for i, t in enumerate(record):
        np.testing.assert_allclose(rec.coef[i], rho[t], rtol=1e-9)
    assert max(max(x) for x in rec.complement_angle) < 1e-6


def test_recorder_without_bases_keeps_spectra_only():
    target = low_rank_target(8, 1, seed=0)
    rec = TrajectoryRecorder()
    train(
        DeepFactorization(8, depth=2, eps=1e-2, seed=0),
        FullObservation(target),
        lr=0.1,
        steps=5,
        record_steps=[0, 5],
        recorder=rec,
    )
    assert rec.steps == [0, 5] and rec.leakage == [] and rec.target_angles == []
    assert rec.spectra_array().shape == (2, 2, 8)
    with pytest.raises(ValueError, match="bases and n_block"):
        TrajectoryRecorder(n_block=2)
