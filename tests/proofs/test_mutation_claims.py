"""The claims added for mutation testing notice the bugs they were written for.

Each test plants one bug of the mutation catalogue (benchmarks/mutation.py) with monkeypatch
and asserts that the claim's verdict turns to ``fails`` with the message of the check that
should catch it; the references of the claims are checked against hand-derived values.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.linalg import hadamard

from kernelapprox.estimators import rates
from kernelapprox.features import exponential
from kernelapprox.sampling import orthogonal, qmc
from proofs import (
    compression_complement,
    feature_map_forms,
    gram_error_expectation,
    l2_discrepancies,
    lattice_cbc,
    rate_fit_interval,
    rho_momentum,
    sorf_law,
)


def test_exact_sorf_law_moments() -> None:
    # two products: sqrt(p) (H D1 H D2)_ij = (1/2) * (sum of 4 Rademacher signs) at p = 4,
    # E[S^4] = 3 * 4^2 - 2 * 4 = 40, so E[W^4] = 40 / 16
    assert np.mean(sorf_law.exact_sorf_law(products=2) ** 4) == pytest.approx(2.5, rel=1e-14)
    # one product: every entry is +-1
    assert np.all(np.abs(sorf_law.exact_sorf_law(products=1)) == pytest.approx(1.0))
    assert np.mean(sorf_law.exact_sorf_law() ** 4) == pytest.approx(1.75, rel=1e-14)


def test_sorf_with_two_blocks_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    def two_blocks(self, measure, n_features, dim, seed):
        rng = np.random.default_rng(seed)
        p = dim
        H = hadamard(p) / math.sqrt(p)
        M = math.sqrt(p) * np.eye(p)
        for _ in range(2):
            M = M @ H @ np.diag(rng.choice([-1.0, 1.0], size=p))
        return M[:n_features]

    monkeypatch.setattr(orthogonal.StructuredOrthogonal, "draw", two_blocks)
    verdict = sorf_law.run()
    assert verdict.status == "fails" and "E[Wᵢⱼ⁴]" in verdict.summary


def test_cbc_reference_and_bound() -> None:
    # d = 1: z = (1,), e^2 = gamma 2 pi^2 (1/n) sum_k B2(k/n) = gamma pi^2 / (3 n^2)
    n = 13
    assert lattice_cbc.squared_worst_case_error((1,), n) == pytest.approx(
        lattice_cbc.WEIGHT * math.pi**2 / (3 * n**2), rel=1e-12
    )
    # z_2 = 1 repeats the first component: never optimal for n = 47 (z_2 = n - 1 ties it)
    assert lattice_cbc.cbc_excess((1, 1), 47) > 1e-3
    assert lattice_cbc.cbc_excess((1, 1), 47) == lattice_cbc.cbc_excess((1, 46), 47)
    z = qmc.cbc_generating_vector(47, 6)
    assert lattice_cbc.squared_worst_case_error(z, 47) <= lattice_cbc.cbc_bound(47, 6)


def test_unshifted_lattice_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(qmc.Lattice, "points", lambda self, n, d, seed: _base(n, d))
    verdict = lattice_cbc.run()
    assert verdict.status == "fails" and "not shifted" in verdict.summary


def _base(n: int, d: int) -> np.ndarray:
    z = np.asarray(qmc.cbc_generating_vector(n, d))
    return (np.outer(np.arange(n), z) % n) / n


@pytest.mark.parametrize(
    "weight",
    [
        lattice_cbc.WEIGHT / 2,  # pi^2 instead of 2 pi^2 in the criterion
        lattice_cbc.WEIGHT / (1 + lattice_cbc.WEIGHT * math.pi**2 / 3),  # B_2 + 1/6
    ],
)
def test_cbc_with_another_criterion_fails(monkeypatch: pytest.MonkeyPatch, weight: float) -> None:
    real = qmc.cbc_generating_vector
    monkeypatch.setattr(
        lattice_cbc, "cbc_generating_vector", lambda n, d: real(n, d, weight=weight)
    )
    verdict = lattice_cbc.run()
    assert verdict.status == "fails" and "misses the component-wise optimum" in verdict.summary


def test_rate_fit_with_n_minus_1_dof_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    real = rates.fit_rate

    def narrow(n_features, errors, level=0.95):
        fit = real(n_features, errors, level=level)
        if np.ndim(errors) > 1:
            return fit
        k = np.size(n_features)
        ratio = math.sqrt((k - 2) / (k - 1))  # the residual variance over n - 1
        ratio *= rates.stats.t.ppf(0.975, k - 1) / rates.stats.t.ppf(0.975, k - 2)
        half = (fit.ci_high - fit.slope) * ratio
        return rates.RateFit(
            fit.slope, fit.stderr * math.sqrt((k - 2) / (k - 1)), fit.slope - half,
            fit.slope + half, fit.intercept, fit.level, fit.points, fit.replications,
        )  # fmt: skip

    monkeypatch.setattr(rate_fit_interval, "fit_rate", narrow)
    verdict = rate_fit_interval.run()
    assert verdict.status == "fails"
    assert "stderr differs" in verdict.summary and "coverage" in verdict.summary


def test_hyperbolic_with_half_instead_of_root_half_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    base = exponential._Exponential.log_row_scale
    monkeypatch.setattr(
        exponential.Hyperbolic, "log_row_scale", lambda self, u, t: base(self, u, t) - math.log(2.0)
    )
    verdict = feature_map_forms.run()
    assert verdict.status == "fails" and "hyperbolic values" in verdict.summary


def test_sincos_gradient_branch_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    real = feature_map_forms.SinCos._trig_blocks

    def cos_twice_with_autograd(self, phase, t, inplace):
        if inplace:
            return real(self, phase, t, inplace)
        return torch.stack((torch.cos(phase), torch.cos(phase)), dim=-2).transpose(-1, -2)

    monkeypatch.setattr(feature_map_forms.SinCos, "_trig_blocks", cos_twice_with_autograd)
    verdict = feature_map_forms.run()
    assert verdict.status == "fails" and "sincos values (autograd)" in verdict.summary
    assert "sincos values differ" not in verdict.summary  # the in-place branch is intact


def test_gram_error_over_the_estimate_norm_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    def over_estimate_norm(K_hat, K):
        return float(np.linalg.norm(K_hat - K) / np.linalg.norm(K_hat))

    monkeypatch.setattr(gram_error_expectation, "relative_frobenius", over_estimate_norm)
    verdict = gram_error_expectation.run()
    assert verdict.status == "fails" and "relative_frobenius differs" in verdict.summary


def test_gram_error_expectation_closed_form() -> None:
    # two points at distance z: Var K_12 = (1 + e^{-2 z^2} - 2 e^{-z^2}) / (2m), diagonal exact
    z2, m = 0.8, 4
    X = np.array([[0.0, 0.0, 0.0], [np.sqrt(z2), 0.0, 0.0]])
    var = (1 + np.exp(-2 * z2) - 2 * np.exp(-z2)) / (2 * m)
    expected = 2 * var / (2 + 2 * np.exp(-z2))
    assert gram_error_expectation.expected_squared_error(X, m) == pytest.approx(expected, rel=1e-13)


def test_centred_discrepancy_with_a_wrong_constant_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    from kernelapprox import discrepancy

    def wrong_constant(points, *, weights=None, squared=False):
        d = np.shape(points)[1]
        value = discrepancy.centered(points, weights=weights, squared=True)
        return value + (13 / 12) ** (d - 1) - (13 / 12) ** d  # (13/12)^(d-1) as the constant

    name = "centered"
    _, method, power = l2_discrepancies.METHODS[name]
    monkeypatch.setitem(l2_discrepancies.METHODS, name, (wrong_constant, method, power))
    verdict = l2_discrepancies.run()
    assert verdict.status == "fails" and "centered d=1 n=7 vs scipy" in verdict.summary


def test_rho_without_momentum_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    real = rho_momentum.rho_trajectory

    def without_momentum(**kwargs):
        return real(**{**kwargs, "momentum": 0.0})

    monkeypatch.setattr(rho_momentum, "rho_trajectory", without_momentum)
    verdict = rho_momentum.run()
    assert verdict.status == "fails" and "momentum=0.9" in verdict.summary
    assert "momentum=0.0," not in verdict.summary  # plain GD is unaffected


def test_complement_with_rho_to_the_depth_minus_one_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    def one_power_short(compressed, rho):
        return rho ** (compressed.depth - 1) * compressed.complement

    monkeypatch.setattr(compression_complement, "complement_term", one_power_short)
    verdict = compression_complement.run()
    assert verdict.status == "fails" and "full map differs" in verdict.summary
