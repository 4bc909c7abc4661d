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
"""

from __future__ import annotations

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
            "seed": c.seed,
            "tolerance": c.tolerance,
            "statement": c.statement,
        }


@dataclass(frozen=True)
class Report:
    """The outcomes of one run of the catalogue."""

    outcomes: tuple[Outcome, ...]
    thorough: bool = False

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


def evaluate(claim: Claim, *, thorough: bool = False) -> Outcome:
    """Check one claim, timing it; an exception becomes a ``fails`` verdict with the error."""
    start = time.perf_counter()
    try:
        verdict = claim.check(thorough=thorough)
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
    return Outcome(claim, verdict, time.perf_counter() - start)


def run_claims(
    claims: Iterable[Claim],
    *,
    thorough: bool | None = None,
    progress: bool = True,
    file: IO[str] | None = None,
) -> Report:
    """Check ``claims`` in order with a tqdm progress bar (on ``file``, default stderr).

    ``thorough=None`` reads the ``KERNELAPPROX_THOROUGH`` environment variable.
    """
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
        outcomes.append(evaluate(claim, thorough=thorough))
    bar.close()
    return Report(tuple(outcomes), thorough=bool(thorough))
