r"""The invariant-subspace theorem of compressible dynamics, measured along a trajectory.

Yaras, Wang, Balzano, Qu, ICML 2024 (arXiv 2406.04112); form rebuilt and checked in notes
``lowrank_dynamics.md`` §1.2. For a rank-:math:`r` target :math:`\Phi = U_\Phi\Sigma V_\Phi^\top`,
full-width factors :math:`W_l(0) = \varepsilon O_l` and GD on :math:`\tfrac12 c\|W_{L:1}-\Phi\|^2`,
let :math:`U_1 = [U_{1,1}\,|\,U_{1,2}]` be orthogonal with
:math:`\operatorname{span} U_{1,1} = \operatorname{span}(V_\Phi) + \operatorname{span}(O_{L:1}^\top
U_\Phi)` and :math:`U_{l+1} = O_l U_l`. Then for all :math:`t`

.. math:: W_l(t) = U_{l+1}\begin{bmatrix}\widetilde W_l(t) & 0\\ 0 & \rho(t) I_{d-2r}\end{bmatrix}
          U_l^\top,

with :math:`\rho` from :func:`~kernelapprox.dynamics.diagnostics.rho_trajectory`.
:func:`verify_invariant_subspace` measures every consequence and two negative controls.
"""

from __future__ import annotations

import copy
import time
from typing import Any

import numpy as np
import torch

from kernelapprox._validation import (
    check_bool,
    check_choice,
    check_positive_float,
    check_positive_int,
)
from kernelapprox.dynamics._common import (
    DEFAULT_DTYPE,
    child_generators,
    complete_basis,
    torch_generator,
)
from kernelapprox.dynamics.compression import complement_term, compress
from kernelapprox.dynamics.diagnostics import (
    complement_leakage,
    complement_residual,
    count_equal,
    invariant_value_error,
    largest_principal_angle,
    rho_trajectory,
    singular_values,
)
from kernelapprox.dynamics.factorization import DeepFactorization
from kernelapprox.dynamics.objectives import (
    FullObservation,
    MaskedObservation,
    Objective,
    whitened_regression,
)
from kernelapprox.dynamics.recording import TrajectoryRecorder
from kernelapprox.dynamics.training import OPTIMIZERS, train


def low_rank_target(
    dim: int,
    rank: int,
    *,
    seed: Any = None,
    normalize: bool = True,
    dtype: torch.dtype = DEFAULT_DTYPE,
) -> torch.Tensor:
    r"""A ``dim x dim`` Gaussian matrix truncated to rank ``rank`` by its SVD.

    With ``normalize=True`` it is scaled to spectral norm 1 (notes §1.6); otherwise its singular
    values are about :math:`2\sqrt d` (the completion experiments, notes §1.5).
    """
    normalize = check_bool(normalize, "normalize")
    dim = check_positive_int(dim, "dim")
    rank = check_positive_int(rank, "rank")
    if rank > dim:
        raise ValueError(f"rank must be <= dim = {dim}, got {rank}")
    gauss = torch.randn(dim, dim, dtype=dtype, generator=torch_generator(seed))
    u, s, vh = torch.linalg.svd(gauss)
    target = (u[:, :rank] * s[:rank]) @ vh[:rank]
    if normalize:
        target = target / s[0]
    return target


def invariant_bases(
    model: DeepFactorization, target: torch.Tensor, rank: int
) -> list[torch.Tensor]:
    r"""The fixed bases :math:`U_1, \dots, U_{L+1}` of the theorem (each ``d x d`` orthogonal).

    Must be called at initialization. The first :math:`2r` columns of :math:`U_l` span the
    moving block, the last :math:`d - 2r` the invariant complement.
    """
    if model.width != model.in_dim or model.in_dim != model.out_dim:
        raise ValueError("invariant_bases needs a square full-width factorization")
    with torch.no_grad():
        u, _, vh = torch.linalg.svd(target)
        u_phi, v_phi = u[:, :rank], vh[:rank].T
        o_prod = model.end_to_end() / model.eps**model.depth
        bases = [complete_basis(torch.cat([v_phi, o_prod.T @ u_phi], dim=1))]
        for factor in model.factors:
            bases.append((factor / model.eps) @ bases[-1])
    return bases


def _objective(kind: str, target: torch.Tensor, reduction: str, seed: Any) -> Objective:
    if kind == "full":
        return FullObservation(target, reduction=reduction)
    return whitened_regression(
        target, n_samples=2 * target.shape[1], reduction=reduction, seed=seed
    )


def verify_invariant_subspace(
    *,
    dim: int = 30,
    rank: int = 3,
    depth: int = 3,
    eps: float = 1e-2,
    lr: float = 0.3,
    steps: int = 500,
    weight_decay: float = 0.0,
    optimizer: str = "gd",
    momentum: float = 0.9,
    reduction: str = "sum",
    loss: str = "full",
    record_every: int = 10,
    seed: Any = 0,
    negative_controls: bool = True,
    adam_lr: float = 1e-3,
    control_steps: int = 200,
    mask_fraction: float = 0.5,
    keep_history: bool = False,
    progress: bool = False,
) -> dict[str, Any]:
    r"""Measure the invariant-subspace theorem and the compressed-trajectory equivalence.

    Trains the full-width factorization on a rank-``rank`` target of spectral norm 1
    (Yaras et al., ICML 2024; notes ``lowrank_dynamics.md`` §1.2, §1.6-1.7), records every
    ``record_every`` steps, builds the compressed model from the first gradient
    (:func:`~kernelapprox.dynamics.compress`, :math:`\hat r = r`, :math:`\gamma = 0`), trains
    it with the same optimizer, and compares. Runs in about a second with the defaults.

    Parameters
    ----------
    dim, rank, depth, eps, lr, steps : numbers
        :math:`d, r, L, \varepsilon, \eta` and the number of updates (``2 * rank < dim``:
        the invariant complement has dimension :math:`d - 2r > 0`).
    weight_decay : float
        :math:`\lambda` (enters the :math:`\rho` recursion).
    optimizer : {"gd", "momentum", "adam"}
        The theorem holds for GD and heavy-ball momentum, not for Adam.
    reduction : {"sum", "mean"}
    loss : {"full", "whitened"}
        Full observation, or whitened regression with ``n = 2 d`` samples.
    negative_controls : bool
        Also run Adam (``adam_lr``, ``control_steps``) and a masked loss (GD, ``lr``,
        ``mask_fraction`` of the entries observed), where the theorem must fail.

    Returns
    -------
    dict
        ``invariance_error`` -- max over layers and recorded steps of the largest distance to
        :math:`\rho(t)` among the :math:`d-2r` singular values closest to it (not available,
        ``nan``, for Adam); ``min_invariant_count`` -- min over layers/steps of how many
        singular values lie within 1e-10 of :math:`\rho(t)`; ``complement_residual`` --
        max :math:`\|W_lU_{l,2} - \rho U_{l+1,2}\|_F`; ``leakage`` -- max relative leakage
        (:func:`~kernelapprox.dynamics.diagnostics.complement_leakage`);
        ``largest_complement_angle`` / ``largest_block_angle`` -- the largest principal angle
        between :math:`W_l(t)U_{l,2}` (resp. :math:`U_{l,1}`) and its value at
        :math:`t = 0`; ``subspace_cosine`` -- cosine of the largest principal angle between
        :math:`V_{1,1}` and :math:`\operatorname{span}(V_\Phi, O_{L:1}^\top U_\Phi)`;
        ``trajectory_gap`` -- max relative :math:`\|E_\text{full} - (E_\text{comp} +
        \rho^L U_\perp V_\perp^\top)\|/\|E_\text{full}\|`; ``trajectory_gap_without_complement``
        and ``complement_gap_predicted`` (final step: measured gap without the
        :math:`\rho^L` term, and :math:`\rho^L\sqrt{d-2r}/\|E_\text{full}\|`);
        ``final_relative_fit``; ``rho_final``; and, with ``negative_controls``,
        ``adam_leakage``, ``adam_invariance_error``, ``masked_leakage``,
        ``masked_bulk_ratio_min`` / ``masked_bulk_ratio_max`` (bulk singular values
        :math:`\sigma_{2r+1..d}` over :math:`\varepsilon`).
    """
    negative_controls = check_bool(negative_controls, "negative_controls")
    keep_history = check_bool(keep_history, "keep_history")
    progress = check_bool(progress, "progress")
    dim = check_positive_int(dim, "dim")
    rank = check_positive_int(rank, "rank")
    depth = check_positive_int(depth, "depth", minimum=2)
    eps = check_positive_float(eps, "eps")
    lr = check_positive_float(lr, "lr")
    steps = check_positive_int(steps, "steps")
    record_every = check_positive_int(record_every, "record_every")
    optimizer = check_choice(optimizer, "optimizer", OPTIMIZERS)
    loss = check_choice(loss, "loss", ("full", "whitened"))
    if 2 * rank >= dim:
        raise ValueError(
            f"rank must satisfy 2 * rank < dim = {dim} (the invariant complement has d - 2r "
            f"dimensions), got rank={rank}"
        )
    start = time.perf_counter()
    gen_target, gen_model, gen_data, gen_mask = child_generators(seed, 4)
    target = low_rank_target(dim, rank, seed=gen_target)
    objective = _objective(loss, target, reduction, gen_data)
    model = DeepFactorization(dim, depth=depth, eps=eps, seed=gen_model)
    initial = copy.deepcopy(model)
    bases = invariant_bases(model, target, rank)
    k = 2 * rank
    u_phi = torch.linalg.svd(target)[0][:, :rank]
    record_steps = sorted(set(range(0, steps + 1, record_every)) | {steps})
    rec = TrajectoryRecorder(bases, k, u_phi, keep_factors=True)
    train_kw = {"optimizer": optimizer, "momentum": momentum, "weight_decay": weight_decay}
    result = train(
        model,
        objective,
        lr=lr,
        steps=steps,
        record_steps=record_steps,
        recorder=rec,
        progress=progress,
        desc="full",
        **train_kw,
    )

    # the compressed model from the first gradient, gamma = 0 (exact under full observation)
    small = compress(copy.deepcopy(initial), objective, rank=rank)
    s_true = bases[0][:, :k]
    subspace_cos = float(np.cos(largest_principal_angle(small.right, s_true)))
    small_e2e: list[torch.Tensor] = []
    small_result = train(
        small,
        objective,
        lr=lr,
        steps=steps,
        gamma=0.0,
        record_steps=record_steps,
        recorder=lambda t, m, e: small_e2e.append(e.clone()),
        progress=progress,
        desc="compressed",
        **train_kw,
    )
    unit_complement = complement_term(small, 1.0)

    out: dict[str, Any] = {
        "dim": dim,
        "rank": rank,
        "depth": depth,
        "eps": eps,
        "lr": lr,
        "steps": steps,
        "optimizer": optimizer,
        "reduction": reduction,
        "loss": loss,
        "weight_decay": weight_decay,
        "seed": seed if isinstance(seed, int) else None,
    }
    exact = optimizer in ("gd", "momentum")
    if exact:
        rho_all = rho_trajectory(
            eps=eps,
            lr=lr,
            depth=depth,
            steps=steps,
            weight_decay=weight_decay,
            loss_scale=objective.scale,
            momentum=momentum if optimizer == "momentum" else 0.0,
        )
        rho = rho_all[np.asarray(rec.steps)]
    else:
        rho = np.full(len(rec.steps), np.nan)
    inv_err, min_count, resid = 0.0, dim, 0.0
    gaps, raw_gaps = [], []
    for i, t in enumerate(rec.steps):
        for l in range(depth):
            if exact:
                sv = rec.spectra[i][l]
                inv_err = max(inv_err, invariant_value_error(sv, rho[i], dim - k))
                min_count = min(min_count, count_equal(sv, rho[i], atol=1e-10))
                u_in, u_out = bases[l], bases[l + 1]
                resid = max(
                    resid,
                    complement_residual(rec.factors[i][l], u_in[:, k:], u_out[:, k:], rho[i]),
                )
        full = rec.end_to_end[i]
        predicted = small_e2e[i] + (rho[i] ** depth) * unit_complement if exact else small_e2e[i]
        gaps.append(float(torch.linalg.norm(full - predicted) / torch.linalg.norm(full)))
        raw_gaps.append(float(torch.linalg.norm(full - small_e2e[i]) / torch.linalg.norm(full)))
        del t
    final_norm = float(torch.linalg.norm(rec.end_to_end[-1]))
    out.update(
        invariance_error=inv_err if exact else float("nan"),
        min_invariant_count=int(min_count) if exact else 0,
        n_invariant=dim - k,
        complement_residual=resid if exact else float("nan"),
        leakage=float(np.max(rec.leakage)),
        largest_complement_angle=float(np.max(rec.complement_angle)),
        largest_block_angle=float(np.max(rec.block_angle)),
        subspace_cosine=subspace_cos,
        trajectory_gap=float(np.max(gaps)) if exact else float("nan"),
        trajectory_gap_without_complement=raw_gaps[-1],
        complement_gap_predicted=(
            float(rho[-1] ** depth * np.sqrt(dim - k) / final_norm) if exact else float("nan")
        ),
        final_relative_fit=objective.relative_error(rec.end_to_end[-1]),
        rho_final=float(rho[-1]),
        iterations_full=result.iterations,
        iterations_compressed=small_result.iterations,
    )
    if negative_controls:
        out.update(
            _negative_controls(
                dim=dim,
                rank=rank,
                depth=depth,
                eps=eps,
                lr=lr,
                adam_lr=adam_lr,
                steps=control_steps,
                reduction=reduction,
                mask_fraction=mask_fraction,
                target=target,
                gen_model=gen_model,
                gen_mask=gen_mask,
                initial=initial,
                bases=bases,
            )
        )
    if keep_history:
        out["history"] = {
            "steps": rec.steps,
            "rho": rho.tolist(),
            "spectra": [[s.tolist() for s in per_step] for per_step in rec.spectra],
            "leakage": rec.leakage,
            "complement_angle": rec.complement_angle,
            "block_angle": rec.block_angle,
            "target_angles_largest": [float(a[-1]) for a in rec.target_angles],
            "target_angles_smallest": [float(a[0]) for a in rec.target_angles],
            "loss_full": result.losses[np.asarray(rec.steps)].tolist(),
            "loss_compressed": small_result.losses[np.asarray(rec.steps)].tolist(),
            "gap": gaps,
        }
    out["seconds"] = time.perf_counter() - start
    return out


def _negative_controls(
    *,
    dim,
    rank,
    depth,
    eps,
    lr,
    adam_lr,
    steps,
    reduction,
    mask_fraction,
    target,
    gen_model,
    gen_mask,
    initial,
    bases,
) -> dict[str, float]:
    """Adam and masked-loss runs, where the exact invariance must break (notes §1.6-1.7)."""
    k = 2 * rank
    objective = FullObservation(target, reduction=reduction)
    every = max(1, steps // 20)
    record = list(range(0, steps + 1, every))

    def leak_recorder(store: list[float], spectra: list[np.ndarray] | None = None):
        def rec(step: int, model: torch.nn.Module, end_to_end: torch.Tensor) -> None:
            for l, factor in enumerate(model.factors):
                value, c = complement_leakage(factor, bases[l][:, k:], bases[l + 1][:, k:])
                store.append(value)
                if spectra is not None:
                    spectra.append((singular_values(factor), c))

        return rec

    adam_leak: list[float] = []
    adam_spec: list[tuple[np.ndarray, float]] = []
    train(
        copy.deepcopy(initial),
        objective,
        lr=adam_lr,
        steps=steps,
        optimizer="adam",
        record_steps=record,
        recorder=leak_recorder(adam_leak, adam_spec),
    )
    adam_inv = max(invariant_value_error(sv, c, dim - k) for sv, c in adam_spec)

    n_obs = int(np.floor(mask_fraction * dim * dim))
    mask = exact_count_mask(dim, dim, n_obs, seed=gen_mask)
    masked = MaskedObservation(target, mask, reduction=reduction)
    masked_leak: list[float] = []
    masked_spec: list[tuple[np.ndarray, float]] = []
    train(
        copy.deepcopy(initial),
        masked,
        lr=lr,
        steps=steps,
        record_steps=record,
        recorder=leak_recorder(masked_leak, masked_spec),
    )
    bulk = np.concatenate([sv[k:] for sv, _ in masked_spec]) / eps
    return {
        "adam_leakage": float(np.max(adam_leak)),
        "adam_invariance_error": float(adam_inv),
        "masked_leakage": float(np.max(masked_leak)),
        "masked_bulk_ratio_min": float(bulk.min()),
        "masked_bulk_ratio_max": float(bulk.max()),
    }


def exact_count_mask(rows: int, cols: int, n_observed: int, *, seed: Any = None) -> torch.Tensor:
    """A boolean ``rows x cols`` mask with exactly ``n_observed`` entries, uniformly drawn."""
    rows = check_positive_int(rows, "rows")
    cols = check_positive_int(cols, "cols")
    n_observed = check_positive_int(n_observed, "n_observed")
    if n_observed > rows * cols:
        raise ValueError(f"n_observed must be <= rows * cols = {rows * cols}, got {n_observed}")
    flat = torch.zeros(rows * cols, dtype=torch.bool)
    flat[torch.randperm(rows * cols, generator=torch_generator(seed))[:n_observed]] = True
    return flat.reshape(rows, cols)
