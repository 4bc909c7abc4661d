"""The one result type every error estimator returns."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class ErrorEstimate:
    """An estimated quantity with its standard error and a confidence interval.

    Attributes
    ----------
    value : float
        The point estimate (for replications: the mean over replications).
    stderr : float
        Its standard error (``nan`` when it cannot be estimated, e.g. one replication).
    ci_low, ci_high : float
        Confidence interval at ``level`` (``nan`` when unavailable).
    level : float
        Nominal coverage of the interval, e.g. 0.95.
    method : str
        How the interval was obtained: ``"replications"``, ``"analytic"``, ``"bootstrap"``, ...
    n : int
        Sample size behind one estimate (features, points or pairs), 0 when not applicable.
    replications : int
        Number of independent replications used (1 for single-sample methods).
    """

    value: float
    stderr: float
    ci_low: float
    ci_high: float
    level: float
    method: str
    n: int = 0
    replications: int = 1

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def covers(self, truth: float) -> bool:
        """Whether the interval contains ``truth``."""
        return bool(self.ci_low <= truth <= self.ci_high)

    def __str__(self) -> str:
        return (
            f"{self.value:.4g} [{self.ci_low:.4g}, {self.ci_high:.4g}] "
            f"({self.level:.0%} {self.method}, R={self.replications})"
        )
