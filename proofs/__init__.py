"""The theory-verification catalogue of kernelapprox.

One module per claim. Each claim module's docstring states the claim (LaTeX, section
``Statement``), its source and method, and the module defines ``CLAIM``, a :class:`Claim`
whose ``run`` returns a :class:`Verdict` with the evidence: a symbolic residual that sympy
simplifies to zero, or measured numbers with tolerances derived from standard errors.

Run it with ``kernelapprox verify`` or from Python::

    import proofs
    report = proofs.run_claims(proofs.select(["bochner_gaussian"]), progress=False)
    print(proofs.format_report(report, "text"))

Verdicts are ``holds``, ``refuted``, ``fails`` and ``pending``; see :mod:`proofs._core`. The
exit-status policy (pending claims fail the run only with ``--strict``) is in
:mod:`proofs._runner`. ``render_markdown(family)`` produces the page ``docs/theory/<family>.md``.
"""

from ._core import (
    EXPECTED,
    FAMILIES,
    METHODS,
    VERDICTS,
    Claim,
    Verdict,
    docstring_section,
    package_module,
    try_import,
)
from ._format import FORMATS, format_json, format_markdown, format_report, format_text
from ._registry import catalogue, claim_module_names, select
from ._render import render_index, render_markdown, write_docs
from ._runner import Outcome, Report, evaluate, run_claims, thorough_from_env

__all__ = [
    "EXPECTED",
    "FAMILIES",
    "FORMATS",
    "METHODS",
    "VERDICTS",
    "Claim",
    "Outcome",
    "Report",
    "Verdict",
    "catalogue",
    "claim_module_names",
    "docstring_section",
    "evaluate",
    "format_json",
    "format_markdown",
    "format_report",
    "format_text",
    "package_module",
    "render_index",
    "render_markdown",
    "run_claims",
    "select",
    "thorough_from_env",
    "try_import",
    "write_docs",
]
