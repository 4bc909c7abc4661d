"""Feature maps as attention sees them: scaled inputs, stabilized features and log-scales.

Attention uses a feature map ``phi`` for the softmax kernel: with ``s = scale`` (default
``1/sqrt(head_dim)``) queries and keys are each multiplied by ``sqrt(s)`` so that
``phi(q) . phi(k) ~ exp(s q.k)``, the unnormalized score of
``torch.nn.functional.scaled_dot_product_attention``. The maps are the objects of
:mod:`kernelapprox.features` (their math lives there and only there) plus two deterministic
linear-attention baselines defined here, :class:`IdentityMap` and :class:`EluPlusOneMap`
(Katharopoulos et al., ICML 2020).

Stabilization. Every feature vector is returned as ``phi(x) = exp(c(x)) * phi_tilde(x)``
with a per-token log-scale ``c(x)`` (no statistic of any other token). A map whose features
share a per-row factor ``exp(r(u))`` (:meth:`FeatureMap.log_row_scale`: ``-|u|^2/2`` for the
exponential maps, ``+|u|^2/2`` for the softmax-kernel trigonometric maps, which overflows
float32 once ``|u|^2 > 177``) is evaluated without it and ``r`` goes into ``c``:

* exponential maps: ``c = r + max_i h_i(u)`` with ``h = log g - r`` from
  :meth:`FeatureMap.log_per_frequency` (``row_scale=False``) before exponentiating, so
  ``phi_tilde = weighted(exp(h - max h))`` never overflows and the rounding sees ``|h|``
  (about ``|w| |u|``), not ``|u|^2``;
* other real maps: ``c = r + log max_i |phi0_i(x)|`` (zero-safe) with ``phi0`` the features
  without the factor, so ``max |phi_tilde| = 1`` and ``exp(r)`` is never formed.

The log-scale is detached from autograd: the attention output is invariant to it (it only
moves a factor between the features and the running reference kept in the state), so
treating it as a constant gives the exact gradient. The part ``r`` of it is a function of
``x``, though: its gradient enters ``phi_tilde`` through the exact zero ``r - r.detach()``.

Limits: per-token scales cannot keep the *products* ``phi_tilde(q) . phi_tilde(k)`` in
range when the query and its keys peak on different features, as happens for exponential
maps from about ``|q|, |k|`` x30 (``|u|^2 ~ 5000``, products ``e^-200``); attention detects
it (:func:`denominator_flags`) and recomputes those maps with per-feature references from
:func:`exponential_log_features`. A signed map's denominator can nearly cancel, which no
reference cures: :func:`check_denominator` warns.
"""

from __future__ import annotations

import math
import os
import sys
import warnings
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from kernelapprox._validation import check_choice, check_positive_int
from kernelapprox.attention._autograd import graph_released
from kernelapprox.features import FeatureMap
from kernelapprox.kernels import Softmax

#: Log-scale of "no key yet" (and of masked keys): finite, so that ``exp(FLOOR - FLOOR) = 1``
#: never becomes ``exp(-inf + inf) = nan``, and far below any real log-scale.
LOG_FLOOR = -1.0e30


class NumericalWarning(UserWarning):
    """An attention output that the working precision cannot deliver (see
    :func:`check_denominator`): the result is returned, but it is unreliable."""


class BaselineMap:
    """A deterministic linear-attention map ``phi(x)`` with ``n_features = dim`` (no randomness).

    These are not kernel estimators: ``phi(q) . phi(k)`` is a different similarity than
    ``exp(q.k)``. They exist as baselines with the same interface as a :class:`FeatureMap`
    (``tensors``, ``per_frequency``, ``weighted``).
    """

    name = ""
    exponential = False
    complex_valued = False
    components = 1
    #: Whether ``phi(x) >= 0`` everywhere (then the attention denominator is non-negative).
    positive = False
    kernel = Softmax()

    def __init__(self, dim: int) -> None:
        self.dim = check_positive_int(dim, "dim")
        self.n_features = self.dim

    @property
    def output_dim(self) -> int:
        return self.dim

    def tensors(self, device: torch.device, dtype: torch.dtype) -> dict[str, torch.Tensor]:
        return {}

    def per_frequency(self, u: torch.Tensor, t: dict[str, torch.Tensor]) -> torch.Tensor:
        return self._map(u)[..., None]

    def log_row_scale(self, u: torch.Tensor, t: dict[str, torch.Tensor]) -> torch.Tensor | None:
        """``None``: no factor common to a row (see :meth:`FeatureMap.log_row_scale`)."""
        return None

    def weighted(self, g: torch.Tensor, t: dict[str, torch.Tensor]) -> torch.Tensor:
        return g[..., 0]

    def _map(self, u: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(dim={self.dim})"


class IdentityMap(BaselineMap):
    """``phi(x) = x``: plain (unnormalizable in general) linear attention; signed features."""

    name = "identity"

    def _map(self, u: torch.Tensor) -> torch.Tensor:
        return u


class EluPlusOneMap(BaselineMap):
    """``phi(x) = elu(x) + 1`` (Katharopoulos et al., "Transformers are RNNs", ICML 2020)."""

    name = "elu"
    positive = True

    def _map(self, u: torch.Tensor) -> torch.Tensor:
        return F.elu(u) + 1.0


BASELINES: dict[str, type[BaselineMap]] = {"identity": IdentityMap, "elu": EluPlusOneMap}

AnyMap = Any  # FeatureMap | BaselineMap


def check_feature_map(feature_map: Any, head_dim: int) -> AnyMap:
    """Check that ``feature_map`` is usable for attention with query/key dimension ``head_dim``."""
    if not isinstance(feature_map, (FeatureMap, BaselineMap)):
        raise TypeError(
            "feature_map must be a kernelapprox.features.FeatureMap (e.g. "
            "features.make('positive', kernels.Softmax(), m, dim=head_dim)) or a baseline map "
            f"({', '.join(BASELINES)}), got {type(feature_map).__name__}"
        )
    if feature_map.complex_valued:
        raise ValueError(
            f"feature_map {feature_map.name!r} is complex-valued; attention needs real features "
            "(use 'sincos', its real form)"
        )
    if isinstance(feature_map, FeatureMap) and feature_map.kernel.unit != "softmax":
        raise ValueError(
            "feature_map must target the softmax kernel (kernels.Softmax()) for attention, got "
            f"{feature_map.kernel!r}"
        )
    if isinstance(feature_map, FeatureMap) and feature_map.kernel.input_scale != 1.0:
        raise ValueError(
            f"feature_map was made for {feature_map.kernel!r}; attention applies its own `scale` "
            "(default 1/sqrt(head_dim)) to q and k, so the map must be made for "
            "kernels.Softmax() with scale 1 (pass the scale to the attention call instead)"
        )
    if feature_map.dim != head_dim:
        raise ValueError(
            f"feature_map has dim={feature_map.dim} but the query/key head dimension is {head_dim}"
        )
    return feature_map


def is_positive(feature_map: AnyMap) -> bool:
    """Whether every feature is ``>= 0`` (exponential maps and elu+1)."""
    return bool(feature_map.exponential or getattr(feature_map, "positive", False))


def make_map(
    name: str,
    head_dim: int,
    n_features: int | None = None,
    *,
    sampler: Any = None,
    seed: Any = None,
    **options: Any,
) -> AnyMap:
    """A map for attention by name: a :mod:`kernelapprox.features` map made for
    ``kernels.Softmax()`` (``n_features`` frequencies, default ``head_dim``), or a baseline
    (``"identity"``, ``"elu"``; ``n_features`` must then be ``None`` or ``head_dim``).

    The default sampler is ``"orthogonal"`` (``"mc"`` for maps that draw only radii from a
    one-dimensional point set, ``FeatureMap.needs_point_set``: the DCT maps)."""
    from kernelapprox.features import MAPS, make

    check_choice(name, "feature_map", (*MAPS, *BASELINES))
    if name in BASELINES:
        if n_features not in (None, head_dim):
            raise ValueError(f"the {name!r} baseline has n_features = head_dim = {head_dim}")
        return BASELINES[name](head_dim)
    m = head_dim if n_features is None else n_features
    if sampler is None:
        sampler = "mc" if MAPS[name].needs_point_set else "orthogonal"
    return make(name, Softmax(), m, dim=head_dim, sampler=sampler, seed=seed, **options)


def input_multiplier(feature_map: AnyMap, scale: float) -> float:
    """``sqrt(scale) * kernel.input_scale``: the factor that turns ``q`` or ``k`` into ``u``."""
    return math.sqrt(scale) * float(feature_map.kernel.input_scale)


def plain_features(
    feature_map: AnyMap, x: torch.Tensor, params: dict[str, torch.Tensor], multiplier: float
) -> torch.Tensor:
    """``phi(x)`` without any stabilization (the oracle's features): ``(..., output_dim)``."""
    u = x * multiplier
    return feature_map.weighted(feature_map.per_frequency(u, params), params)


def uniform_log_weight(feature_map: AnyMap, params: dict[str, torch.Tensor] | None) -> float | None:
    """``log sqrt(xi)`` when the map's weights are uniform and its own tensors are used.

    Then ``weighted`` multiplies every feature by the same constant, which attention folds
    into the key's log-scale instead of spending a pass over the features (decided on the
    host from the map's numpy weights: no device synchronization). ``None`` otherwise.
    """
    weights = getattr(feature_map, "weights", None)
    if torch.compiler.is_compiling():  # dynamo would trace the numpy check as tensors
        return None
    if params is not None or weights is None or not bool(np.all(weights == weights[0])):
        return None
    return 0.5 * math.log(float(weights[0]))


class ShiftedExp(torch.autograd.Function):
    """``y = exp(logs + shift)`` for a fresh ``logs`` (a map's
    :meth:`~kernelapprox.features.FeatureMap.log_per_frequency` result, which no one else
    holds), computed in the storage of ``logs``, with autograd's gradients ``d logs = dy . y``
    and ``d shift`` its sum over the dimensions ``shift`` broadcasts.

    Autograd's ``(logs + shift).exp_()`` writes the sum into a new ``logs``-sized tensor, and
    its backward pass ``dy * y`` into another; on CPU each such block over glibc's 32 MiB
    ``mmap`` limit (queries or keys at ``B H T m = 8 x 4096 x 256`` in float32) is
    page-faulted in and zeroed on first touch, as much CPU time as the pass itself.
    Overwriting ``logs`` is safe because no backward pass needs it (the product or sum that
    made it saves its inputs, not its result). With ``owned=True`` (the caller never hands
    ``y`` out) the backward pass also writes ``d logs`` into ``y`` when the graph is being
    released: every node that saved ``y`` consumed it, so it ran before this one, and any
    later reader of a saved alias would meet torch's in-place version check, not stale
    numbers.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, logs: torch.Tensor, shift: torch.Tensor, owned: bool = False
    ) -> torch.Tensor:
        y = logs.detach().add_(shift).exp_()
        ctx.save_for_backward(y)
        ctx.shift_shape, ctx.owned = shift.shape, owned
        return y

    @staticmethod
    def backward(ctx: Any, dy: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        (y,) = ctx.saved_tensors
        dlogs = y.mul_(dy) if ctx.owned and graph_released() else dy * y
        dshift = dlogs.sum_to_size(ctx.shift_shape) if ctx.needs_input_grad[1] else None
        return dlogs, dshift, None


def stabilized_features(
    feature_map: AnyMap,
    x: torch.Tensor,
    params: dict[str, torch.Tensor],
    multiplier: float,
    *,
    log_weight: float | None = None,
    inplace: bool = False,
    owned: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(phi_tilde, c)`` with ``phi(x) = exp(c) phi_tilde``: ``(..., output_dim)`` and ``(...)``.

    ``c`` is a per-token statistic (see the module docstring) and is detached; it includes
    the map's :meth:`~kernelapprox.features.FeatureMap.log_row_scale` ``r``, whose factor
    ``exp(r)`` is never formed. With ``log_weight`` (from :func:`uniform_log_weight`) the
    constant weight goes into ``c``; ``inplace`` reuses the map's output buffer (only when no
    gradient is needed; the exponential maps' logs are overwritten either way); ``owned``
    promises that ``phi_tilde`` stays with the caller, whose backward pass may then receive
    the exponential's gradient in its storage (see :class:`ShiftedExp`).
    """
    # One (tokens, d) matrix: the map's ``u @ W^T`` is then a single matrix product
    # (torch.matmul runs a (..., 1, d) or permuted input as many tiny batched products).
    lead = x.shape[:-1]
    u = (x * multiplier).reshape(-1, x.shape[-1])
    r = feature_map.log_row_scale(u, params)  # (n,) or None: log of a factor common to the row
    # ``r - r.detach()`` is exactly 0 but carries dr/du: subtracting it from the detached
    # reference gives phi_tilde the gradient of the factor exp(r) that it does not contain.
    grad_r = None if r is None or inplace else r - r.detach()
    if feature_map.exponential:
        logs = feature_map.log_per_frequency(u, params, row_scale=r is None)  # (n, m, comps)
        c = logs.detach().amax(dim=(-2, -1))
        # ``logs + (grad_r - c)``, not ``logs - (c - grad_r)``: the same numbers (grad_r is
        # 0), but the backward pass of a subtracted row term negates the whole (n, m) gradient
        # before reducing it. The exponential overwrites the fresh logs, with or without
        # gradients (ShiftedExp).
        shift = -c if grad_r is None else grad_r - c
        g = ShiftedExp.apply(logs, shift[..., None, None], owned)
        if log_weight is None:
            phi = feature_map.weighted(g, params)
        else:
            phi, c = feature_map.flatten(g), c + log_weight
    else:
        blocks = (
            feature_map.per_frequency(u, params)
            if r is None
            else feature_map.per_frequency(u, params, row_scale=False)
        )
        if log_weight is None:
            phi = feature_map.weighted(blocks, params)
        else:
            phi = feature_map.flatten(blocks)
        peak = phi.detach().abs().amax(dim=-1)
        c = torch.where(peak > 0, torch.log(peak), torch.zeros_like(peak))
        factor = torch.exp(-c if grad_r is None else grad_r - c)[..., None]
        phi = phi.mul_(factor) if inplace else phi * factor
        if log_weight is not None:
            c = c + log_weight
    if r is not None:
        c = c + r.detach()
    return phi.reshape(*lead, -1), c.reshape(lead)


def exponential_log_features(
    feature_map: AnyMap,
    x: torch.Tensor,
    params: dict[str, torch.Tensor],
    multiplier: float,
    *,
    row_scale: bool = True,
) -> torch.Tensor:
    """``l_f(x) = log g_f(u)`` with ``u = multiplier x``: ``(..., output_dim)``, unweighted.

    The features of an exponential map are ``phi_f(x) = sqrt(xi_f) exp(l_f(x))``, so
    ``phi(q) . phi(k) = sum_f xi_f exp(l_f(q) + l_f(k))`` (:func:`feature_weights` gives
    ``xi``). ``row_scale=False`` leaves out the map's per-token
    :meth:`~kernelapprox.features.FeatureMap.log_row_scale` ``r(u)``, a factor that cancels
    between the numerator and the denominator of every query's output (used for queries).
    """
    lead = x.shape[:-1]
    u = (x * multiplier).reshape(-1, x.shape[-1])
    logs = feature_map.log_per_frequency(u, params, row_scale=row_scale)
    return feature_map.flatten(logs).reshape(*lead, -1)


def feature_weights(feature_map: AnyMap, params: dict[str, torch.Tensor]) -> torch.Tensor:
    """``xi_f``, ``(output_dim,)``: the weight of feature ``f`` in ``phi(q) . phi(k)``, i.e. the
    square of the map's ``sqrt(xi)`` in the features' order (differentiable in ``params``)."""
    sqrt_xi = params["sqrt_xi"]
    ones = sqrt_xi.new_ones((1, sqrt_xi.shape[0], feature_map.components))
    return feature_map.weighted(ones, params)[0].square()


def _caller_stacklevel() -> int:
    """``stacklevel`` of the first frame outside this package's attention code and torch
    (the user's call site, whatever path led here: modules, checkpointing, packing)."""
    skip = (os.path.dirname(__file__), os.path.dirname(torch.__file__))
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_code.co_filename.startswith(skip):
        frame, level = frame.f_back, level + 1
    return level


def denominator_flags(
    den: torch.Tensor,
    feature_map: AnyMap,
    num: torch.Tensor | None = None,
    values: torch.Tensor | None = None,
    *,
    dtype: torch.dtype | None = None,
    rows_may_be_empty: bool = True,
    ignore: torch.Tensor | None = None,
) -> tuple[bool, bool, bool]:
    """``(imprecise, underflow, ill_conditioned)`` for the attention ratio ``num_i / den_i``,
    with one host synchronization (all ``False`` under ``torch.compile``, which cannot
    synchronize inside a graph).

    ``den`` ``(B, H_kv, T, G)`` and ``num`` ``(..., D_v)`` are in stabilized units (the
    dominant key has weight 1, every feature ``|phi_tilde| <= 1``) and in the compute dtype
    (unit roundoff ``u``, smallest normal number ``tiny``); ``values`` ``(B, H_kv, T_k, D_v)``
    are the values that were summed; ``dtype`` is the caller's dtype (unit roundoff
    ``u_in``; default: ``den``'s); ``ignore`` (bool, ``den``'s shape) marks rows whose output
    is replaced anyway (those that see a non-finite input).

    * **range** (every map): with gradual underflow each of the ``n = F (T_k + 1)``
      products behind ``den_i`` (a query feature, a key feature and a key weight, all
      ``<= 1``) loses at most ``4 tiny u`` in absolute terms, so the relative error of the
      row is at most ``4 n tiny u / |den_i|``. ``imprecise``: that bound exceeds ``u``
      (``|den_i| < 4 n tiny``; attention then recomputes exponential maps with per-feature
      references); ``underflow``: it exceeds ``sqrt(u)`` (``|den_i| < 4 n tiny sqrt(u)``,
      warned). A row with ``den_i = 0`` counts too unless ``rows_may_be_empty`` (key padding:
      a row that sees no key has ``den_i = 0`` by design). This is how per-token
      stabilization fails at large ``|q|, |k|``: the products of two stabilized features
      underflow although the exact ratio is defined.
    * **conditioning** (signed maps, when ``values`` are given): with
      ``den_i = sum_j a_ij`` the ratio has the condition number
      ``kappa_i = sum_j |a_ij| / |den_i|`` (relative perturbations of the terms, e.g. from
      rounding the inputs to ``dtype``, are amplified by it), and since
      ``|o_i| <= kappa_i max_j |v_j|``, ``kappa_i >= |o_i|_inf / max_j |v_j|_inf``: a lower
      bound from the output alone, no pass over the features. ``ill_conditioned``: it
      reaches ``u_in^{-1/2}`` (half of the input's digits lost: 4096 for float32, 45 for
      float16, 16 for bfloat16). Exact softmax attention has ``kappa_i = 1``: its output is a
      convex combination of the values. Positive maps have ``a_ij >= 0``, so ``kappa_i = 1``
      and the check is skipped. An initial state's values are not in ``values``; the bound
      then assumes that they were no larger.
    """
    if torch.compiler.is_compiling():
        return False, False, False
    finfo = torch.finfo(den.dtype)
    u = 0.5 * finfo.eps
    keys = 0 if values is None else values.shape[-2]
    n = feature_map.output_dim * (keys + 1)
    magnitude = den.abs()
    counted = den != 0 if rows_may_be_empty else torch.ones_like(den, dtype=torch.bool)
    if ignore is not None:
        counted &= ~ignore
    checks = [
        ((magnitude < 4.0 * n * finfo.tiny) & counted).any(),
        ((magnitude < 4.0 * n * finfo.tiny * math.sqrt(u)) & counted).any(),
    ]
    if not is_positive(feature_map) and num is not None and values is not None:
        u_in = 0.5 * torch.finfo(den.dtype if dtype is None else dtype).eps
        vmax = values.abs().amax(dim=(-2, -1))[..., None, None]  # (B, H_kv, 1, 1)
        kappa = num.abs().amax(dim=-1) / (magnitude * vmax)
        checks.append(((kappa >= 1.0 / math.sqrt(u_in)) & (den != 0)).any())
    flags = torch.stack(checks).tolist()
    return bool(flags[0]), bool(flags[1]), len(flags) > 2 and bool(flags[2])


def warn_denominator(
    feature_map: AnyMap, dtype: torch.dtype, underflow: bool, ill_conditioned: bool
) -> None:
    """The :class:`NumericalWarning` for the flags of :func:`denominator_flags` (``dtype``:
    the compute dtype), once per map and call site."""
    name = feature_map.name or type(feature_map).__name__
    if underflow:
        warnings.warn(
            f"feature map {name!r}: attention denominators underflowed in "
            f"{str(dtype).removeprefix('torch.')} (the stabilized products of query and key "
            "features fall below the smallest normal number, as happens for very large "
            "|q|, |k|); the output and its gradients are unreliable. Remedy: keep |q| and "
            "|k| moderate (e.g. normalize them, or lower `scale`), or pass float64 inputs.",
            NumericalWarning,
            stacklevel=_caller_stacklevel(),
        )
    if ill_conditioned:
        warnings.warn(
            f"feature map {name!r} has signed features: its attention denominator "
            "phi(q) . sum_j phi(k_j) nearly cancels (outputs exceed the largest value by a "
            "factor that loses at least half of the input's digits), so the output and its "
            "gradients are unreliable. Remedy: use a positive map (e.g. 'positive', "
            "'hyperbolic' or 'dct'), or float64 inputs.",
            NumericalWarning,
            stacklevel=_caller_stacklevel(),
        )


def check_denominator(
    den: torch.Tensor,
    feature_map: AnyMap,
    num: torch.Tensor | None = None,
    values: torch.Tensor | None = None,
    *,
    dtype: torch.dtype | None = None,
    rows_may_be_empty: bool = True,
) -> None:
    """Warn (:class:`NumericalWarning`, once per map and call site) when the attention ratio
    ``o_i = num_i / den_i`` cannot be trusted: the ``underflow`` and ``ill_conditioned``
    flags of :func:`denominator_flags` (same arguments; one host synchronization, skipped
    under ``torch.compile``)."""
    _, underflow, ill = denominator_flags(
        den, feature_map, num, values, dtype=dtype, rows_may_be_empty=rows_may_be_empty
    )
    warn_denominator(feature_map, den.dtype, underflow, ill)
