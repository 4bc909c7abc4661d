"""Running claims: timing, a progress bar, and the pass / pending / fail bookkeeping.

Exit status policy (:meth:`Report.exit_status`)
-----------------------------------------------
* A claim **passes** when its verdict equals its expected verdict (a claim expected to be
  ``refuted`` passes when it is refuted).
* A claim is **pending** when its check returned ``pending`` because an optional dependency
  outside the package is not installed. Pending claims are shown and counted separately and are
  never counted as a pass. They do not make the exit status 1, because nothing was found to be
  wrong; with ``strict=True`` (``kernelapprox verify --strict``) they do, for release checks
  that demand a complete catalogue.
* Every other outcome **fails**: a verdict that differs from the expected one, ``fails``, or an
  exception in the check (reported as ``fails`` with the error). An ``ImportError`` from code of
  the package is such an exception: a module or name of ``kernelapprox`` that does not import
  fails the claim, it never makes it pending. Any failure gives exit status 1.

Seeds (``kernelapprox verify --seed N``)
----------------------------------------
Every seeded experiment runs from its recorded seed plus the run's ``seed_offset`` ``N``
(default 0: the recorded seeds, hence the recorded verdicts). A claim whose ``run`` takes no
``seed`` (:attr:`~proofs._core.Claim.takes_seed`) keeps its recorded seed; the report says
which claims those are. The tolerances are multiples of standard errors, so a claim that
holds should hold for every offset except with the small probability those multiples allow.
"""

from __future__ import annotations

import numbers
import os
import sys
import time
import traceback
from collections.abc import Iterable
from dataclasses import dataclass
from typing import IO, Any

from tqdm.auto import tqdm

from ._core import Claim, Verdict, is_package_module

#: The three results of an outcome, in display order.
RESULTS: tuple[str, ...] = ("pass", "pending", "fail")


def thorough_from_env() -> bool:
    """``True`` when ``KERNELAPPROX_THOROUGH`` is set to anything but ``""`` or ``"0"``."""
    return os.environ.get("KERNELAPPROX_THOROUGH", "") not in ("", "0")


@dataclass(frozen=True)
class Outcome:
    """A claim, the verdict its check returned, and the seconds the check took."""

    claim: Claim
    verdict: Verdict
    seconds: float
    seed: int | None = None

    @property
    def reseeded(self) -> bool:
        """Whether the check ran from a seed other than the claim's recorded one."""
        return self.seed is not None and self.seed != self.claim.seed

    @property
    def result(self) -> str:
        """``"pass"``, ``"pending"`` or ``"fail"`` (see the module docstring)."""
        if self.verdict.status == "pending":
            return "pending"
        return "pass" if self.verdict.status == self.claim.expected else "fail"

    def as_dict(self) -> dict[str, Any]:
        c = self.claim
        return {
            "name": c.name,
            "title": c.title,
            "family": c.family,
            "source": c.source,
            "method": c.method,
            "expected": c.expected,
            "verdict": self.verdict.status,
            "result": self.result,
            "summary": self.verdict.summary,
            "evidence": dict(self.verdict.evidence),
            "seconds": round(self.seconds, 3),
            "module": c.module,
            "seed": self.seed if self.seed is not None else c.seed,
            "recorded_seed": c.seed,
            "tolerance": c.tolerance,
            "statement": c.statement,
        }


@dataclass(frozen=True)
class Report:
    """The outcomes of one run of the catalogue."""

    outcomes: tuple[Outcome, ...]
    thorough: bool = False
    seed_offset: int = 0

    def fixed_seed_claims(self) -> list[str]:
        """Names of the seeded claims that kept their recorded seed under a non-zero offset
        (their ``run`` takes no ``seed``)."""
        if not self.seed_offset:
            return []
        return [
            o.claim.name
            for o in self.outcomes
            if o.claim.seed is not None and not o.claim.takes_seed
        ]

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(RESULTS, 0)
        for outcome in self.outcomes:
            counts[outcome.result] += 1
        return counts

    def exit_status(self, *, strict: bool = False) -> int:
        """1 if any claim failed (or, with ``strict``, is pending); 0 otherwise."""
        counts = self.counts()
        if counts["fail"] or (strict and counts["pending"]):
            return 1
        return 0

    @property
    def seconds(self) -> float:
        return sum(o.seconds for o in self.outcomes)


def check_seed_offset(seed_offset: object) -> int:
    """``seed_offset`` as an integer >= 0 (``TypeError`` / ``ValueError`` naming it)."""
    if isinstance(seed_offset, bool) or not isinstance(seed_offset, numbers.Integral):
        raise TypeError(f"seed_offset must be an integer >= 0, got {seed_offset!r}")
    if seed_offset < 0:
        raise ValueError(f"seed_offset must be an integer >= 0, got {seed_offset}")
    return int(seed_offset)


def evaluate(claim: Claim, *, thorough: bool = False, seed_offset: int = 0) -> Outcome:
    """Check one claim, timing it; an exception becomes a ``fails`` verdict with the error.

    A claim that takes a seed runs from its recorded seed plus ``seed_offset``.
    """
    seed_offset = check_seed_offset(seed_offset)
    seed = claim.seed + seed_offset if claim.takes_seed and claim.seed is not None else None
    start = time.perf_counter()
    try:
        verdict = claim.check(thorough=thorough, seed=seed)
    except ImportError as exc:
        tb = traceback.format_exception(type(exc), exc, exc.__traceback__)
        verdict = Verdict(
            "fails",
            f"package code failed to import ({type(exc).__name__}: {exc})",
            {"error": f"{type(exc).__name__}: {exc}", "traceback": "".join(tb[-3:])},
        )
    except Exception as exc:
        tb = traceback.format_exception(type(exc), exc, exc.__traceback__)
        verdict = Verdict(
            "fails",
            f"the check raised {type(exc).__name__}: {exc}",
            {"error": f"{type(exc).__name__}: {exc}", "traceback": "".join(tb[-3:])},
        )
    requires = claim.requires
    if verdict.status == "pending" and requires and all(is_package_module(m) for m in requires):
        verdict = Verdict(
            "fails",
            f"pending on package code, which must import: {verdict.summary}",
            dict(verdict.evidence),
        )
    return Outcome(claim, verdict, time.perf_counter() - start, seed)


def run_claims(
    claims: Iterable[Claim],
    *,
    thorough: bool | None = None,
    progress: bool = True,
    file: IO[str] | None = None,
    seed_offset: int = 0,
) -> Report:
    """Check ``claims`` in order with a tqdm progress bar (on ``file``, default stderr).

    ``thorough=None`` reads the ``KERNELAPPROX_THOROUGH`` environment variable;
    ``seed_offset`` shifts the root seed of every claim that takes one (module docstring).
    """
    seed_offset = check_seed_offset(seed_offset)
    claims = list(claims)
    if thorough is None:
        thorough = thorough_from_env()
    outcomes = []
    bar = tqdm(
        claims,
        desc="verify",
        unit="claim",
        file=file if file is not None else sys.stderr,
        disable=not progress,
        leave=False,
    )
    for claim in bar:
        bar.set_postfix_str(claim.name, refresh=True)
        outcomes.append(evaluate(claim, thorough=thorough, seed_offset=seed_offset))
    bar.close()
    return Report(tuple(outcomes), thorough=bool(thorough), seed_offset=seed_offset)
