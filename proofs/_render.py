"""The documentation pages ``docs/theory/<family>.md``, generated from the catalogue.

Each page lists the claims of one family with their statement, source, method, verdict and
evidence, and links each claim to its module in ``proofs/``, to the test that runs it and to
the package code it underpins. Pages contain no timings, so regenerating them with the same
seeds reproduces them.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

from ._core import FAMILIES, docstring_section
from ._format import md_cell
from ._registry import select
from ._runner import Outcome, Report, run_claims

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


#: How the index and the tables name the outcome of a claim, and the CSS class of its badge
#: (``docs/stylesheets/extra.css``).
OUTCOMES = {
    "holds": ("holds", "verdict-holds"),
    "refuted": ("refuted as expected", "verdict-refuted"),
    "pending": ("pending", "verdict-pending"),
    "fail": ("failed", "verdict-failed"),
}


#: ASCII math in claim titles and the TeX it becomes on the pages, in order. The anchors
#: stay those of the plain titles (headings carry them explicitly).
_TITLE_MATH = (
    (re.compile(r"\bexp\(((?:[^()]|\([^()]*\))*)\)"), lambda m: f"$e^{{{_tex(m.group(1))}}}$"),
    (re.compile(r"\(1 - (\$e\^\{-z\^2\}\$)\)\^2 / 2"), lambda m: "$(1 - e^{-z^2})^2 / 2$"),
    (re.compile(r"\bchi_(\w)\b"), lambda m: f"$\\chi_{m.group(1)}$"),
    (re.compile(r"\bO\(([^()]*)\)"), lambda m: f"$O({m.group(1)})$"),
    (
        re.compile(r"\b([a-z]) (<=|>=|=|<|>) (\d+(?:, \d+)*|[a-z])\b"),
        lambda m: f"${m.group(1)} {_OPS[m.group(2)]} {m.group(3)}$",
    ),
    (re.compile(r" <= ([a-z])\b"), lambda m: f" $\\le {m.group(1)}$"),
    (re.compile(r" <= "), lambda m: " $\\le$ "),
    (
        re.compile(r"\bsqrt\((\w+)\)((?: [A-Z]\d*)+)"),
        lambda m: f"$\\sqrt{{{m.group(1)}}}\\,{_subscripts(m.group(2).strip())}$",
    ),
    (re.compile(r"\brho\(t\)(\^\w)?"), lambda m: f"$\\rho(t){m.group(1) or ''}$"),
    (re.compile(r"\b([a-z]) - (\d+)\b"), lambda m: f"${m.group(1)} - {m.group(2)}$"),
    (re.compile(r"(?<= )(-\d+(?:[./]\d+)?)(?![\w.])"), lambda m: f"${m.group(1)}$"),
    (re.compile(r"\b([A-Z])/([a-z])-"), lambda m: f"${m.group(1)}/{m.group(2)}$-"),
    (re.compile(r"\bL2-"), lambda m: "$L_2$-"),
    (
        re.compile(r"\b((?:[a-z] )*)([A-Z])\^(\d)\b"),
        lambda m: "$" + "\\,".join([*m.group(1).split(), f"{m.group(2)}^{m.group(3)}"]) + "$",
    ),
    (
        re.compile(r"\bKL\((\w)_(\w) \|\| (\w)_(\w)\)"),
        lambda m: f"$\\mathrm{{KL}}({m.group(1)}_{m.group(2)} \\Vert {m.group(3)}_{m.group(4)})$",
    ),
)
_OPS = {"<=": "\\le", ">=": "\\ge", "=": "=", "<": "<", ">": ">"}


def _tex(expr: str) -> str:
    """``x.y`` (a dot product) as ``x^\\top y``."""
    return re.sub(r"\b(\w)\.(\w)\b", r"\1^\\top \2", expr)


def _subscripts(expr: str) -> str:
    """``D1`` (a name and its index) as ``D_1``."""
    return re.sub(r"\b([A-Za-z])(\d+)\b", r"\1_\2", expr)


def title_math(title: str) -> str:
    """A claim title with its ASCII math (``exp(q.k)``, ``d >= 4``, ``chi_d``, ``sqrt(p) H D1``,
    ``rho(t)^L``, ``k - 2``, ``-1/2``, ``N/k-``, ``L2-``, ``w c T^2``, ``KL(p_t || p_s)``) as
    TeX; the title itself stays plain text for the command line's tables."""
    for pattern, repl in _TITLE_MATH:
        title = pattern.sub(repl, title)
    return title


def _anchor(title: str) -> str:
    """The heading id of a claim section (GitHub-style, as the site's toc slugify makes it)."""
    return "".join(ch for ch in title.lower() if ch.isalnum() or ch in " -_").replace(" ", "-")


def outcome_kind(outcome: Outcome) -> str:
    """``"holds"``, ``"refuted"`` (refuted, as expected), ``"pending"`` or ``"fail"``."""
    if outcome.result == "pass":
        return "refuted" if outcome.verdict.status == "refuted" else "holds"
    return outcome.result


def _badge(outcome: Outcome) -> str:
    label, css = OUTCOMES[outcome_kind(outcome)]
    if outcome.result == "fail":
        label = f"failed: {outcome.verdict.status}"
    return f'<span class="verdict {css}">{label}</span>'


def method_label(claim) -> str:
    """The method of a claim: a claim expected to be refuted is refuted by a counterexample,
    found exactly (no seed) or by a seeded experiment."""
    if claim.method == "refuted":
        return "numerical counterexample" if claim.seed is not None else "symbolic counterexample"
    return claim.method


def plain_text(text: str) -> str:
    """``text`` escaped so that Markdown shows it as written: a verdict's summary is plain
    text, where ``D*_n ... D*`` would otherwise become emphasis."""
    return re.sub(r"([\\`*_])", r"\\\1", text)


def method_sentence(label: str, how: str) -> str:
    """The method paragraph of a claim section: its label, then the module's ``Method``
    section (whitespace collapsed).

    The label is said once: a section that already starts with it (``Numerical: ...``,
    ``Symbolic, exact: ...``) is shown as it is; otherwise the label, capitalized, comes first
    as its own sentence (``Numerical. Experiment with ...``).
    """
    how = " ".join(how.split())
    if re.match(rf"{re.escape(label)}\b", how, flags=re.IGNORECASE):
        return how
    label = label[:1].upper() + label[1:] + "."
    return f"{label} {how}" if how else label


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
        f"## {title_math(c.title)} {{#{_anchor(c.title)}}}",
        "",
        f"Claim `{c.name}`.",
        "",
        "**Statement.**",
        "",
        _display_math(c.statement),
        "",
        f"**Source.** {c.source}",
        "",
        f"**Method.** {method_sentence(method_label(c), how)}",
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
        f"**Verdict.** {verdict} (expected: {c.expected}). {plain_text(v.summary)}",
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
        "| Claim | Source | Method | Outcome |",
        "|---|---|---|---|",
    ]
    for o in outcomes:
        lines.append(
            f"| [{md_cell(title_math(o.claim.title))}](#{_anchor(o.claim.title)}) | "
            f"{md_cell(o.claim.source)} | {method_label(o.claim)} | {_badge(o)} |"
        )
    lines.append("")
    if not outcomes:
        lines += ["No claims in this family were run.", ""]
    for o in outcomes:
        lines += _claim_section(o)
    return "\n".join(lines).rstrip() + "\n"


def render_index(report: Report) -> str:
    """The index page ``docs/theory/index.md``: counts by outcome, the refuted paper claims
    first, then one line per family and one per claim, each linking to its section (statement,
    method, evidence) and to the package code it verifies."""
    counts = {kind: 0 for kind in OUTCOMES}
    for o in report.outcomes:
        counts[outcome_kind(o)] += 1
    summary = " ".join(
        f'<span class="verdict {css}">{label}: {counts[kind]}</span>'
        for kind, (label, css) in OUTCOMES.items()
    )
    lines = [
        "# Theory verification",
        "",
        "Every claim the toolkit relies on, and every claim of the papers it implements, has a "
        "machine-checked verdict. The catalogue lives in `proofs/` (one module per claim) and "
        "runs with `kernelapprox verify`; `tests/proofs/` runs it in the test suite.",
        "",
        f"{len(report.outcomes)} claims: {summary}",
        "",
        "Outcomes: **holds** (verified: an exact sympy residual of zero, or measurements within "
        "their stated tolerance), **refuted as expected** (a published claim shown to fail as "
        "stated, with the counterexample), **failed** (the check did not reach the expected "
        "verdict), **pending** (the code it verifies is not available yet; never counted as a "
        "pass, and it fails the run only with `--strict`).",
        "",
    ]
    if counts["fail"]:
        lines += [
            '!!! failure "Claims that failed"',
            "",
            f"    {counts['fail']} claims did not reach their expected verdict; see the table "
            "below.",
            "",
        ]

    def row(o: Outcome) -> str:
        c = o.claim
        link = f"[{md_cell(title_math(c.title))}]({c.family}.md#{_anchor(c.title)})"
        claim = f"{link}<br><small>{md_cell(c.source)}</small>"
        code = ", ".join(_code_link(d) for d in c.verifies) or "—"
        return "| " + " | ".join([claim, method_label(c), _badge(o), code]) + " |"

    refuted = [o for o in report.outcomes if outcome_kind(o) == "refuted"]
    if refuted:
        lines += [
            "## Paper claims refuted",
            "",
            "Claims of the papers (or of their released code) that the catalogue shows to be "
            "false as stated. Each links to its section: the exact statement tested, the "
            "counterexample and the evidence.",
            "",
            "| Claim and source | Method | Outcome | Code it checks |",
            "|---|---|---|---|",
            *(row(o) for o in refuted),
            "",
        ]
    lines += [
        "## By family",
        "",
        "| Family | Claims | Holds | Refuted as expected | Pending | Failed |",
        "|---|---|---|---|---|---|",
    ]
    for family, (title, _intro) in FAMILIES.items():
        outs = [o for o in report.outcomes if o.claim.family == family]
        n = {kind: sum(outcome_kind(o) == kind for o in outs) for kind in OUTCOMES}
        lines.append(
            f"| [{title}]({family}.md) | {len(outs)} | {n['holds']} | {n['refuted']} | "
            f"{n['pending']} | {n['fail']} |"
        )
    order = {"refuted": 0, "fail": 1, "pending": 2, "holds": 3}
    lines += [
        "",
        "## All claims",
        "",
        "Refuted claims first, then any that failed or are pending, then those that hold.",
        "",
        "| Claim and source | Method | Outcome | Code it checks |",
        "|---|---|---|---|",
        *(row(o) for o in sorted(report.outcomes, key=lambda o: order[outcome_kind(o)])),
    ]
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
