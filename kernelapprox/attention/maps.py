"""Feature maps as attention sees them: scaled inputs, stabilized features and log-scales.

Attention uses a feature map ``phi`` for the softmax kernel: with ``s = scale`` (default
``1/sqrt(head_dim)``) queries and keys are each multiplied by ``sqrt(s)`` so that
``phi(q) . phi(k) ~ exp(s q.k)``, the unnormalized score of
``torch.nn.functional.scaled_dot_product_attention``. The maps are the objects of
:mod:`kernelapprox.features` (their math lives there and only there) plus two deterministic
linear-attention baselines defined here, :class:`IdentityMap` and :class:`EluPlusOneMap`
(Katharopoulos et al., ICML 2020).

Stabilization. Every feature vector is returned as ``phi(x) = exp(c(x)) * phi_tilde(x)``
with a per-token log-scale ``c(x)`` (no statistic of any other token):

* exponential maps: ``c = max_i log g_i(u)``, computed from :meth:`FeatureMap.log_per_frequency`
  before exponentiating, so ``phi_tilde = weighted(exp(log g - c))`` never overflows;
* other real maps: ``c = log max_i |phi_i(x)|`` (zero-safe), so ``max |phi_tilde| = 1``.

The log-scale is detached from autograd: the attention output is invariant to it (it only
moves a factor between the features and the running reference kept in the state), so
treating it as a constant gives the exact gradient.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from kernelapprox._validation import check_choice, check_positive_int
from kernelapprox.features import FeatureMap
from kernelapprox.kernels import Softmax

#: Log-scale of "no key yet" (and of masked keys): finite, so that ``exp(FLOOR - FLOOR) = 1``
#: never becomes ``exp(-inf + inf) = nan``, and far below any real log-scale.
LOG_FLOOR = -1.0e30


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

    The default sampler is ``"orthogonal"`` (``"mc"`` for the DCT maps, which draw only
    radii from a one-dimensional point set)."""
    from kernelapprox.features import MAPS, make

    check_choice(name, "feature_map", (*MAPS, *BASELINES))
    if name in BASELINES:
        if n_features not in (None, head_dim):
            raise ValueError(f"the {name!r} baseline has n_features = head_dim = {head_dim}")
        return BASELINES[name](head_dim)
    m = head_dim if n_features is None else n_features
    if sampler is None:
        sampler = "mc" if name in ("dct", "dct_released") else "orthogonal"
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


def stabilized_features(
    feature_map: AnyMap,
    x: torch.Tensor,
    params: dict[str, torch.Tensor],
    multiplier: float,
    *,
    log_weight: float | None = None,
    inplace: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(phi_tilde, c)`` with ``phi(x) = exp(c) phi_tilde``: ``(..., output_dim)`` and ``(...)``.

    ``c`` is a per-token statistic (see the module docstring) and is detached. With
    ``log_weight`` (from :func:`uniform_log_weight`) the constant weight goes into ``c``;
    ``inplace`` reuses the map's output buffer (only when no gradient is needed).
    """
    # One (tokens, d) matrix: the map's ``u @ W^T`` is then a single matrix product
    # (torch.matmul runs a (..., 1, d) or permuted input as many tiny batched products).
    lead = x.shape[:-1]
    u = (x * multiplier).reshape(-1, x.shape[-1])
    if feature_map.exponential:
        logs = feature_map.log_per_frequency(u, params)  # (n, m, components)
        c = logs.detach().amax(dim=(-2, -1))
        if inplace:
            g = logs.sub_(c[..., None, None]).exp_()
        else:
            g = torch.exp(logs - c[..., None, None])
        if log_weight is None:
            phi = feature_map.weighted(g, params)
        else:
            phi, c = feature_map.flatten(g), c + log_weight
        return phi.reshape(*lead, -1), c.reshape(lead)
    if log_weight is None:
        phi = feature_map.weighted(feature_map.per_frequency(u, params), params)
    else:
        phi = feature_map.flatten(feature_map.per_frequency(u, params))
    peak = phi.detach().abs().amax(dim=-1)
    c = torch.where(peak > 0, torch.log(peak), torch.zeros_like(peak))
    phi = phi.mul_(torch.exp(-c)[..., None]) if inplace else phi * torch.exp(-c)[..., None]
    if log_weight is not None:
        c = c + log_weight
    return phi.reshape(*lead, -1), c.reshape(lead)
