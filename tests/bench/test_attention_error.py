"""The attention bench's error references: the uniform-attention baseline, the input scale and
the positive estimator's analytic spread, each against an independent computation."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from kernelapprox.bench.attention import (
    Case,
    Sweep,
    error_references,
    input_scale,
    kernel_relative_sd,
    make_inputs,
    uniform_attention,
)

CASE = Case("ours", "fwd", 24, 8, 16, batch=2, heads=3, causal=True, seed=3)


def _direct_uniform(v: torch.Tensor, causal: bool) -> torch.Tensor:
    """Token by token: the mean of the visible values."""
    T = v.shape[-2]
    rows = [v[..., : (t + 1 if causal else T), :].mean(-2) for t in range(T)]
    return torch.stack(rows, dim=-2)


@pytest.mark.parametrize("causal", [True, False])
def test_uniform_attention_is_the_mean_of_the_visible_values(causal: bool) -> None:
    _, _, v = make_inputs(CASE)
    v = v.double()
    got = uniform_attention(v, causal=causal)
    torch.testing.assert_close(got, _direct_uniform(v, causal), rtol=1e-12, atol=1e-12)
    # softmax attention with all-zero queries puts equal weight on every visible key
    zeros = torch.zeros_like(v)
    sdpa = torch.nn.functional.scaled_dot_product_attention(zeros, v, v, is_causal=causal)
    torch.testing.assert_close(got, sdpa, rtol=1e-12, atol=1e-12)


def test_error_references_are_the_direct_errors() -> None:
    q, k, v = (x.double() for x in make_inputs(CASE))
    scores = q @ k.transpose(-1, -2) / math.sqrt(CASE.head_dim)
    future = torch.ones(CASE.T, CASE.T, dtype=torch.bool).triu(1)
    weights = torch.where(future, -math.inf, scores).softmax(-1)
    exact = weights @ v
    diff = _direct_uniform(v, True) - exact
    expected_uniform = float(diff.norm() / exact.norm())
    expected_scale = float((q**2).sum(-1).mean()) / math.sqrt(CASE.head_dim)

    got_exact, refs = error_references(CASE)
    torch.testing.assert_close(got_exact.double(), exact, rtol=1e-5, atol=1e-5)  # float32 SDPA
    assert refs["uniform_error"] == pytest.approx(expected_uniform, rel=1e-5)
    assert refs["input_scale"] == pytest.approx(expected_scale, rel=1e-6)
    assert input_scale(CASE, q) == pytest.approx(expected_scale, rel=1e-12)
    # the expectation of |q|^2 / sqrt(d) is s^2 sqrt(d) (chi-square, SE from its variance 2d)
    # |q|^2 / s^2 is chi-square with d degrees of freedom (variance 2d) for each of n tokens
    s, d, n = 2.0, CASE.head_dim, CASE.batch * CASE.heads * CASE.T
    se = s**2 * math.sqrt(2 * d / n) / math.sqrt(d)
    big = replace(CASE, input_std=s)
    assert abs(input_scale(big, make_inputs(big)[0]) - s**2 * math.sqrt(d)) < 5 * se


def test_kernel_relative_sd_matches_monte_carlo() -> None:
    """One pair (T = 1): the relative SD of m-feature positive estimates of exp(q.k/sqrt(d))
    over i.i.d. frequency draws, against the function's closed form within 5 SE."""
    case = Case("ours", "fwd", 1, 8, 4, batch=1, heads=1, input_std=0.6, seed=1)
    q, k, _ = (x.double().reshape(-1) for x in make_inputs(case))
    x, y = q * case.head_dim**-0.25, k * case.head_dim**-0.25
    target = math.exp(float(x @ y))
    rng = np.random.default_rng(7)
    draws = 40_000
    w = torch.as_tensor(rng.standard_normal((draws, case.n_features, case.head_dim)))
    phi_x = torch.exp(w @ x - 0.5 * float(x @ x))
    phi_y = torch.exp(w @ y - 0.5 * float(y @ y))
    estimates = (phi_x * phi_y).mean(-1) / target  # (draws,), mean 1
    dev = (estimates - 1.0).numpy()  # the target is known: the mean is not estimated
    variance = float(np.mean(dev**2))
    variance_se = float(np.std(dev**2) / math.sqrt(draws))
    predicted = kernel_relative_sd(case, q.reshape(1, 1, 1, -1), k.reshape(1, 1, 1, -1)) ** 2
    assert abs(variance - predicted) < 5 * variance_se, (variance, variance_se, predicted)
    # and the estimator is unbiased: the mean is 1 within 5 SE
    assert abs(float(estimates.mean()) - 1.0) < 5 * float(estimates.std()) / math.sqrt(draws)


def test_sweep_rows_carry_the_references() -> None:
    sweep = Sweep(lengths=(16,), head_dims=(8,), feature_multipliers=(2,), impls=("ours", "sdpa"),
                  heads=2, repeats=1)  # fmt: skip
    rows = sweep.run()
    assert [r["impl"] for r in rows] == ["ours", "sdpa"]
    case = Case("ours", "fwd", 16, 8, 16, batch=1, heads=2)
    _, refs = error_references(case)
    q, k, _ = make_inputs(case)
    for row in rows:
        assert row["uniform_error"] == refs["uniform_error"]
        assert row["input_scale"] == refs["input_scale"]
    assert rows[0]["kernel_rel_sd"] == kernel_relative_sd(case, q, k)
    assert "kernel_rel_sd" not in rows[1]  # exact attention estimates nothing
