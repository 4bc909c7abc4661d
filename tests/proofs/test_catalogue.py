"""Run the whole catalogue once and check every claim's verdict and record.

A claim that reports ``pending`` is skipped (shown as skipped, never as a pass), and only
claims that require an optional dependency outside the package may be pending: package code
that does not import fails its claim.
"""

from __future__ import annotations

import importlib
import json

import pytest

import proofs
from proofs import _render

NAMES = proofs.claim_module_names()

#: Every item of the issue's list is covered by at least these claims.
ISSUE_ITEMS = {
    1: ["bochner_gaussian"],
    2: ["positive_features"],
    3: ["cos_variance", "sincos_vs_offset"],
    4: ["performer_mse"],
    5: ["dct_orthogonal"],
    6: ["dijiang_released_kernel", "dijiang_released_not_softmax"],
    7: ["chunked_linear_attention"],
    8: ["box_discrepancy_gaussian"],
    9: ["dijiang_pff_chi_radii", "dijiang_pff_normal_radii"],
    10: ["dijiang_qmc_rate"],
    11: ["box_weights_discrepancy"],
    12: ["orf_variance"],
    13: ["koksma_hlawka_1d"],
    14: ["sobol_rmse_rate"],
    15: ["invariant_subspace"],
    16: ["est_unbiased"],
    17: ["lpa_rank"],
}


@pytest.fixture(scope="module")
def report() -> proofs.Report:
    return proofs.run_claims(proofs.catalogue(), progress=False)


@pytest.fixture(scope="module")
def outcomes(report: proofs.Report) -> dict[str, proofs.Outcome]:
    return {o.claim.name: o for o in report.outcomes}


def test_every_issue_item_has_its_claims() -> None:
    for item, names in ISSUE_ITEMS.items():
        for name in names:
            assert name in NAMES, f"issue item {item}: claim {name} missing"


@pytest.mark.parametrize("name", NAMES)
def test_claim_verdict(name: str, outcomes: dict[str, proofs.Outcome]) -> None:
    outcome = outcomes[name]
    claim, verdict = outcome.claim, outcome.verdict
    if verdict.status == "pending":
        external = [m for m in claim.requires if not m.startswith("kernelapprox")]
        assert external, f"{name} is pending on package code: {verdict.summary}"
        pytest.skip(f"pending: {verdict.summary}")
    assert verdict.status == claim.expected, f"{name}: {verdict.status}: {verdict.summary}"
    assert outcome.result == "pass"
    json.dumps(verdict.as_dict())  # evidence is plain JSON


@pytest.mark.parametrize("name", NAMES)
def test_claim_record(name: str) -> None:
    module = importlib.import_module(f"proofs.{name}")
    claim = module.CLAIM
    doc = module.__doc__ or ""
    for heading in ("Statement", "Source", "Method"):
        assert proofs.docstring_section(doc, heading), f"{name}: no {heading} section"
    assert claim.statement == proofs.docstring_section(doc, "Statement")
    assert "$" in claim.statement
    assert claim.name == name and claim.module == f"proofs.{name}"
    assert claim.family in proofs.FAMILIES
    assert claim.source.strip() and claim.title.strip()
    assert (claim.method == "refuted") == (claim.expected == "refuted")
    assert claim.verifies, f"{name}: say which package code the claim underpins"
    if claim.method == "numerical" or (claim.method == "refuted" and claim.seed is not None):
        assert isinstance(claim.seed, int)
        assert claim.tolerance, f"{name}: a numerical claim states its tolerance"
    assert callable(claim.run)


def test_symbolic_residuals_are_exactly_zero(outcomes: dict[str, proofs.Outcome]) -> None:
    for outcome in outcomes.values():
        residuals = outcome.verdict.evidence.get("residuals")
        if outcome.claim.method == "symbolic" and residuals is not None:
            assert set(residuals.values()) == {"0"}, outcome.claim.name


def test_report_counts_and_exit_status(report: proofs.Report) -> None:
    counts = report.counts()
    assert counts["fail"] == 0
    assert counts["pass"] + counts["pending"] == len(NAMES)
    assert report.exit_status() == 0
    assert report.exit_status(strict=True) == (1 if counts["pending"] else 0)


def test_docs_pages_render_every_claim(report: proofs.Report) -> None:
    for family in proofs.FAMILIES:
        page = proofs.render_markdown(family, report)
        for outcome in report.outcomes:
            if outcome.claim.family == family:
                assert f"Claim `{outcome.claim.name}`" in page
                assert f"{_render.TEST_FILE}::{_render.TEST_FUNCTION}[{outcome.claim.name}]" in page
                assert f"proofs/{outcome.claim.name}.py" in page


def test_committed_docs_cover_the_catalogue() -> None:
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / _render.DOCS_DIR
    assert (root / "index.md").is_file()
    for claim in proofs.catalogue():
        page = (root / f"{claim.family}.md").read_text(encoding="utf-8")
        assert f"Claim `{claim.name}`" in page, f"regenerate docs/theory: {claim.name} missing"
