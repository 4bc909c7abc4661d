r"""Training loop for (compressed) deep factorizations: GD, heavy-ball momentum or Adam.

Every optimizer is a ``torch.optim`` one, so weight decay follows PyTorch's convention
:math:`g \leftarrow \nabla f + \lambda W` (for plain GD: :math:`W \leftarrow (1-\eta\lambda)W -
\eta\nabla f`, notes ``lowrank_dynamics.md`` §1.1).

The loop evaluates the model at step ``t`` (after ``t`` updates), hands the detached end-to-end
matrix to an optional ``recorder`` at the requested steps and to an optional ``stop`` rule every
``check_every`` steps, then performs update ``t + 1``. Iteration counts, not wall time, are what
tests compare; wall time is measured only for reports.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from kernelapprox._validation import (
    check_bool,
    check_choice,
    check_nonnegative_float,
    check_positive_float,
    check_positive_int,
)
from kernelapprox.dynamics.objectives import Objective

OPTIMIZERS = ("gd", "momentum", "adam")


class DivergedError(ValueError):
    """The loss became infinite or NaN: the step size is too large for this problem."""


Recorder = Callable[[int, torch.nn.Module, torch.Tensor], None]
StopRule = Callable[[int, torch.Tensor], bool]


def make_optimizer(
    groups: list[dict[str, Any]],
    *,
    optimizer: str = "gd",
    lr: float,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
) -> torch.optim.Optimizer:
    """A ``torch.optim`` optimizer for ``groups`` (each group may carry its own ``lr``).

    ``"gd"`` is ``SGD`` without momentum, ``"momentum"`` is heavy-ball ``SGD`` with
    ``momentum``, ``"adam"`` is ``Adam`` (L2 weight decay added to the gradient).
    """
    optimizer = check_choice(optimizer, "optimizer", OPTIMIZERS)
    lr = check_positive_float(lr, "lr")
    weight_decay = check_nonnegative_float(weight_decay, "weight_decay")
    if optimizer == "gd":
        return torch.optim.SGD(groups, lr=lr, momentum=0.0, weight_decay=weight_decay)
    if optimizer == "momentum":
        momentum = check_nonnegative_float(momentum, "momentum")
        if momentum >= 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, weight_decay=weight_decay)
    return torch.optim.Adam(groups, lr=lr, weight_decay=weight_decay)


@dataclass
class TrainResult:
    """Outcome of :func:`train`.

    Attributes
    ----------
    iterations : int
        Number of optimizer updates performed.
    converged : bool
        Whether the ``stop`` rule fired (``False`` when there was none or it never fired).
    losses : numpy.ndarray
        Loss at steps ``0 .. iterations`` (before each update, and at the end).
    wall_seconds : float
        Wall time of the loop (reporting only, never asserted).
    """

    iterations: int
    converged: bool
    losses: np.ndarray
    wall_seconds: float
    extra: dict[str, Any] = field(default_factory=dict)


def train(
    model: torch.nn.Module,
    objective: Objective,
    *,
    lr: float,
    steps: int,
    optimizer: str = "gd",
    gamma: float = 1.0,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    record_steps: Iterable[int] | None = None,
    recorder: Recorder | None = None,
    stop: StopRule | None = None,
    check_every: int = 1,
    progress: bool = False,
    desc: str | None = None,
) -> TrainResult:
    r"""Train ``model`` on ``objective`` for at most ``steps`` updates.

    Parameters
    ----------
    model : DeepFactorization or CompressedFactorization
        Any module whose ``forward()`` returns the end-to-end matrix and which has
        ``parameter_groups(lr, gamma)``.
    objective : Objective
        The loss of the end-to-end matrix.
    lr : float
        Step size :math:`\eta` (in the objective's reduction: mean or sum).
    steps : int
        Maximal number of updates.
    optimizer : {"gd", "momentum", "adam"}
    gamma : float
        Discrepant learning-rate factor of a compressed model's outer factors.
    momentum, weight_decay : float
        Heavy-ball coefficient (``optimizer="momentum"``) and :math:`\lambda`.
    record_steps : iterable of int, optional
        Steps ``t`` (0 = initialization) at which ``recorder(t, model, end_to_end)`` is called.
    recorder : callable, optional
    stop : callable, optional
        ``stop(t, end_to_end) -> bool``, checked every ``check_every`` steps; training ends
        at the first ``t`` where it returns ``True`` (``iterations = t``).
    check_every : int
        Period of the stop check.
    progress : bool
        Show a ``tqdm`` bar on stderr.
    """
    progress = check_bool(progress, "progress")
    steps = check_positive_int(steps, "steps", minimum=0)
    check_every = check_positive_int(check_every, "check_every")
    groups = model.parameter_groups(lr, gamma)
    opt = make_optimizer(
        groups, optimizer=optimizer, lr=lr, momentum=momentum, weight_decay=weight_decay
    )
    wanted = set() if record_steps is None else {int(t) for t in record_steps}
    losses: list[float] = []
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, desc=desc, leave=False, mininterval=0.5)
    converged = False
    t = 0
    start = time.perf_counter()
    try:
        while True:
            final = t == steps
            if final:
                with torch.no_grad():
                    end_to_end = model()
                    loss = objective(end_to_end)
            else:
                opt.zero_grad(set_to_none=True)
                end_to_end = model()
                loss = objective(end_to_end)
            losses.append(float(loss.detach()))
            if not np.isfinite(losses[-1]):
                raise DivergedError(
                    f"the loss became {losses[-1]} at step {t}; lower lr (now {lr})"
                )
            detached = end_to_end.detach()
            if recorder is not None and t in wanted:
                recorder(t, model, detached)
            if stop is not None and t % check_every == 0 and stop(t, detached):
                converged = True
                break
            if final:
                break
            loss.backward()
            opt.step()
            t += 1
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    wall = time.perf_counter() - start
    return TrainResult(
        iterations=t, converged=converged, losses=np.asarray(losses), wall_seconds=wall
    )
