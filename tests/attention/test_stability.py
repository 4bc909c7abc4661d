"""Numerical stability of feature attention: large norms, low precision, signed maps.

Oracles (float64, no stabilization that could itself fail):

* exponential maps: the **log-space oracle** of the same map and frequencies,
  ``o_i = sum_j softmax_j(l_ij) v_j`` with ``l_ij = logsumexp_f(log phi_f(q_i) + log phi_f(k_j))``
  (``-inf`` for masked keys). It is exact in float64 at every norm (no product of features is
  ever formed), unlike the plain quadratic oracle, whose features ``exp(w.u - |u|^2/2)``
  underflow to 0 in float64 from about x30 on;
* trigonometric maps: the quadratic form with the row factor ``exp(|u|^2/2)`` of
  :meth:`FeatureMap.log_row_scale` kept as a per-key log weight, ``a_ij = exp(r_j - R_i)
  phi0(q_i) . phi0(k_j)`` with ``R_i = max_{j visible} r_j`` (the bounded row-free features
  ``phi0`` make that exact up to terms below ``e^-700``).

Tolerances (relative RMS, fla-style) are derived, not tuned. Inputs are rounded to the dtype
first and the oracle gets the same rounded values, so only the computation counts:

* the output is rounded to the input dtype: relative RMS at most ``u_in`` (unit roundoff);
* the computation runs in float32 (``_compute_dtype``; unit roundoff ``u_c = 2^-24``). A
  log-score is formed from numbers of magnitude up to ``L`` (the largest ``|r(u)| +
  max_f |h_f(u)|`` of the rounded inputs, ``log phi_f = r + h_f``) and sums of ``F`` features,
  so its absolute error is at most about ``u_c (L + F)``; a softmax-weighted mean moves by at
  most ``2 max|dl| max|v|`` under log-score errors ``dl``, i.e. a relative RMS of
  ``2 u_c (L + F) kappa_v`` with ``kappa_v = max|v| / rms(o)``.

So ``tol = u_in + 2 u_c (L + F) kappa_v``: at x1 ``L ~ 17``, at x100 ``L ~ 5e4`` (there the
problem itself is that ill-conditioned: rounding ``u`` to float32 moves the scores by
``u_c |u|^2``). Gradients get the same bound.

At x30 and x100 per-token log-scales are not enough (the products of two stabilized
features of exponential maps fall below float32's range when the query and its keys peak on
different features); attention detects it (:func:`kernelapprox.attention.maps.denominator_flags`)
and recomputes with per-feature references, so the same target holds there, with no warning.
Where no precision can deliver the ratio (weights below the dtype's range), a
:class:`NumericalWarning`, never a silent wrong answer.
"""

from __future__ import annotations

import math
import os
import warnings
from unittest import mock

import pytest
import torch
from attention_helpers import make_map, qkv

import kernelapprox.attention.functional as functional
from kernelapprox.attention import (
    AttentionState,
    combine_states,
    feature_attention,
    feature_attention_step,
    quadratic_oracle,
    relative_rms,
)
from kernelapprox.attention.maps import NumericalWarning, input_multiplier
from kernelapprox.features import Positive
from kernelapprox.kernels import Softmax

THOROUGH = os.environ.get("KERNELAPPROX_THOROUGH", "") not in ("", "0")
#: The issue's setting: B=2, T=96..200, H=2, D=32, m=64 (T=100: not a multiple of the chunk).
B, H, D, M = 2, 2, 32, 64
LENGTHS = (96, 200) if THOROUGH else (100,)
EXPONENTIAL = ("positive", "hyperbolic", "dct", "dct_released")
TRIGONOMETRIC = ("sincos", "cos_offset")
HALF_AND_SINGLE = (torch.float32, torch.float16, torch.bfloat16)
SCALES = (1, 10, 30, 100)
U_COMPUTE = 2.0**-24  # float32 compute for float16/bfloat16/float32 inputs


def _unit_roundoff(dtype: torch.dtype) -> float:
    return 0.5 * torch.finfo(dtype).eps


def _common_grid(x: torch.Tensor) -> torch.Tensor:
    """``x`` rounded to bfloat16, with ``|x| < 2^-14`` set to 0: exactly representable in
    bfloat16, float16 and float32, so one float64 oracle serves every dtype."""
    x = x.to(torch.bfloat16).to(torch.float64)
    x = torch.where(x.abs() < 2.0**-14, torch.zeros_like(x), x)
    assert torch.equal(x.to(torch.float16).to(torch.float64), x)
    return x


def _inputs(T: int, scale: float, dtype: torch.dtype, seed: int = 3):
    """``q, k`` scaled by ``scale`` and ``v`` in ``dtype``, and the same values in float64."""
    q, k, v = qkv(B, T, H, H, D, D, seed=seed)
    ins64 = [_common_grid(scale * q), _common_grid(scale * k), _common_grid(v)]
    return [x.to(dtype) for x in ins64], ins64


def _log_features(fm, x: torch.Tensor, t: dict, mult: float) -> torch.Tensor:
    """``log phi(x)``, ``(..., F)``: ``log sqrt(xi_f) + log g_f(u)`` with ``u = mult x``."""
    logs = fm.log_per_frequency(x * mult, t) + torch.log(t["sqrt_xi"])[:, None]
    return fm.flatten(logs)


def _visible(T: int, causal: bool) -> torch.Tensor:
    return torch.ones(T, T, dtype=torch.bool).tril() if causal else torch.ones(T, T).bool()


def _log_scores(q, k, fm, *, causal: bool, params: dict | None = None):
    """``l_ij = logsumexp_f(log phi_f(q_i) + log phi_f(k_j))``, ``-inf`` where not visible:
    ``(B, H, T_q, T_k)``."""
    t = fm.tensors(q.device, q.dtype) if params is None else params
    mult = input_multiplier(fm, 1.0 / math.sqrt(q.shape[-1]))
    lq = _log_features(fm, q, t, mult).transpose(1, 2)  # (B, H, T, F)
    lk = _log_features(fm, k, t, mult).transpose(1, 2)
    scores = torch.logsumexp(lq[:, :, :, None, :] + lk[:, :, None, :, :], dim=-1)
    return scores.masked_fill(~_visible(q.shape[1], causal), -math.inf)


def log_space_oracle(q, k, v, fm, *, causal: bool, params: dict | None = None):
    """Exponential maps in float64, exactly at any norm (see the module docstring)."""
    scores = _log_scores(q, k, fm, causal=causal, params=params)
    return torch.einsum("bhqk,bkhd->bqhd", torch.softmax(scores, dim=-1), v)


def _cancellation_gains(fm, q64, k64, g, *, causal: bool) -> tuple[float, float]:
    """``(A_q, A_k)``: where the exact ``dq``, ``dk`` nearly cancel, their error is set by
    the error of the output, not by their own size.

    The backward pass forms ``dl_ij = p_ij g_i . (v_j - o_i)`` from the computed ``o_i``.
    An error ``delta o_i`` moves it by ``-p_ij g_i . delta o_i``, and rounding the
    difference ``v_j - o_i`` by at most ``u_c p_ij |g_i| (|v_j| + |o_i|)``; summed over
    ``j`` (``sum_j p_ij = 1``) that is ``|g_i| e_i`` with ``e_i = |delta o_i| + 2 u_c
    max|v|``. So (first order) ``|delta dq_i| <= |g_i| e_i |G_i|`` with ``G_i = sum_j p_ij
    grad_{q_i} l_ij``, and ``|delta dk_j| <= Lambda_k sum_i p_ij |g_i| e_i`` with
    ``Lambda_k`` the largest ``|grad_k log phi_f(k)|``; with ``||P^T||_2 <= sqrt(c_max)``
    (``c_max`` the largest column sum of ``p``, rows sum to 1):

    ``||delta dq|| <= A_q ||e||``, ``A_q = max_i |g_i| |G_i|``, and
    ``||delta dk|| <= A_k ||e||``, ``A_k = Lambda_k sqrt(c_max) max_i |g_i|``.

    At x100 the softmax of every row is one-hot to within ``e^-100``: the exact ``dq``
    and ``dk`` are ~1e-60 and this is the whole allowance.
    """
    q = q64.detach().clone().requires_grad_()
    scores = _log_scores(q, k64, fm, causal=causal)
    p = torch.softmax(scores, dim=-1).detach()
    weighted = torch.where(p > 0, p * scores, torch.zeros_like(p))
    (G,) = torch.autograd.grad(weighted.sum(), q)  # (B, T, H, D): rows are independent
    g_rows = g.norm(dim=-1)  # (B, T, H)
    gain_q = float((g_rows * G.norm(dim=-1)).max())
    t = fm.tensors(k64.device, k64.dtype)
    mult = input_multiplier(fm, 1.0 / math.sqrt(k64.shape[-1]))
    x = k64.detach().reshape(-1, k64.shape[-1]).requires_grad_()
    logs = _log_features(fm, x, t, mult)  # (tokens, F): tokens are independent, so the
    lambda_k = max(  # gradient of a feature's sum over tokens is every token's gradient
        float(torch.autograd.grad(logs[:, f].sum(), x, retain_graph=True)[0].norm(dim=-1).max())
        for f in range(logs.shape[-1])
    )
    c_max = float(p.sum(dim=-2).max())
    return gain_q, lambda_k * math.sqrt(c_max) * float(g_rows.max())


def _output_error_norm(o, ref, v64) -> float:
    """``||e||``, ``e_i = |delta o_i| + 2 u_c max|v|`` (see :func:`_cancellation_gains`)."""
    rows = o.shape[0] * o.shape[1] * o.shape[2]
    rounding = 2.0 * U_COMPUTE * float(v64.abs().max()) * math.sqrt(rows)
    return float((o.detach().to(torch.float64) - ref.detach()).norm()) + rounding


def _row_free(fm, u: torch.Tensor, t: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """``(phi0(u) (B, H, T, F), r(u) (B, H, T))``: features without the row factor, and its
    log (0 for a map without one, e.g. ``identity``)."""
    r = fm.log_row_scale(u, t)
    blocks = fm.per_frequency(u, t) if r is None else fm.per_frequency(u, t, row_scale=False)
    r = torch.zeros(u.shape[:-1], dtype=u.dtype) if r is None else r
    return fm.weighted(blocks, t).transpose(1, 2), r.transpose(1, 2)


def row_scaled_oracle(q, k, v, fm, *, causal: bool):
    """Trigonometric (signed) maps in float64 with the row factor kept in log space."""
    t = fm.tensors(q.device, q.dtype)
    mult = input_multiplier(fm, 1.0 / math.sqrt(q.shape[-1]))
    (pq, _), (pk, rk) = _row_free(fm, q * mult, t), _row_free(fm, k * mult, t)
    seen = _visible(q.shape[1], causal)
    r = rk[:, :, None, :].expand(-1, -1, q.shape[1], -1).masked_fill(~seen, -math.inf)
    a = (pq @ pk.transpose(-1, -2)) * torch.exp(r - r.amax(-1, keepdim=True))
    num = torch.einsum("bhqk,bkhd->bqhd", a, v)
    return num / a.sum(-1).transpose(1, 2)[..., None]


def signed_condition_number(q, k, fm, *, causal: bool) -> float:
    """``max_i kappa_i``, ``kappa_i = sum_{j,f} |phi_f(q_i) phi_f(k_j)| / |den_i|``: how
    much the denominator's double sum amplifies relative errors of its terms (the rounding
    bound of a sum is ``gamma sum |terms|``; 1 for positive maps)."""
    t = fm.tensors(q.device, q.dtype)
    mult = input_multiplier(fm, 1.0 / math.sqrt(q.shape[-1]))
    (pq, _), (pk, rk) = _row_free(fm, q * mult, t), _row_free(fm, k * mult, t)
    seen = _visible(q.shape[1], causal)
    r = rk[:, :, None, :].expand(-1, -1, q.shape[1], -1).masked_fill(~seen, -math.inf)
    w = torch.exp(r - r.amax(-1, keepdim=True))
    den = ((pq @ pk.transpose(-1, -2)) * w).sum(-1)
    absolute = ((pq.abs() @ pk.abs().transpose(-1, -2)) * w).sum(-1)
    return float((absolute / den.abs()).max())


def _magnitude(fm, x64: torch.Tensor) -> float:
    """``L``: the largest ``|r(u)| + max_f |h_f(u)|`` over the tokens of ``x64`` (for the
    trigonometric maps ``h_f`` is the phase ``w_f . u``; 0 for ``identity``)."""
    t = fm.tensors(x64.device, torch.float64)
    u = x64 * input_multiplier(fm, 1.0 / math.sqrt(x64.shape[-1]))
    r = fm.log_row_scale(u, t)
    if fm.exponential:
        h = fm.log_per_frequency(u, t, row_scale=r is None).abs().amax(dim=(-2, -1))
    elif "W" in t:  # trigonometric: the phases w.u, whose rounding the cosines inherit
        h = (u @ t["W"].T).abs().amax(dim=-1)
    else:  # identity: relative rounding of the products only (the F term of the tolerance)
        h = torch.zeros(u.shape[:-1], dtype=u.dtype)
    return float((h if r is None else h + r.abs()).max())


def _compute_term(fm, q64, k64, v64, ref) -> float:
    """``2 u_c (L + F) kappa_v``: the float32 computation's share of the tolerance."""
    L = max(_magnitude(fm, q64), _magnitude(fm, k64))
    kappa_v = float(v64.abs().max() / ref.detach().square().mean().sqrt())
    return 2.0 * U_COMPUTE * (L + fm.output_dim) * kappa_v


def _tolerance(fm, dtype: torch.dtype, q64, k64, v64, ref) -> float:
    """``u_in + 2 u_c (L + F) kappa_v`` (module docstring)."""
    return _unit_roundoff(dtype) + _compute_term(fm, q64, k64, v64, ref)


def _run(fm, ins, causal: bool, **kw):
    """Output and gradients of ``sum(o * g)`` for a fixed ``g``; NumericalWarnings recorded."""
    ins = [x.detach().clone().requires_grad_() for x in ins]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", NumericalWarning)
        o = feature_attention(*ins, fm, causal=causal, **kw)
    g = _common_grid(torch.randn(o.shape, generator=torch.Generator().manual_seed(5)))
    grads = torch.autograd.grad((o.to(torch.float64) * g).sum(), ins)
    numerical = [w for w in caught if issubclass(w.category, NumericalWarning)]
    return o, grads, g, numerical


def _oracle_grads(oracle, ins64, g, **kw):
    ins64 = [x.detach().clone().requires_grad_() for x in ins64]
    ref = oracle(*ins64, **kw)
    ref = ref[0] if isinstance(ref, tuple) else ref  # quadratic_oracle: (o, state)
    return ref, torch.autograd.grad((ref * g).sum(), ins64)


def _check(what: str, actual, expected, tol: float) -> None:
    assert torch.isfinite(actual).all(), (
        f"{what}: {int((~torch.isfinite(actual)).sum())} non-finite entries"
    )
    err = relative_rms(actual, expected)
    assert err <= tol, f"{what}: relative RMS {err:.3g} > tolerance {tol:.3g}"


# ----------------------------------------------------------------------------- the oracles
@pytest.mark.parametrize("name", EXPONENTIAL)
@pytest.mark.parametrize("causal", [True, False])
def test_log_space_oracle_is_the_quadratic_oracle_where_that_one_is_finite(name, causal):
    fm = make_map(name, D, M, seed=1)
    _, (q, k, v) = _inputs(40, 1.0, torch.float64)
    expected, _ = quadratic_oracle(q, k, v, fm, causal=causal)
    assert relative_rms(log_space_oracle(q, k, v, fm, causal=causal), expected) < 1e-13


@pytest.mark.parametrize("name", TRIGONOMETRIC)
@pytest.mark.parametrize("causal", [True, False])
def test_row_scaled_oracle_and_gradients_equal_the_plain_quadratic_oracle(name, causal):
    """At x1 the plain features are finite: both oracles and feature_attention agree, with
    gradients (the row factor's gradient reaches q and k through the stabilized features)."""
    fm = make_map(name, D, M, seed=1)
    _, ins = _inputs(40, 1.0, torch.float64)
    o, grads, g, _ = _run(fm, ins, causal)
    ref, ref_grads = _oracle_grads(quadratic_oracle, ins, g, feature_map=fm, causal=causal)
    assert relative_rms(row_scaled_oracle(*ins, fm, causal=causal), ref) < 1e-12
    # signed denominators: the float64 results agree to their conditioning (1e-16 * ~1e4)
    assert relative_rms(o, ref) < 1e-10
    for axis, a, e in zip("qkv", grads, ref_grads, strict=True):
        assert relative_rms(a, e) < 1e-9, f"d{axis}"


# ----------------------------------------------------------------------------- the target
def _target_cases():
    for name in EXPONENTIAL:
        for causal in (True, False):
            for scale in SCALES:
                yield pytest.param(
                    name, causal, scale, id=f"{name}-{'causal' if causal else 'full'}-x{scale}"
                )


@pytest.mark.parametrize("T", LENGTHS)
@pytest.mark.parametrize("name, causal, scale", list(_target_cases()))
def test_exponential_maps_match_the_float64_oracle_of_the_same_map(name, causal, scale, T):
    """float32, float16 and bfloat16 inputs: outputs and dq, dk, dv finite and within the
    derived tolerance of the log-space oracle, with no NumericalWarning."""
    fm = make_map(name, D, M, seed=1)
    _, ins64 = _inputs(T, scale, torch.float64)
    ref = ref_grads = gains = None
    compute = 0.0
    for dtype in HALF_AND_SINGLE:
        o, grads, g, numerical = _run(fm, [x.to(dtype) for x in ins64], causal)
        assert not numerical, f"{dtype}: {numerical[0].message}"
        if ref is None:
            ref, ref_grads = _oracle_grads(log_space_oracle, ins64, g, fm=fm, causal=causal)
            compute = _compute_term(fm, *ins64, ref)
        tol = _unit_roundoff(dtype) + compute
        _check(f"{dtype} output", o, ref, tol)
        for axis, a, e in zip("qkv", grads, ref_grads, strict=True):
            if axis != "v" and relative_rms(a, e) > tol:  # cancelling: the output's error
                if gains is None:  # (the allowance is needed at x100 only: computed once)
                    gains = _cancellation_gains(fm, *ins64[:2], g, causal=causal)
                    gains = dict(zip("qk", gains, strict=True))
                allowance = gains[axis] * _output_error_norm(o, ref, ins64[2]) / float(e.norm())
                _check(f"{dtype} d{axis}", a, e, tol + allowance)
            else:
                _check(f"{dtype} d{axis}", a, e, tol)


@pytest.mark.parametrize("name", EXPONENTIAL)
@pytest.mark.parametrize("scale", [1, 10])
def test_gradients_reach_learnable_map_tensors(name, scale):
    """The tensors a learnable module trains (W, sqrt_xi, DCT radii) get finite gradients
    equal to the oracle's (float32 inputs and parameters)."""
    fm = make_map(name, D, M, seed=1)
    ins, ins64 = _inputs(LENGTHS[0], scale, torch.float32)
    base = fm.tensors(torch.device("cpu"), torch.float64)
    params = {n: p.to(torch.float32).requires_grad_() for n, p in base.items() if n != "signs"}
    params.update({n: p.to(torch.float32) for n, p in base.items() if n == "signs"})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", NumericalWarning)
        o = feature_attention(*ins, fm, causal=True, params=params)
    assert not caught
    g = torch.randn(o.shape, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    learn = [n for n, p in params.items() if p.requires_grad]
    grads = torch.autograd.grad(
        (o.double() * g).sum(), [params[n] for n in learn], allow_unused=True
    )
    params64 = {n: p.detach().double().requires_grad_(n in learn) for n, p in params.items()}
    ref = log_space_oracle(*ins64, fm, causal=True, params=params64)
    ref_grads = torch.autograd.grad(
        (ref * g).sum(), [params64[n] for n in learn], allow_unused=True
    )
    tol = _tolerance(fm, torch.float32, *ins64, ref)
    used = [n for n, e in zip(learn, ref_grads, strict=True) if e is not None]
    assert "sqrt_xi" in used and ("radii" in used or "W" in used)
    for n, a, e in zip(learn, grads, ref_grads, strict=True):
        assert (a is None) == (e is None), f"d{n}: used by one computation only"
        if e is not None:
            _check(f"d{n}", a, e, tol)


@pytest.mark.parametrize("causal", [True, False])
def test_weights_below_the_float32_range_warn(causal):
    """Learnable weights ``sqrt(xi) = 1e-25`` make every product ``xi e^{...} < 1e-50``:
    no reference can bring the denominator into float32's range (it is 0), so the caller is
    told (once), with the remedy, and the output is finite."""
    fm = make_map("positive", D, M, seed=1)
    ins, _ = _inputs(LENGTHS[0], 1.0, torch.float32)
    params = dict(fm.tensors(torch.device("cpu"), torch.float32))
    params["sqrt_xi"] = torch.full_like(params["sqrt_xi"], 1e-25)
    o, _, _, numerical = _run(fm, ins, causal, params=params)
    assert torch.isfinite(o).all()
    assert len(numerical) == 1
    message = str(numerical[0].message)
    assert "'positive'" in message and "underflowed" in message and "float64" in message


# ----------------------------------------------------------------------------- signed maps
@pytest.mark.parametrize("name", TRIGONOMETRIC)
@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("scale", SCALES)
def test_trigonometric_maps_are_finite_and_accurate_or_warned(name, causal, scale):
    """exp(|u|^2/2) is folded into the log-scale, never formed: finite at every norm (it was
    all-nan from x10 on). The signed denominator may nearly cancel: then a warning. Without
    one, the output is within the tolerance times the condition number of the ratio and
    every gradient that float16/bfloat16 can represent is finite (the exact float64
    gradients of these maps reach 1e6 where the denominator nearly vanishes)."""
    fm = make_map(name, D, M, seed=1)
    _, ins64 = _inputs(LENGTHS[0], scale, torch.float64)
    ref = row_scaled_oracle(*ins64, fm, causal=causal)
    # signed terms: the float32 errors of the log-scores are amplified by kappa as well
    kappa = signed_condition_number(*ins64[:2], fm, causal=causal)
    compute = _compute_term(fm, *ins64, ref) * kappa
    ref_grads = None
    for dtype in HALF_AND_SINGLE:
        o, grads, g, numerical = _run(fm, [x.to(dtype) for x in ins64], causal)
        if numerical:  # e.g. cos_offset, float16, x1: outputs 3e4 max|v|, beyond float16
            assert all("signed" in str(w.message) for w in numerical)
            continue
        _check(f"{dtype} output", o, ref, _unit_roundoff(dtype) + compute)
        if ref_grads is None:
            _, ref_grads = _oracle_grads(row_scaled_oracle, ins64, g, fm=fm, causal=causal)
        for axis, a, e in zip("qkv", grads, ref_grads, strict=True):
            # an exact gradient beyond the dtype's range rounds to inf: not a failure
            representable = e.abs() <= 0.5 * torch.finfo(dtype).max
            assert torch.isfinite(a[representable]).all(), f"{dtype} d{axis} non-finite"


def test_nearly_cancelling_signed_denominators_warn_once_per_call_site():
    """float16 at x1: the exact (float64) gradients of sincos exceed float16's range (the
    denominator is close to 0: outputs ~300x the largest value), so they come back inf."""
    fm = make_map("sincos", D, M, seed=1)
    ins, _ = _inputs(100, 1.0, torch.float16)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default", NumericalWarning)
        for _ in range(3):
            feature_attention(*ins, fm, causal=True)
    assert len(caught) == 1 and caught[0].category is NumericalWarning
    message = str(caught[0].message)
    assert "'sincos'" in message and "'positive'" in message and "float64" in message
    assert caught[0].filename == __file__  # the user's call site, not the library's


@pytest.mark.parametrize("causal", [True, False])
def test_a_query_and_its_key_peaking_on_different_features_is_exact(causal):
    """Two frequencies +-a e_1, a query on one and its only key on the other: both
    per-token stabilized feature vectors are ``[1, e^-200]`` in opposite order, so their
    product is 0 in float32 (per-token stabilization returned 0 and warned). The exact
    output is ``v``: per-feature references give it, without a warning."""
    fm = Positive.from_frequencies(Softmax(), [[20.0, 0.0], [-20.0, 0.0]])
    q = torch.tensor([[[[5.0, 0.0]]]])  # (B, T, H, D) = (1, 1, 1, 2): w.u = +-100
    v = torch.tensor([[[[1.0, -2.0, 3.0]]]])
    with warnings.catch_warnings():
        warnings.simplefilter("error", NumericalWarning)
        o = feature_attention(q, -q, v, fm, causal=causal, scale=1.0)
    torch.testing.assert_close(o, v, rtol=1e-6, atol=0.0)


@pytest.mark.parametrize("causal", [True, False])
def test_rows_without_a_visible_key_do_not_warn(causal):
    """Key padding can leave a row with ``den = 0`` by design (output 0): not an underflow."""
    fm = make_map("positive", D, M, seed=1)
    (q, k, v), _ = _inputs(LENGTHS[0], 1.0, torch.float32)
    mask = torch.zeros(B, q.shape[1], dtype=torch.bool)
    mask[1] = True  # the second sequence is all padding
    with warnings.catch_warnings():
        warnings.simplefilter("error", NumericalWarning)
        o = feature_attention(q, k, v, fm, causal=causal, key_padding_mask=mask)
    assert torch.equal(o[1], torch.zeros_like(o[1]))


@pytest.mark.parametrize("name", ["sincos", "cos_offset", "identity"])
def test_well_conditioned_signed_maps_do_not_warn(name):
    fm = make_map(name, 8, 64, seed=5)
    q, k, v = qkv(2, 50, 4, 2, 8, 6, seed=7, std=0.5, dtype=torch.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error", NumericalWarning)
        feature_attention(q, k, v, fm, causal=True, chunk_size=16)
        feature_attention(q, k, v, fm, causal=False)


@pytest.mark.parametrize("name", ["sincos", "cos_offset", "identity"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_signed_split_and_resume_matches_one_pass_or_warns(name, dtype):
    """The issue's split-and-resume discrepancy of the signed maps: a split and one pass
    each lie within ``tol`` (the signed tolerance: the module's, times the condition number
    ``kappa`` of the denominator) of the exact result, so they differ by at most ``2 tol``;
    otherwise the one pass warned. (Elementwise relative differences near ``o = 0`` are
    meaningless; the issue's 1.18 was one.) With ``d = 32``, ``m = 64`` and N(0, 1) inputs
    ``kappa`` is 1e3..1e5: float32 keeps about ``1e-4`` of the output, not ``1e-7``."""
    fm = make_map(name, D, M, seed=1)
    for T in LENGTHS:
        (q, k, v), ins64 = _inputs(T, 1.0, dtype, seed=T)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", NumericalWarning)
            whole = feature_attention(q, k, v, fm, causal=True)
        if caught:
            continue
        ref = row_scaled_oracle(*ins64, fm, causal=True)
        kappa = signed_condition_number(*ins64[:2], fm, causal=True)
        tol = _unit_roundoff(dtype) + _compute_term(fm, *ins64, ref) * kappa
        for s in (1, T // 3, T - 1):
            first, state = feature_attention(
                q[:, :s], k[:, :s], v[:, :s], fm, causal=True, output_final_state=True
            )
            rest = feature_attention(
                q[:, s:], k[:, s:], v[:, s:], fm, causal=True, initial_state=state
            )
            split = torch.cat((first, rest), dim=1)
            assert torch.isfinite(split).all()
            diff = relative_rms(split, whole)
            assert diff <= 2 * tol, f"split at {s}: {diff:.3g} > {2 * tol:.3g}"
        # the pass without gradients in segments of one chunk (64 tokens; see
        # functional.SEGMENT_BYTES) is a split and resume too
        per_token = B * H * fm.output_dim * 4  # float32 features of every head
        with mock.patch.object(functional, "SEGMENT_BYTES", 64 * per_token):
            segmented = feature_attention(q, k, v, fm, causal=True)
        diff = relative_rms(segmented, whole)
        assert diff <= 2 * tol, f"segments: {diff:.3g} > {2 * tol:.3g}"


# ----------------------------------------------------------------------------- states
def _relative_to(state: AttentionState, r: torch.Tensor) -> torch.Tensor:
    """``[kv, z]`` of ``state`` relative to the per-feature reference ``r >= log_scale``."""
    w = torch.exp(state.feature_log_scale().double() - r)[..., None]
    return torch.cat((state.kv.double(), state.z.double()[..., None]), dim=-1) * w


def _check_states(what: str, a: AttentionState, b: AttentionState, tol: float) -> None:
    """The same true state: compared on the larger of the two references, feature by
    feature (``exp(log_scale)`` itself overflows at these norms)."""
    r = torch.maximum(a.feature_log_scale(), b.feature_log_scale()).double()
    for f in range(r.shape[-1]):  # every feature row on its own scale
        _check(
            f"{what}, feature {f}",
            _relative_to(a, r)[..., f, :],
            _relative_to(b, r)[..., f, :],
            tol,
        )


@pytest.mark.parametrize("name", ["positive", "hyperbolic", "dct"])
def test_per_feature_states_resume_decode_and_combine_at_large_norms(name):
    """x30, float32: the state after a split carries per-feature log-scales; resuming from
    it, decoding steps from it and combining per-slice contributions
    (sequence parallelism) all give the log-space oracle's outputs and one pass's state."""
    fm = make_map(name, D, M, seed=1)
    T = LENGTHS[0]
    (q, k, v), ins64 = _inputs(T, 30, torch.float32)
    ref = log_space_oracle(*ins64, fm, causal=True)
    tol = _tolerance(fm, torch.float32, *ins64, ref)
    with warnings.catch_warnings():
        warnings.simplefilter("error", NumericalWarning)
        whole, final = feature_attention(q, k, v, fm, causal=True, output_final_state=True)
        assert final.log_scale.shape == (B, H, fm.output_dim)
        s = T // 3
        first, state = feature_attention(
            q[:, :s], k[:, :s], v[:, :s], fm, causal=True, output_final_state=True
        )
        rest, after = feature_attention(
            q[:, s:],
            k[:, s:],
            v[:, s:],
            fm,
            causal=True,
            initial_state=state,
            output_final_state=True,
        )
        steps, st = [], state
        for t in range(s, s + 4):
            o_t, st = feature_attention_step(q[:, t], k[:, t], v[:, t], st, fm)
            steps.append(o_t)
        parts = [
            feature_attention(
                q[:, :1], k[:, a:b], v[:, a:b], fm, causal=False, output_final_state=True
            )[1]
            for a, b in ((0, s), (s, T - 5), (T - 5, T))
        ]
    _check("one pass", whole, ref, tol)
    _check("split and resumed", torch.cat((first, rest), dim=1), ref, tol)
    _check("decoded", torch.stack(steps, dim=1), ref[:, s : s + 4], tol)
    _check_states("resumed state", after, final, tol)
    _check_states("combined contributions", combine_states(*parts), final, tol)


@pytest.mark.parametrize("causal", [True, False])
def test_the_per_feature_path_keeps_grouping_padding_recompute_and_causality(causal):
    """x30, float32 (the per-feature path runs: the state says so): grouped-query heads equal
    repeated keys, a padded nan changes nothing, recomputation gives the same gradients, a
    later nan leaves earlier rows bit-identical, and the chunk size does not matter."""
    fm = make_map("positive", D, M, seed=1)
    T, Hq = 50, 2 * H
    q, k, v = (x.float() for x in qkv(B, T, Hq, H, D, D, seed=3))
    q, k = 30.0 * q, 30.0 * k
    with warnings.catch_warnings():
        warnings.simplefilter("error", NumericalWarning)
        o, state = feature_attention(q, k, v, fm, causal=causal, output_final_state=True)
        assert state.log_scale.shape == (B, H, fm.output_dim)
        repeated = [x.repeat_interleave(2, dim=2) for x in (k, v)]
        assert relative_rms(feature_attention(q, *repeated, fm, causal=causal), o) < 1e-6
        mask = torch.zeros(B, T, dtype=torch.bool)
        mask[1, -7:] = True
        kp, vp = k.clone(), v.clone()
        kp[1, -7:], vp[1, -7:] = math.nan, math.nan
        padded = feature_attention(q, kp, vp, fm, causal=causal, key_padding_mask=mask)
        rows = slice(0, T - 7) if causal else slice(None)
        alone = feature_attention(q[1:, rows], k[1:, :-7], v[1:, :-7], fm, causal=causal)
        assert relative_rms(padded[1:, rows], alone) < 1e-6
        assert torch.equal(padded[:1], o[:1])
        grads = []
        for recompute in (False, True):
            ins = [x.clone().requires_grad_() for x in (q, k, v)]
            out = feature_attention(*ins, fm, causal=causal, recompute=recompute)
            grads.append(torch.autograd.grad((out * o.detach()).sum(), ins))
        for a, b in zip(*grads, strict=True):
            assert torch.isfinite(a).all() and relative_rms(a, b) < 1e-6
        assert relative_rms(feature_attention(q, k, v, fm, causal=causal, chunk_size=7), o) < 1e-6
    if causal:
        kn = k.clone()
        kn[:, 30] = math.nan
        later = feature_attention(q, kn, v, fm, causal=True)
        assert torch.equal(later[:, :30], o[:, :30]) and torch.isnan(later[:, 30:]).all()


# ----------------------------------------------------------------------------- the hook
@pytest.mark.parametrize("name", [*TRIGONOMETRIC, *EXPONENTIAL])
def test_row_scale_hook_factors_the_features(name):
    """``per_frequency = exp(r) * per_frequency(row_scale=False)`` and the same in logs."""
    fm = make_map(name, D, M, seed=1)
    u = 0.7 * torch.randn(5, D, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    t = fm.tensors(u.device, u.dtype)
    r = fm.log_row_scale(u, t)
    if name == "dct_released":
        assert r is None
        return
    assert r.shape == (5,)
    full = fm.per_frequency(u, t)
    torch.testing.assert_close(
        full,
        torch.exp(r)[:, None, None] * fm.per_frequency(u, t, row_scale=False),
        rtol=1e-13,
        atol=0,
    )
    if fm.exponential:
        torch.testing.assert_close(
            fm.log_per_frequency(u, t),
            r[:, None, None] + fm.log_per_frequency(u, t, row_scale=False),
            rtol=1e-13,
            atol=1e-13,
        )
