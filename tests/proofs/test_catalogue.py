"""Run the whole catalogue once and check every claim's verdict and record.

A claim that reports ``pending`` is skipped (shown as skipped, never as a pass), and only
claims that require an optional dependency outside the package may be pending: package code
that does not import fails its claim.
"""

from __future__ import annotations

import cProfile
import importlib
import inspect
import json
import types

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


#: Claims whose ``verifies=`` may name whole modules (none now): there some function defined in
#: each module must be called; everywhere else each entry is a function, method or class of the
#: package and must itself be called.
MODULE_TAGS_ALLOWED: set[str] = set()

#: The code objects each claim's check called, recorded by a profile hook (cProfile).
CALLED: dict[str, set[types.CodeType]] = {}


@pytest.fixture(scope="module")
def report() -> proofs.Report:
    """Run the catalogue once, each claim under cProfile so that its calls are recorded."""
    outcomes = []
    for claim in proofs.catalogue():
        profiler = cProfile.Profile()
        profiler.enable()
        try:
            outcomes.append(proofs.evaluate(claim))
        finally:
            profiler.disable()
        CALLED[claim.name] = {
            e.code for e in profiler.getstats() if isinstance(e.code, types.CodeType)
        }
    return proofs.Report(tuple(outcomes))


def resolve(dotted: str) -> object:
    """The object a dotted name denotes: the longest importable module prefix, then attributes."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            obj = inspect.getattr_static(obj, attr) if inspect.isclass(obj) else getattr(obj, attr)
        return obj
    raise ImportError(f"{dotted}: no importable module prefix")


def _function_code(obj: object) -> types.CodeType | None:
    if isinstance(obj, (staticmethod, classmethod)):
        obj = obj.__func__
    if isinstance(obj, property):
        obj = obj.fget
    obj = inspect.unwrap(obj) if callable(obj) else obj
    return getattr(obj, "__code__", None)


def called_codes_of(dotted: str) -> tuple[set[types.CodeType], str]:
    """Code objects any of which counts as "called" for the tag, and what kind the tag is."""
    obj = resolve(dotted)
    if inspect.ismodule(obj):
        codes = {
            c
            for v in vars(obj).values()
            if (inspect.isfunction(v) or inspect.isclass(v))
            and getattr(v, "__module__", None) == obj.__name__
            for c in ([_function_code(v)] if inspect.isfunction(v) else
                      [_function_code(m) for m in vars(v).values()])
            if c is not None
        }  # fmt: skip
        return codes, "module"
    if inspect.isclass(obj):
        codes = {_function_code(m) for m in vars(obj).values()} - {None}
        return codes, "class"  # type: ignore[return-value]
    code = _function_code(obj)
    if code is None:
        raise TypeError(f"{dotted} is not a function, method, class or module")
    return {code}, "function"


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


@pytest.mark.parametrize("name", NAMES)
def test_claim_calls_every_function_it_verifies(
    name: str, outcomes: dict[str, proofs.Outcome]
) -> None:
    """A ``verifies=`` tag cannot lie: running the claim calls every function it names."""
    claim = outcomes[name].claim
    assert claim.verifies, f"{name}: say which package code the claim checks"
    called = CALLED[name]
    for dotted in claim.verifies:
        assert dotted.startswith("kernelapprox."), f"{name}: {dotted} is not package code"
        codes, kind = called_codes_of(dotted)
        if kind == "module":
            assert name in MODULE_TAGS_ALLOWED, f"{name}: {dotted} is a module; name functions"
        if kind == "function":
            obj = inspect.unwrap(resolve(dotted))
            qualified = f"{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', '')}"
            assert qualified == dotted, f"{name}: {dotted} is defined as {qualified}"
        assert codes & called, f"{name}: running the claim never calls {dotted}"


def test_the_call_check_detects_a_function_that_is_not_called() -> None:
    """The hook is not vacuous: a claim that calls nothing of the package calls no tag."""
    profiler = cProfile.Profile()
    profiler.enable()
    proofs.select(["dct_orthogonal"])[0].check()
    profiler.disable()
    called = {e.code for e in profiler.getstats() if isinstance(e.code, types.CodeType)}
    dct, _ = called_codes_of("kernelapprox.features.dct.dct2_ortho")
    unrelated, _ = called_codes_of("kernelapprox.discrepancy.star_discrepancy_1d")
    assert dct & called and not unrelated & called


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
