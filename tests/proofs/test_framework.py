"""The catalogue's machinery and the helpers the claims rely on, including checks that the
helpers detect false statements (so a claim cannot pass vacuously)."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import sys
import types

import numpy as np
import pytest
import sympy as sp
import torch
from hypothesis import given
from hypothesis import strategies as st

import proofs
from proofs import _registry
from proofs._numerical import Checks, numerical_claim, z_score
from proofs._symbolic import expect_normal, residual


def _claim(
    status: str = "holds",
    *,
    expected: str = "holds",
    name: str = "fake_claim",
    method: str | None = None,
    raises: bool = False,
    requires: tuple[str, ...] = ("an_optional_extra",),
) -> proofs.Claim:
    def run(*, thorough: bool = False) -> proofs.Verdict:
        if raises:
            raise RuntimeError("boom")
        return proofs.Verdict(status, f"fake evidence ({status})", {"x": np.float64(1.5)})

    return proofs.Claim(
        name=name,
        title="A fake claim",
        statement="$1 = 1$",
        source="test",
        family="qmc",
        method=method or ("refuted" if expected == "refuted" else "symbolic"),
        expected=expected,
        run=run,
        module=__name__,
        requires=requires,
    )


# --- records ---------------------------------------------------------------------------------


def test_verdict_validates_status_and_jsonifies_evidence() -> None:
    with pytest.raises(ValueError, match="status must be one of"):
        proofs.Verdict("maybe", "x")
    with pytest.raises(ValueError, match="summary"):
        proofs.Verdict("holds", " ")
    v = proofs.Verdict("holds", "ok", {"a": np.float32(2.0), "b": np.arange(3), "c": np.inf})
    assert json.loads(json.dumps(v.as_dict()))["evidence"] == {"a": 2.0, "b": [0, 1, 2], "c": "inf"}


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("method", "guess", "method must be one of"),
        ("expected", "pending", "expected must be one of"),
        ("family", "misc", "family must be one of"),
        ("statement", "no latex", "LaTeX"),
        ("name", "Bad Name", "lower-case identifier"),
    ],
)
def test_claim_rejects_bad_fields(field: str, value: str, message: str) -> None:
    fields = dict(
        name="x",
        title="t",
        statement="$a$",
        source="s",
        method="symbolic",
        expected="holds",
        family="qmc",
        run=lambda **_: None,
        module="m",
    )
    fields[field] = value
    with pytest.raises(ValueError, match=message):
        proofs.Claim(**fields)


def test_refuted_method_goes_with_refuted_expectation() -> None:
    with pytest.raises(ValueError, match="refuted"):
        _claim(expected="holds", method="refuted")
    with pytest.raises(ValueError, match="refuted"):
        _claim(expected="refuted", method="symbolic")
    with pytest.raises(ValueError, match="seed"):
        _claim(method="numerical")


def test_docstring_section() -> None:
    doc = "Title.\n\nStatement\n---------\n  $x$ line\n  more\n\nSource\n------\nsrc\n"
    assert proofs.docstring_section(doc, "Statement") == "$x$ line\nmore"
    assert proofs.docstring_section(doc, "Source") == "src"
    assert proofs.docstring_section(doc, "Method") == ""


# --- runner and exit policy -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "expected", "result"),
    [
        ("holds", "holds", "pass"),
        ("refuted", "refuted", "pass"),
        ("refuted", "holds", "fail"),
        ("holds", "refuted", "fail"),
        ("fails", "holds", "fail"),
        ("pending", "holds", "pending"),
    ],
)
def test_outcome_result(status: str, expected: str, result: str) -> None:
    assert proofs.evaluate(_claim(status, expected=expected)).result == result


def test_import_error_of_package_code_fails_never_pending(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # try_import of a package module lets the ImportError through ...
    with pytest.raises(ImportError):
        proofs.try_import("kernelapprox._no_such_module")
    # ... while a missing optional dependency outside the package is reported
    module, reason = proofs.try_import("no_such_optional_extra_xyz")
    assert module is None and "no_such_optional_extra_xyz is not installed" in reason

    def run(*, thorough: bool = False) -> proofs.Verdict:
        proofs.try_import("kernelapprox._no_such_module")
        raise AssertionError("unreachable")

    claim = dataclasses.replace(_claim(), run=run, requires=("kernelapprox._no_such_module",))
    outcome = proofs.evaluate(claim)
    assert outcome.verdict.status == "fails" and outcome.result == "fail"
    assert "package code failed to import" in outcome.verdict.summary
    assert "kernelapprox._no_such_module" in outcome.verdict.summary
    # a claim that says "pending" on package code only is a failure as well
    pending = _claim("pending", requires=("kernelapprox.discrepancy",))
    assert proofs.evaluate(pending).result == "fail"
    # a real claim whose package module cannot be imported fails, and the run exits 1
    from proofs import box_weights_discrepancy

    monkeypatch.setitem(sys.modules, "kernelapprox.discrepancy", None)
    report = proofs.run_claims([box_weights_discrepancy.CLAIM], progress=False)
    assert report.outcomes[0].result == "fail" and report.exit_status() == 1
    assert "package code failed to import" in report.outcomes[0].verdict.summary


def test_claim_module_that_does_not_import_is_a_failing_claim(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # koksma_hlawka_1d imports kernelapprox.discrepancy at module level
    monkeypatch.delitem(sys.modules, "proofs.koksma_hlawka_1d", raising=False)
    monkeypatch.setitem(sys.modules, "kernelapprox.discrepancy", None)
    claims = {c.name: c for c in _registry.catalogue()}
    broken = claims["koksma_hlawka_1d"]
    assert broken.family == "qmc" and broken.expected == "holds"
    assert "Koksma" in broken.title or "discrepancy" in broken.statement.lower()
    outcome = proofs.evaluate(broken)
    assert outcome.result == "fail" and "package code failed to import" in outcome.verdict.summary
    monkeypatch.delitem(sys.modules, "proofs.koksma_hlawka_1d", raising=False)


def test_exception_becomes_fails_with_the_error() -> None:
    outcome = proofs.evaluate(_claim(raises=True))
    assert outcome.verdict.status == "fails" and outcome.result == "fail"
    assert "RuntimeError: boom" in outcome.verdict.summary


def test_exit_status_policy() -> None:
    ok = proofs.run_claims([_claim()], progress=False)
    pending = proofs.run_claims([_claim(), _claim("pending", name="p")], progress=False)
    failing = proofs.run_claims([_claim(), _claim("fails", name="f")], progress=False)
    assert ok.exit_status() == 0 and ok.exit_status(strict=True) == 0
    assert pending.exit_status() == 0 and pending.exit_status(strict=True) == 1
    assert failing.exit_status() == 1
    assert pending.counts() == {"pass": 1, "pending": 1, "fail": 0}


def test_select_by_name_and_family() -> None:
    assert [c.name for c in proofs.select(["bochner_gaussian"])] == ["bochner_gaussian"]
    assert {c.family for c in proofs.select(family="dijiang")} == {"dijiang"}
    with pytest.raises(ValueError, match=r"valid names: .*bochner_gaussian"):
        proofs.select(["no_such_claim"])
    with pytest.raises(ValueError, match="family must be one of"):
        proofs.select(family="astrology")


def test_formats() -> None:
    report = proofs.run_claims(
        [_claim(), _claim("pending", name="p"), _claim("fails", name="f")], progress=False
    )
    text = proofs.format_report(report, "text")
    assert text.splitlines()[0].split() == [
        "claim",
        "source",
        "method",
        "verdict",
        "evidence",
        "time",
    ]
    assert "PENDING" in text and "FAILS (expected holds)" in text and "exit status 1" in text
    payload = json.loads(proofs.format_report(report, "json"))
    assert [c["result"] for c in payload["claims"]] == ["pass", "pending", "fail"]
    assert payload["exit_status"] == 1 and payload["counts"]["pending"] == 1
    md = proofs.format_report(report, "markdown")
    assert md.count("\n| `") == 3
    with pytest.raises(ValueError, match="format must be one of"):
        proofs.format_report(report, "yaml")


# --- helpers: they must detect false statements ---------------------------------------------


def test_expect_normal_detects_a_wrong_formula() -> None:
    w, d = sp.Symbol("w", real=True), sp.Symbol("d", real=True)
    assert residual(expect_normal(sp.cos(w * d), [w]), sp.exp(-(d**2) / 2)) == 0
    assert residual(expect_normal(sp.cos(w * d), [w]), sp.exp(-(d**2))) != 0
    with pytest.raises(ValueError, match="not coeff"):
        expect_normal(w * sp.exp(w), [w])


def test_dct_check_detects_a_non_orthogonal_matrix() -> None:
    from proofs.dct_orthogonal import gram_defect

    assert gram_defect(6) == []
    assert gram_defect(5, angle=2)


def test_chunked_algorithm_matches_a_numeric_recurrence() -> None:
    from proofs.chunked_linear_attention import chunked, quadratic_form

    rng = np.random.default_rng(0)
    q, k, v, s0 = (rng.standard_normal(s) for s in ((5, 2), (5, 2), (5, 3), (2, 3)))
    state, outs = s0.copy(), []
    for t in range(5):  # S_t = S_{t-1} + k_t^T v_t, o_t = q_t S_t
        state = state + np.outer(k[t], v[t])
        outs.append(q[t] @ state)
    m = [sp.Matrix(a) for a in (q, k, v, s0)]
    for algo in (lambda: quadratic_form(*m), lambda: chunked(*m, 2)):
        out, final = algo()
        np.testing.assert_allclose(np.array(out, dtype=float), np.array(outs), rtol=1e-12)
        np.testing.assert_allclose(np.array(final, dtype=float), state, rtol=1e-12)
    # non-causal: every query sees every key
    out, _ = quadratic_form(*m, causal=False)
    np.testing.assert_allclose(np.array(out, dtype=float), q @ state, rtol=1e-12)


def test_package_gap_detects_a_wrong_package_function() -> None:
    from proofs._symbolic import AGREEMENT_RTOL, input_grid, package_gap, residual_verdict

    x = sp.Symbol("x", real=True)
    grid = input_grid(8, 1)
    exact = package_gap(sp.exp(-(x**2) / 2), (x,), grid, lambda p: np.exp(-(p[:, 0] ** 2) / 2))
    off = package_gap(sp.exp(-(x**2) / 2), (x,), grid, lambda p: np.exp(-(p[:, 0] ** 2) / 2.001))
    assert exact <= 1e-15 and off > AGREEMENT_RTOL
    assert package_gap(x, (x,), grid, lambda p: np.full(len(p), np.nan)) == float("inf")
    verdict = residual_verdict({"r": sp.Integer(0)}, "t", package_gaps={"f": off})
    assert verdict.status == "fails" and "disagrees" in verdict.summary


@given(st.lists(st.floats(0.0, 1.0, exclude_max=True), min_size=1, max_size=40, unique=True))
def test_star_discrepancy_closed_form_equals_definition(points: list[float]) -> None:
    from kernelapprox.discrepancy import star_discrepancy_1d
    from proofs.koksma_hlawka_1d import star_discrepancy_by_definition

    x = np.array(points)
    assert star_discrepancy_1d(x) == pytest.approx(star_discrepancy_by_definition(x), abs=1e-9)


def test_normal_radii_limit_matches_monte_carlo() -> None:
    from proofs._pff import input_pair, normal_radii_limit, pff_estimate, pff_frequencies

    x, y = input_pair(3, 4, 0.7)
    seeds = np.random.SeedSequence(5).spawn(50)
    est = [pff_estimate(x, y, pff_frequencies(s, 4000, 4, radial="normal")) for s in seeds]
    assert abs(np.mean(est) - normal_radii_limit(x, y)) < 5 * np.std(est) / np.sqrt(50)
    with pytest.raises(ValueError, match="radial"):
        pff_frequencies(seeds[0], 2, 2, radial="cauchy")


def test_pff_frequencies_have_the_stated_radius_laws() -> None:
    """chi radii: w ~ N(0, I_d) (|w|^2 ~ chi^2_d); normal radii: r^2 = |w|^2 ~ chi^2_1."""
    from scipy import stats

    from proofs._pff import pff_frequencies

    seed = np.random.SeedSequence(8)
    chi = pff_frequencies(seed, 4000, 5, radial="chi")
    normal = pff_frequencies(seed, 4000, 5, radial="normal")
    assert stats.kstest((chi**2).sum(1), stats.chi2(5).cdf).pvalue > 1e-4
    assert stats.kstest((normal**2).sum(1), stats.chi2(1).cdf).pvalue > 1e-4
    # directions are shared and uniform: the first coordinate of v has mean 0
    v = normal / np.linalg.norm(normal, axis=1, keepdims=True)
    assert abs(v[:, 0].mean()) < 5 * v[:, 0].std() / np.sqrt(4000)


# --- dependency-gated claims: pending until the module exists, then the real check --------


def _fake_module(monkeypatch: pytest.MonkeyPatch, name: str, **attrs: object) -> None:
    module = types.ModuleType(name)
    for key, value in attrs.items():
        setattr(module, key, value)
    monkeypatch.setitem(sys.modules, name, module)


def test_box_weights_claim_pending_then_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    from proofs import box_weights_discrepancy as claim

    monkeypatch.setitem(sys.modules, "kernelapprox.discrepancy", None)
    with pytest.raises(ImportError):
        claim.run()

    def box(frequencies, *, scale, b, weights=None, squared=False):  # weighted is worse
        return 1.0 if weights is None else 2.0

    def box_weights(frequencies, *, scale, b=None, sum_to_one=False):
        return np.full(len(frequencies), 1.0 / len(frequencies))

    _fake_module(monkeypatch, "kernelapprox.discrepancy", box=box)
    _fake_module(monkeypatch, "kernelapprox.sampling", weights=None)
    _fake_module(monkeypatch, "kernelapprox.sampling.weights", box_weights=box_weights)
    verdict = claim.run()
    assert verdict.status == "fails" and "weighted" in verdict.summary


def test_closed_form_box_discrepancy_is_nonnegative_and_minimised_by_weights() -> None:
    from proofs.box_weights_discrepancy import closed_form_squared_1d

    nodes = np.random.default_rng(2).standard_normal(12)
    uniform = np.full(12, 1 / 12)
    d2 = closed_form_squared_1d(nodes, uniform, 3.0)
    assert d2 > 0
    # the optimal weights of the quadratic D^2(xi) cannot do worse than uniform
    grid = [
        closed_form_squared_1d(nodes, uniform + t * (np.eye(12)[0] - uniform), 3.0)
        for t in np.linspace(-0.5, 0.5, 11)
    ]
    assert min(grid) <= d2 + 1e-15


def test_invariant_subspace_claim_uses_the_dynamics_result(monkeypatch: pytest.MonkeyPatch) -> None:
    import kernelapprox.dynamics as dynamics
    from proofs import invariant_subspace as claim

    monkeypatch.delattr(dynamics, "verify_invariant_subspace", raising=False)
    with pytest.raises(ImportError, match="verify_invariant_subspace"):
        claim.run()
    good = {
        "invariance_error": 1e-14,
        "trajectory_gap": 2e-14,
        "leakage": 1e-15,
        "adam_leakage": 0.9,
    }
    monkeypatch.setattr(dynamics, "verify_invariant_subspace", lambda **_: good, raising=False)
    assert claim.run().status == "holds"
    bad = dict(good, adam_leakage=1e-6)
    monkeypatch.setattr(dynamics, "verify_invariant_subspace", lambda **_: bad, raising=False)
    assert claim.run().status == "fails"


class _LowRankAttention(torch.nn.Module):
    def __init__(self, d_model: int, heads: int, *, rank: int, full: bool = False) -> None:
        super().__init__()
        width = heads * (d_model // heads)

        def proj(n_in: int, n_out: int) -> torch.nn.Module:
            if full:
                return torch.nn.Linear(n_in, n_out)
            return torch.nn.Sequential(torch.nn.Linear(n_in, rank), torch.nn.Linear(rank, n_out))

        self.q_proj, self.k_proj = proj(d_model, width), proj(d_model, width)
        self.v_proj, self.o_proj = proj(d_model, width), proj(width, d_model)


def test_lpa_claim_checks_the_rank(monkeypatch: pytest.MonkeyPatch) -> None:
    import kernelapprox.dynamics as dynamics
    from proofs import lpa_rank as claim

    monkeypatch.delattr(dynamics, "LowRankProjectedAttention", raising=False)
    with pytest.raises(ImportError, match="LowRankProjectedAttention"):
        claim.run()
    monkeypatch.setattr(dynamics, "LowRankProjectedAttention", _LowRankAttention, raising=False)
    assert claim.run().status == "holds"
    full = lambda d, h, *, rank: _LowRankAttention(d, h, rank=rank, full=True)  # noqa: E731
    monkeypatch.setattr(dynamics, "LowRankProjectedAttention", full, raising=False)
    assert claim.run().status == "fails"


def test_registry_rejects_a_module_without_claim(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_registry, "claim_module_names", lambda: ["broken"])
    _fake_module(monkeypatch, "proofs.broken")
    with pytest.raises(TypeError, match="CLAIM"):
        _registry.catalogue()


# --- the numerical-claim factory and seeds ---------------------------------------------------


SEEDED_RUN = """
def run(*, thorough=False, seed=7):
    checks = Checks()
    z = z_score(float(np.random.default_rng(seed).normal()), 0.0, 1.0)
    checks.within(z, 5, f"z = {z:+.1f}")
    return checks.verdict(f"z = {z:+.2f} (limit 5)", z=z, seed=seed)
"""


@pytest.fixture
def seeded_run(monkeypatch: pytest.MonkeyPatch):
    """The ``run`` of a fake claim module (with a Statement) that records its seed."""
    doc = "A fake seeded claim.\n\nStatement\n---------\n$z \\sim N(0, 1)$\n"
    module = types.ModuleType("fake_seeded_claim", doc)
    module.__dict__.update(np=np, Checks=Checks, z_score=z_score)
    exec(SEEDED_RUN, module.__dict__)
    monkeypatch.setitem(sys.modules, module.__name__, module)
    return module.run


def test_numerical_claim_takes_statement_module_and_method_from_its_run(seeded_run) -> None:
    claim = numerical_claim(
        seeded_run, name="fake_claim", title="t", source="s", family="qmc", seed=7,
        tolerance="5 SE",
    )  # fmt: skip
    assert claim.statement == "$z \\sim N(0, 1)$"
    assert claim.module == "fake_seeded_claim" and claim.method == "numerical"
    assert claim.takes_seed
    refuted = numerical_claim(
        seeded_run, name="fake_claim", title="t", source="s", family="qmc", seed=7,
        tolerance="5 SE", expected="refuted",
    )  # fmt: skip
    assert refuted.method == "refuted"
    assert claim.check().evidence["seed"] == 7 and claim.check(seed=9).evidence["seed"] == 9


def test_numerical_claim_rejects_a_run_that_cannot_be_reseeded(seeded_run) -> None:
    fields = dict(name="fake_claim", title="t", source="s", family="qmc", tolerance="5 SE")

    def unseeded(*, thorough: bool = False) -> proofs.Verdict:
        return proofs.Verdict("holds", "x")

    with pytest.raises(TypeError, match="keyword-only argument seed"):
        numerical_claim(unseeded, seed=7, **fields)
    with pytest.raises(ValueError, match="default seed 7 must be the recorded seed 8"):
        numerical_claim(seeded_run, seed=8, **fields)
    with pytest.raises(TypeError, match="seed of claim 'fake_claim' must be an integer"):
        numerical_claim(seeded_run, seed=7.0, **fields)
    with pytest.raises(ValueError, match="must be >= 0"):
        numerical_claim(seeded_run, seed=-1, **fields)
    with pytest.raises(TypeError, match="takes no seed"):
        _claim().check(seed=3)


def test_checks_collect_the_failed_tolerances() -> None:
    checks = Checks()
    assert checks.within(-4.9, 5, "a") and checks.require(True, "b") and checks.passed
    assert checks.verdict("all good", x=1).status == "holds"
    assert not checks.within(5.1, 5, "first off") and not checks.require(False, "second off")
    verdict = checks.verdict("all good", x=1)
    assert verdict.status == "fails" and verdict.summary == "first off; second off"
    assert checks.verdict("all good", failure="refuted").status == "refuted"
    assert z_score(3.0, 1.0, 0.5) == 4.0


def test_evaluate_offsets_the_recorded_seed_of_a_seeded_claim_only(seeded_run) -> None:
    seeded = numerical_claim(
        seeded_run, name="fake_claim", title="t", source="s", family="qmc", seed=7,
        tolerance="5 SE",
    )  # fmt: skip
    fixed = dataclasses.replace(_claim(name="fixed_claim", expected="refuted"), seed=5)
    outcome = proofs.evaluate(seeded, seed_offset=4)
    assert outcome.seed == 11 and outcome.reseeded and outcome.verdict.evidence["seed"] == 11
    assert outcome.as_dict()["seed"] == 11 and outcome.as_dict()["recorded_seed"] == 7
    assert proofs.evaluate(seeded).seed == 7 and not proofs.evaluate(seeded).reseeded
    kept = proofs.evaluate(fixed, seed_offset=4)
    assert kept.seed is None and kept.as_dict()["seed"] == 5 and not kept.reseeded
    report = proofs.run_claims([seeded, fixed], progress=False, seed_offset=4)
    assert report.seed_offset == 4 and report.fixed_seed_claims() == ["fixed_claim"]
    assert json.loads(proofs.format_json(report))["seed"] == 4
    assert "seed offset 4" in proofs.format_markdown(report)
    assert proofs.run_claims([fixed], progress=False).fixed_seed_claims() == []
    with pytest.raises(ValueError, match="seed_offset must be an integer >= 0"):
        proofs.evaluate(seeded, seed_offset=-1)
    with pytest.raises(TypeError, match="seed_offset must be an integer"):
        proofs.run_claims([seeded], progress=False, seed_offset=True)


def test_unimportable_numerical_claim_keeps_its_method_and_seed(tmp_path, monkeypatch) -> None:
    source = (
        '"""Broken.\n\nStatement\n---------\n$1 = 1$\n"""\n'
        "import kernelapprox.no_such_module\n\nSEED = 123\n\n"
        'CLAIM = numerical_claim(run, name="broken_claim", title="Broken", source="s", '
        'family="qmc", seed=SEED, tolerance="t")\n'
    )
    (tmp_path / "broken_claim.py").write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location(
        "proofs.broken_claim", tmp_path / "broken_claim.py"
    )
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: spec)
    stand_in = _registry.unimportable_claim("broken_claim", ImportError("no module"))
    assert (stand_in.method, stand_in.expected, stand_in.seed) == ("numerical", "holds", 123)
