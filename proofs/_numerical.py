"""The factory for numerical claims: seeded experiment, statistic, SE-derived tolerance, verdict.

A numerical claim module defines its experiment as

```python
def run(*, thorough: bool = False, seed: int = SEED) -> Verdict:
    checks = Checks()
    estimates = ...  # R independent replications from np.random.SeedSequence(seed)
    mean, se = mean_and_se(estimates)  # kernelapprox.estimators.replications
    z = z_score(mean, exact, se)
    checks.within(z, 5, f"mean {z:+.1f} SE from the exact value")
    return checks.verdict(f"mean within {abs(z):.1f} SE (limit 5)", z=z)

CLAIM = numerical_claim(run, name=..., title=..., source=..., family=..., seed=SEED,
                        tolerance="5 standard errors from R replications", verifies=(...))
```

* the **seed**: ``run`` takes the experiment's root seed as the keyword ``seed``, whose default
  is the seed recorded in the claim, so ``run()`` reproduces the recorded verdict and
  ``kernelapprox verify --seed N`` reruns the experiment from ``seed + N``
  (:func:`proofs._runner.evaluate`);
* the **statistics**: standard errors and rate fits come from the package
  (:func:`kernelapprox.estimators.replications.mean_and_se`,
  :func:`~kernelapprox.estimators.replications.variance_and_se`,
  :func:`kernelapprox.estimators.rates.fit_rmse_rate`), never from a copy here;
* the **tolerances**: :class:`Checks` records each check that fails, with its message;
* the **verdict**: :meth:`Checks.verdict` is ``holds`` when every check passed (the summary of
  the evidence), else ``fails`` (or ``refuted``) with the failed checks as the summary.

:func:`numerical_claim` builds the :class:`~proofs._core.Claim`: module and statement come from
``run``'s module (its docstring's ``Statement`` section), the method from the expected verdict
(``numerical`` for ``holds``, ``refuted`` for ``refuted``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from ._core import Claim, Verdict, docstring_section, seed_parameter


def z_score(estimate: float, reference: float, stderr: float) -> float:
    """``(estimate - reference) / stderr``: how many standard errors apart the two are."""
    return float((estimate - reference) / stderr)


class Checks:
    """The tolerance checks of one experiment; each failing check adds its message.

    Attributes
    ----------
    failures : list of str
        Messages of the checks that failed, in the order they were made.
    """

    def __init__(self) -> None:
        self.failures: list[str] = []

    @property
    def passed(self) -> bool:
        """Whether every check so far passed."""
        return not self.failures

    def require(self, ok: bool, message: str) -> bool:
        """Record ``message`` as a failure unless ``ok``; return ``ok``."""
        if not ok:
            self.failures.append(message)
        return bool(ok)

    def within(self, z: float, limit: float, message: str) -> bool:
        """A two-sided check ``|z| <= limit`` on a z-score (:func:`z_score`)."""
        return self.require(abs(z) <= limit, message)

    def verdict(self, summary: str, *, failure: str = "fails", **evidence: Any) -> Verdict:
        """``holds`` with ``summary`` when every check passed; otherwise ``failure``
        (``"fails"`` or ``"refuted"``) with the failed checks, joined by ``"; "``."""
        shown = summary if self.passed else "; ".join(self.failures)
        return Verdict.decide(self.passed, shown, failure=failure, **evidence)


def numerical_claim(
    run: Callable[..., Verdict],
    *,
    name: str,
    title: str,
    source: str,
    family: str,
    seed: int,
    tolerance: str,
    expected: str = "holds",
    requires: tuple[str, ...] = (),
    verifies: tuple[str, ...] = (),
) -> Claim:
    """The :class:`~proofs._core.Claim` of a seeded experiment ``run(*, thorough, seed)``.

    Raises
    ------
    TypeError
        If ``run`` has no keyword-only ``seed`` parameter or ``seed`` is not an integer.
    ValueError
        If ``seed`` is negative, or ``run``'s default seed differs from ``seed`` (the recorded
        seed must be the one ``run()`` uses).
    """
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed of claim {name!r} must be an integer, got {seed!r}")
    if seed < 0:
        raise ValueError(f"seed of claim {name!r} must be >= 0, got {seed}")
    parameter = seed_parameter(run)
    if parameter is None:
        raise TypeError(f"run of claim {name!r} must take the keyword-only argument seed")
    if parameter.default != seed:
        raise ValueError(
            f"claim {name!r}: run's default seed {parameter.default!r} must be the recorded "
            f"seed {seed}"
        )
    module = run.__module__
    doc = sys.modules[module].__doc__ if module in sys.modules else None
    return Claim(
        name=name,
        title=title,
        statement=docstring_section(doc, "Statement"),
        source=source,
        method="refuted" if expected == "refuted" else "numerical",
        expected=expected,
        family=family,
        run=run,
        module=module,
        seed=seed,
        tolerance=tolerance,
        requires=requires,
        verifies=verifies,
    )
