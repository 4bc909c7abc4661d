"""The documentation pages ``docs/theory/<family>.md``, generated from the catalogue.

Each page lists the claims of one family with their statement, source, method, verdict and
evidence, and links each claim to its module in ``proofs/``, to the test that runs it and to
the package code it underpins. Pages contain no timings, so regenerating them with the same
seeds reproduces them.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from proofs._core import FAMILIES, docstring_section
from proofs._format import md_cell
from proofs._registry import select
from proofs._runner import Outcome, Report, run_claims

#: The test that runs every claim (one parametrized case per claim).
TEST_FILE = "tests/proofs/test_catalogue.py"
TEST_FUNCTION = "test_claim_verdict"
#: Where the pages live, relative to the repository root (links are relative to it).
DOCS_DIR = "docs/theory"
_UP = "../../"


def _code_link(dotted: str) -> str:
    """A link to the source file of ``dotted`` (a module, or ``module.attribute``) when it
    exists in this tree; otherwise the name marked as not available yet."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        modname = ".".join(parts[:cut])
        try:
            spec = importlib.util.find_spec(modname)
        except (ImportError, ValueError):
            spec = None
        if spec is None or not spec.origin or not spec.origin.endswith(".py"):
            continue
        if cut < len(parts):
            node = importlib.import_module(modname)
            for attr in parts[cut:]:
                node = getattr(node, attr, None)
            if node is None:
                break
        path = modname.replace(".", "/")
        path += "/__init__.py" if spec.origin.endswith("__init__.py") else ".py"
        return f"[`{dotted}`]({_UP}{path})"
    return f"`{dotted}` (not available yet)"


def _display_math(text: str) -> str:
    """``text`` with a blank line before and after each ``$$ ... $$`` block.

    The statements in the claim modules put a display equation on its own lines but right
    after the sentence that introduces it; Markdown (pymdownx.arithmatex) only takes ``$$`` as
    display math when the block is a paragraph of its own.
    """
    out: list[str] = []
    in_block = closed = False
    for line in text.splitlines():
        stripped = line.strip()
        opens = not in_block and stripped.startswith("$$")
        if (opens or closed) and stripped and out and out[-1].strip():
            out.append("")
        closed = False
        in_block = in_block or opens
        out.append(line)
        if in_block and stripped.endswith("$$") and (not opens or len(stripped) >= 4):
            in_block, closed = False, True
    return "\n".join(out)


def _claim_section(outcome: Outcome) -> list[str]:
    c, v = outcome.claim, outcome.verdict
    module = importlib.import_module(c.module)
    how = docstring_section(module.__doc__, "Method")
    module_path = c.module.replace(".", "/") + ".py"
    verdict = v.status if outcome.result == "pass" else f"**{v.status}**"
    lines = [
        f"## {c.title}",
        "",
        f"Claim `{c.name}`.",
        "",
        "**Statement.**",
        "",
        _display_math(c.statement),
        "",
        f"**Source.** {c.source}",
        "",
        f"**Method.** {c.method}." + (f" {' '.join(how.split())}" if how else ""),
        "",
    ]
    if c.seed is not None or c.tolerance:
        bits = []
        if c.seed is not None:
            bits.append(f"seed {c.seed}")
        if c.tolerance:
            bits.append(f"tolerance: {c.tolerance}")
        lines += [f"**Experiment.** {'; '.join(bits)}.", ""]
    lines += [
        f"**Verdict.** {verdict} (expected: {c.expected}). {v.summary}",
        "",
        f"**Code.** Claim module [`{module_path}`]({_UP}{module_path}); run by "
        f"[`{TEST_FILE}::{TEST_FUNCTION}[{c.name}]`]({_UP}{TEST_FILE})"
        + ("; underpins " + ", ".join(_code_link(d) for d in c.verifies) if c.verifies else "")
        + ("; requires " + ", ".join(_code_link(d) for d in c.requires) if c.requires else "")
        + ".",
        "",
    ]
    return lines


def render_markdown(family: str, report: Report | None = None) -> str:
    """The markdown page of one claim family.

    Parameters
    ----------
    family : str
        A key of :data:`proofs.FAMILIES`.
    report : Report, optional
        Outcomes to show; when omitted, the family's claims are run (without a progress bar).
    """
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {', '.join(FAMILIES)}; got {family!r}")
    if report is None:
        report = run_claims(select(family=family), progress=False)
    outcomes = [o for o in report.outcomes if o.claim.family == family]
    title, intro = FAMILIES[family]
    lines = [
        f"# {title}",
        "",
        intro,
        "",
        "<!-- Generated from the proofs/ catalogue by "
        "`kernelapprox verify --write-docs docs/theory`; do not edit by hand. -->",
        "",
        "| Claim | Source | Method | Expected | Verdict |",
        "|---|---|---|---|---|",
    ]
    for o in outcomes:
        anchor = "".join(ch for ch in o.claim.title.lower() if ch.isalnum() or ch in " -_").replace(
            " ", "-"
        )
        lines.append(
            f"| [{md_cell(o.claim.title)}](#{anchor}) | {md_cell(o.claim.source)} | "
            f"{o.claim.method} | {o.claim.expected} | {o.verdict.status} |"
        )
    lines.append("")
    if not outcomes:
        lines += ["No claims in this family were run.", ""]
    for o in outcomes:
        lines += _claim_section(o)
    return "\n".join(lines).rstrip() + "\n"


def render_index(report: Report) -> str:
    """The index page ``docs/theory/index.md``: one line per family with its counts."""
    lines = [
        "# Theory verification",
        "",
        "Every claim the toolkit relies on, and every claim of the papers it implements, has a "
        "machine-checked verdict. The catalogue lives in `proofs/` (one module per claim) and "
        "runs with `kernelapprox verify`; `tests/proofs/` runs it in the test suite.",
        "",
        "Verdicts: **holds** (verified: an exact sympy residual of zero, or measurements within "
        "their stated tolerance), **refuted** (shown to fail as stated, with the "
        "counterexample), **fails** (the check did not establish the claim), **pending** (the "
        "code it verifies is not available yet; never counted as a pass, and it fails the run "
        "only with `--strict`).",
        "",
        "| Family | Claims | Pass | Pending | Fail |",
        "|---|---|---|---|---|",
    ]
    for family, (title, _intro) in FAMILIES.items():
        outs = [o for o in report.outcomes if o.claim.family == family]
        n = {r: sum(o.result == r for o in outs) for r in ("pass", "pending", "fail")}
        lines.append(
            f"| [{title}]({family}.md) | {len(outs)} | {n['pass']} | {n['pending']} | {n['fail']} |"
        )
    return "\n".join(lines) + "\n"


def write_docs(directory: str | Path, report: Report) -> list[Path]:
    """Write ``index.md`` and one page per family into ``directory``; return the paths."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for family in FAMILIES:
        path = directory / f"{family}.md"
        path.write_text(render_markdown(family, report), encoding="utf-8")
        written.append(path)
    index = directory / "index.md"
    index.write_text(render_index(report), encoding="utf-8")
    written.append(index)
    return written
