"""What a study run holds in memory: the data of each (data, dim) pair, and the run's rows.

Shared by the runner (which fills them) and the report (which reads them), so that neither
imports the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kernelapprox.estimators.gram import gram_error
from kernelapprox.estimators.learning import LEARNING_METRICS, learning_error
from kernelapprox.kernels import Kernel
from kernelapprox.study.spec import StudySpec

__all__ = ["Dataset", "StudyRun"]


@dataclass
class Dataset:
    """The data of one (data, dim) pair and the kernels resolved on it."""

    name: str
    X: np.ndarray
    X_train: np.ndarray | None = None
    kernels: dict[str, Kernel] = field(default_factory=dict)
    exact: dict[str, np.ndarray] = field(default_factory=dict)
    #: targets of the rows and their (train, test) split, for learning metrics
    y: np.ndarray | None = None
    split: tuple[np.ndarray, np.ndarray] | None = None
    #: learning metrics of the exact kernel, per kernel: the floor of the approximations
    exact_learning: dict[str, dict[str, float]] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        out = {
            "data": self.name,
            "n_points": int(self.X.shape[0]),
            "dim": int(self.X.shape[1]),
            "kernels": {name: repr(k) for name, k in self.kernels.items()},
        }
        if self.split is not None:
            out["train_points"], out["test_points"] = (len(i) for i in self.split)
            out["exact_kernel"] = self.exact_learning
        return out

    def metric(self, K_hat: np.ndarray, K: np.ndarray, metric: str, ridge: float) -> float:
        """One metric of an approximate Gram matrix: a Gram error or a learning error."""
        if metric in LEARNING_METRICS:
            assert self.y is not None and self.split is not None  # validated by the spec
            return learning_error(K_hat, self.y, *self.split, metric, ridge=ridge)
        return gram_error(K_hat, K, metric)


@dataclass
class StudyRun:
    """What a finished (or resumed) run holds: all rows, the datasets and skipped cells."""

    spec: StudySpec
    rows: list[dict[str, Any]]
    datasets: list[Dataset]
    skipped: dict[str, str]
    cells_run: int
    cells_resumed: int
    #: analytic RMS prediction of ``rel_fro`` per cell key, where a closed form exists
    predictions: dict[str, float] = field(default_factory=dict)
    #: ``summary.json``'s content when ``run_study(..., outputs=True)`` wrote it
    summary: dict[str, Any] | None = None
