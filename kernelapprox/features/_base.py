"""The feature-map base class: one torch implementation per map, numpy at the boundary.

A feature map with standardized frequencies ``w_1..w_m`` and non-negative weights
``xi_1..xi_m`` (uniform: ``1/m``) computes, for the scaled input ``u = x * kernel.input_scale``,
per-frequency feature blocks ``g_i(u)`` with ``c`` components each, and

.. math:: \\phi(x) = \\bigl[\\sqrt{\\xi_i}\\, g_i(u)\\bigr]_{i=1..m},\\qquad
          \\hat k(x, y) = \\operatorname{Re}\\, \\phi(x)^\\top \\overline{\\phi(y)}
          = \\sum_i \\xi_i\\, t_i(x, y),

with per-frequency terms ``t_i(x, y) = Re <g_i(u), conj g_i(v)>``. Each map states its
target kernel and whether ``E[t_i(x, y)] = k(x, y)`` holds exactly (:attr:`FeatureMap.unbiased`).

Dtype policy: a map computes in, and returns, the floating dtype of its input (a float32
array gives float32 features, complex64 for complex maps; a float64 tensor gives float64),
unless ``dtype=`` fixes one; inputs that are not floating point (integers, lists) become
float64 (numpy) or torch's default dtype (tensors). Studies pass float64 data, so they
compute in float64.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch

from kernelapprox._validation import (
    SeedLike,
    as_data_array,
    as_seed_sequence,
    check_choice,
    check_positive_int,
    check_real_finite,
    renamed_keywords,
    spawn,
)
from kernelapprox.kernels import Kernel
from kernelapprox.sampling import PointSetSampler, Sampler, make_sampler
from kernelapprox.sampling.weights import box_weights, fitted_weights

Array = Any  # numpy.ndarray or torch.Tensor


def _may_overwrite(u: torch.Tensor, t: dict[str, torch.Tensor]) -> bool:
    """Whether intermediate results may be updated in place (no autograd graph to keep)."""
    if not torch.is_grad_enabled():
        return True
    return not (u.requires_grad or any(v.requires_grad for v in t.values()))


def add(fresh: torch.Tensor, other: torch.Tensor, inplace: bool) -> torch.Tensor:
    """``fresh + other``, written into ``fresh`` when ``inplace`` (``fresh``: a new tensor)."""
    return fresh.add_(other) if inplace else fresh + other


#: Floating dtypes a map computes in (numpy names; ``bfloat16`` exists for tensors only).
FLOAT_DTYPES: dict[str, torch.dtype] = {
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "float32": torch.float32,
    "float64": torch.float64,
}


def check_float_dtype(dtype: Any, name: str = "dtype") -> torch.dtype | None:
    """``None``, or a real floating dtype (numpy, torch or its name) as a ``torch.dtype``."""
    if dtype is None:
        return None
    if isinstance(dtype, torch.dtype):
        key = str(dtype).removeprefix("torch.")
    else:
        try:
            key = np.dtype(dtype).name
        except TypeError:
            key = str(dtype)
    if key not in FLOAT_DTYPES:
        raise ValueError(
            f"{name} must be None (keep the input's dtype) or a real floating dtype "
            f"({', '.join(FLOAT_DTYPES)}), got {dtype!r}"
        )
    return FLOAT_DTYPES[key]


@renamed_keywords({"m": "n_features"})
def check_weights(weights: Any, n_features: int) -> np.ndarray:
    """Validate per-frequency weights: finite, non-negative, shape ``(n_features,)``, not
    all zero."""
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (n_features,):
        raise ValueError(
            f"weights must have shape ({n_features},) (one per frequency), got {w.shape}"
        )
    if not np.all(np.isfinite(w)) or np.any(w < 0) or not np.any(w > 0):
        raise ValueError(
            "weights must be finite and non-negative with at least one positive entry "
            "(a feature map needs sqrt(weight))"
        )
    return w


#: The registry of feature maps by name, in the order their classes were defined
#: (:data:`kernelapprox.features.MAPS`); a class joins it with ``register=True``.
REGISTRY: dict[str, type[FeatureMap]] = {}


class FeatureMap:
    """Random features ``phi`` with ``phi(x) . phi(y) ~ k(x, y)``.

    Parameters
    ----------
    kernel : Kernel
        The target kernel (see :attr:`supported_kernels`).
    n_features : int
        Number of frequencies ``m``; the output width is :attr:`output_dim`
        ``= m * components`` (the package's two names, docs/guide/architecture.md "Names").
    dim : int
        Input dimension ``d``.
    sampler : str, Sampler or scipy QMCEngine
        Where the frequencies come from (see :mod:`kernelapprox.sampling`).
    weights : "uniform" or array of shape (m,)
        Non-negative per-frequency weights ``xi`` (uniform ``1/m``).
    seed : SeedLike, default None
        The same seed gives bit-identical frequencies on every device; ``None`` draws fresh
        ones (the seed-default rule of :data:`~kernelapprox._validation.SeedLike`).
    dtype : None, numpy or torch floating dtype, or its name
        The dtype features are computed in and returned as; ``None`` (default) keeps the
        input's floating dtype (see the module docstring).
    """

    #: Registry name.
    name: ClassVar[str] = ""
    #: Feature components per frequency (e.g. 2 for ``[cos, sin]``).
    components: ClassVar[int] = 1
    #: Complex-valued features (the Gram estimate is the real part of ``phi conj(phi)^T``).
    complex_valued: ClassVar[bool] = False
    #: Whether the map is ``exp`` of something: then :meth:`log_features` exists.
    exponential: ClassVar[bool] = False
    #: Unit kernel families this map can target.
    supported_kernels: ClassVar[tuple[str, ...]] = ()
    #: Whether ``E[phi(x).phi(y)] = k(x, y)`` exactly for every ``m`` under MC sampling.
    unbiased: ClassVar[bool] = True
    #: Whether the map computes in float16/bfloat16 (torch has no half-precision complex
    #: ``polar`` or FFT on the CPU).
    half_precision: ClassVar[bool] = True
    #: The closed-form variance that holds for this map under Monte Carlo frequencies
    #: (:mod:`kernelapprox.estimators.predictions`): ``"sincos"`` (a cosine and a sine per
    #: frequency, or the complex exponential), ``"cos_offset"``, ``"positive"``,
    #: ``"hyperbolic"``, or ``None`` where no closed form is claimed.
    variance_family: ClassVar[str | None] = None
    #: Whether the map draws its radii from a point set, so that it needs a
    #: :class:`~kernelapprox.sampling.PointSetSampler` (DiJiang's DCT maps).
    needs_point_set: ClassVar[bool] = False
    #: Whether the map's Gram errors are right-skewed and heavy-tailed, so that a few
    #: replications understate their mean (exponentials of Gaussian projections, ``exp(w.x)``;
    #: measured for ``positive``: 5 replications 0.29, 2000 replications 0.37, wine, MC,
    #: m = 16). Studies check such curves against Cochran's rule.
    heavy_tailed: ClassVar[bool] = False

    def __init_subclass__(cls, *, register: bool = False, **kwargs: Any) -> None:
        """``class MyMap(FeatureMap, register=True)`` adds the map to :data:`REGISTRY` under its
        :attr:`name`, so that studies, the command line, predictions and attention find it;
        subclasses are not registered by default (a test's variant of a map stays private)."""
        super().__init_subclass__(**kwargs)
        if not register:
            return
        if not cls.__dict__.get("name"):
            raise TypeError(f"{cls.__qualname__} needs its own non-empty `name` to register")
        if cls.name in REGISTRY:
            raise ValueError(f"a feature map named {cls.name!r} is registered already")
        REGISTRY[cls.name] = cls

    def __init__(
        self,
        kernel: Kernel,
        n_features: int,
        *,
        dim: int,
        sampler: Any = "mc",
        weights: Any = "uniform",
        seed: SeedLike = None,
        dtype: Any = None,
    ) -> None:
        if not isinstance(kernel, Kernel):
            raise TypeError(f"kernel must be a kernelapprox.kernels.Kernel, got {kernel!r}")
        if kernel.unit not in self.supported_kernels:
            raise ValueError(
                f"map {self.name!r} cannot target the {kernel.unit} kernel; it supports "
                f"{', '.join(self.supported_kernels)}"
            )
        self.kernel = kernel
        self.n_features = check_positive_int(n_features, "n_features")
        self.dim = check_positive_int(dim, "dim")
        self.sampler = make_sampler(sampler)
        self.seed = seed
        self.dtype = check_float_dtype(dtype)
        frequency_seed, extra_seed = spawn(as_seed_sequence(seed), 2)
        self.standard_frequencies = self._draw(frequency_seed)
        self._draw_extra(extra_seed)
        self.set_weights(weights)
        self._cache: dict[tuple[torch.device, torch.dtype], dict[str, torch.Tensor]] = {}

    # ----------------------------------------------------------------- randomness
    def _draw(self, seed: np.random.SeedSequence) -> np.ndarray:
        """Standardized frequencies ``(m, d)`` of the unit kernel."""
        return self.sampler.frequencies(
            self.kernel.spectral_measure, self.n_features, self.dim, seed=seed
        )

    def _draw_extra(self, seed: np.random.SeedSequence) -> None:
        """Extra randomness of a map (offsets, signs); drawn from its own spawned stream."""

    def _extra_tensors(self) -> dict[str, np.ndarray]:
        """Extra arrays the torch computation needs (cached per device and dtype)."""
        return {}

    def set_weights(self, weights: Any) -> None:
        """Set the per-frequency weights ``xi``.

        ``"uniform"``: ``1/m``. ``"box"``: the non-negative weights, summing to one, that
        minimize the box discrepancy of the standardized frequencies for the normal spectral
        measure over the box ``[-3, 3]^d`` (Avron et al., JMLR 2016;
        :func:`kernelapprox.sampling.weights.box_weights`; the "W" of DiJiang's WPFF,
        Theorem 3.3). An array of shape ``(m,)``: given weights. Data-fitted weights need
        data: build the map with uniform weights and call :meth:`fit_weights`.
        """
        if isinstance(weights, str):
            check_choice(weights, "weights", ("uniform", "box", "fitted"))
            if weights == "fitted":
                raise ValueError(
                    "weights='fitted' needs data: build the map with weights='uniform' and call "
                    "fit_weights(X) on a training sample"
                )
            if weights == "box":
                if self.kernel.spectral_measure.family != "normal":
                    raise ValueError(
                        "weights='box' needs the normal spectral measure (Gaussian or softmax "
                        f"kernel), not the {self.kernel.spectral_measure.family} measure"
                    )
                weights = box_weights(self.standard_frequencies, scale=1.0, sum_to_one=True)
            else:
                weights = np.full(self.n_features, 1.0 / self.n_features)
        self.weights = check_weights(weights, self.n_features)
        self._cache = {}

    def fit_weights(
        self, X: Any, *, n_pairs: int = 4000, ridge: float = 0.0, seed: SeedLike = 0
    ) -> np.ndarray:
        """Fit the weights to data: non-negative least squares on kernel entries.

        Draws ``n_pairs`` random pairs ``(x_a, x_b)`` of rows of ``X`` (a *training* sample;
        evaluate on held-out data), computes the per-frequency terms ``t_i(x_a, x_b)`` and
        solves ``min_{xi >= 0} |T xi - k(x_a, x_b)|^2 + ridge |xi|^2``
        (:func:`kernelapprox.sampling.weights.fitted_weights`): DiJiang's "D optimized by the
        input" (Chen et al., ICML 2024, Eq. 10). Sets and returns the weights.
        """
        X = as_data_array(X, "X", n_features=self.dim)
        n_pairs = check_positive_int(n_pairs, "n_pairs")
        rng = np.random.default_rng(as_seed_sequence(seed))
        a = rng.integers(0, X.shape[0], n_pairs)
        b = rng.integers(0, X.shape[0], n_pairs)
        terms = self.pair_terms(X[a], X[b])
        targets = self.kernel.paired(X[a], X[b])
        self.set_weights(fitted_weights(terms, targets, ridge=ridge))
        return self.weights

    @property
    def frequencies(self) -> np.ndarray:
        """Frequencies in input space: ``w_i . x`` is the phase of feature ``i`` (``(m, d)``)."""
        return self.standard_frequencies * self.kernel.input_scale

    @property
    def output_dim(self) -> int:
        """Output columns ``m * components`` (``n_features`` counts frequencies, not columns)."""
        return self.n_features * self.components

    def positive_form(self, t: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor] | None:
        r"""``(W', sqrt_xi')`` with :math:`\phi_f(u) = \sqrt{\xi'_f} \exp(w'_f \cdot u -
        |u|^2/2)` for the softmax kernel, from the map's tensors ``t`` (:meth:`tensors`, or a
        module's learnable ones; built with torch operations, so gradients reach them), or
        ``None`` when the map has no such form. Kernels that compute features in this form
        (the Triton backend) ask the map instead of knowing each map.
        """
        return None

    # ----------------------------------------------------------------- torch core
    def tensors(self, device: torch.device, dtype: torch.dtype) -> dict[str, torch.Tensor]:
        """The map's parameters as tensors on ``device``: ``W`` (standardized frequencies),
        ``sqrt_xi`` (square-root weights) and map-specific extras; cached per device/dtype.

        :meth:`per_frequency` and :meth:`log_per_frequency` are pure functions of the scaled
        input and this dict, so a module may pass its own (e.g. learnable ``sqrt_xi``).
        """
        key = (device, dtype)
        if key not in self._cache:
            arrays = {"W": self.standard_frequencies, "sqrt_xi": np.sqrt(self.weights)}
            arrays.update(self._extra_tensors())
            self._cache[key] = {
                k: torch.as_tensor(v, dtype=dtype).to(device) for k, v in arrays.items()
            }
        return self._cache[key]

    def per_frequency(
        self,
        u: torch.Tensor,
        t: dict[str, torch.Tensor],
        *,
        weighted: bool = False,
        row_scale: bool = True,
    ) -> torch.Tensor:
        """Feature blocks ``g_i(u)`` of shape ``(..., m, components)``, times ``sqrt(xi_i)``
        when ``weighted`` (exponential maps add ``log sqrt(xi_i)`` before ``exp``).

        ``row_scale=False`` leaves out the factor ``exp(r(u))`` of :meth:`log_row_scale`."""
        logs = (
            self._weighted_logs(u, t, row_scale)
            if weighted
            else self.log_per_frequency(u, t, row_scale=row_scale)
        )
        return logs.exp_() if _may_overwrite(u, t) else torch.exp(logs)

    def _weighted_logs(
        self, u: torch.Tensor, t: dict[str, torch.Tensor], row_scale: bool = True
    ) -> torch.Tensor:
        logs = self.log_per_frequency(u, t, row_scale=row_scale)
        return add(logs, torch.log(t["sqrt_xi"])[:, None], _may_overwrite(u, t))

    def log_per_frequency(
        self, u: torch.Tensor, t: dict[str, torch.Tensor], *, row_scale: bool = True
    ) -> torch.Tensor:
        raise NotImplementedError(f"map {self.name!r} is not exponential")

    def log_row_scale(self, u: torch.Tensor, t: dict[str, torch.Tensor]) -> torch.Tensor | None:
        """``r(u)`` (shape ``u.shape[:-1]``): the log of a factor ``exp(r(u))`` that multiplies
        every feature of ``u``, or ``None`` when the map has none.

        ``per_frequency(u, t) = exp(r(u)) * per_frequency(u, t, row_scale=False)`` (and
        ``log_per_frequency(u, t) = r(u) + log_per_frequency(u, t, row_scale=False)``).
        Attention folds ``r`` into its per-token log-scale, so that a factor such as the
        trigonometric maps' ``exp(|u|^2/2)`` for the softmax kernel is never formed.
        """
        return None

    def _scaled_input(self, X: Array, name: str = "X") -> tuple[torch.Tensor, bool]:
        """Validate ``X``; return ``u = X * input_scale`` and whether ``X`` was numpy.

        A tensor may have shape ``(..., d)``, an array must have shape ``(n, d)``; both must
        hold real, finite numbers (one check for both:
        :func:`~kernelapprox._validation.check_real_finite`). ``u`` has the map's ``dtype``,
        or else the input's floating dtype (module docstring). The public entry points check;
        attention calls :meth:`per_frequency` on its own inputs and skips this.
        """
        if isinstance(X, torch.Tensor):
            if X.ndim < 1 or X.shape[-1] != self.dim:
                raise ValueError(
                    f"{name} must have shape (..., {self.dim}), got shape {tuple(X.shape)}"
                )
            check_real_finite(X, name)
            target = self.dtype
            if target is None and not X.is_floating_point():
                target = torch.get_default_dtype()
            if target is not None:
                X = X.to(target)
            self._check_precision(X.dtype)
            return X * self.kernel.input_scale, False
        given = getattr(X, "dtype", None)
        arr = as_data_array(X, name, n_features=self.dim)  # validated, float64
        target = self.dtype
        if target is None:
            kept = np.dtype(given).name if given is not None else "float64"
            target = FLOAT_DTYPES.get(kept, torch.float64)
        self._check_precision(target)
        return torch.from_numpy(arr).to(target) * self.kernel.input_scale, True

    def _check_precision(self, dtype: torch.dtype) -> None:
        if dtype in (torch.float16, torch.bfloat16) and not self.half_precision:
            raise TypeError(
                f"map {self.name!r} cannot compute in {str(dtype).removeprefix('torch.')}: "
                "pass dtype='float32' (or float32 input)"
            )

    def _blocks(self, X: Array) -> tuple[torch.Tensor, bool]:
        u, is_numpy = self._scaled_input(X)
        t = self.tensors(u.device, u.dtype)
        return self.per_frequency(u, t), is_numpy

    def __call__(self, X: Array) -> Array:
        """Features ``phi(X)`` of shape ``(..., m * components)``; numpy in, numpy out."""
        return self._features(X, "X")

    def _features(self, X: Array, name: str) -> Array:
        u, is_numpy = self._scaled_input(X, name)
        t = self.tensors(u.device, u.dtype)
        phi = self.flatten(self.per_frequency(u, t, weighted=True))
        return phi.numpy() if is_numpy else phi

    def flatten(self, g: torch.Tensor) -> torch.Tensor:
        """Blocks ``(..., m, c)`` to features ``(..., c * m)``, component-major.

        The feature order is ``[g_1[0], ..., g_m[0], g_1[1], ..., g_m[1], ...]`` (for
        ``sincos``: all cosines, then all sines). Maps with ``c > 1`` build their blocks as a
        transposed view of a ``(..., c, m)`` tensor, so flattening them copies nothing.
        """
        return g.transpose(-1, -2).reshape(*g.shape[:-2], self.output_dim)

    def weighted(self, g: torch.Tensor, t: dict[str, torch.Tensor]) -> torch.Tensor:
        """Apply ``sqrt(xi_i)`` to blocks ``(..., m, c)`` and :meth:`flatten` them."""
        return self.flatten(g * t["sqrt_xi"][:, None])

    def log_features(self, X: Array) -> Array:
        """``log phi(X)`` (exponential maps only), computed without forming ``exp``.

        Attention kernels use it to subtract a per-token maximum before exponentiating.
        """
        if not self.exponential:
            raise TypeError(f"map {self.name!r} has no log-features (it is not exponential)")
        u, is_numpy = self._scaled_input(X)
        logs = self._weighted_logs(u, self.tensors(u.device, u.dtype))
        logs = self.flatten(logs)
        return logs.numpy() if is_numpy else logs

    def gram(self, X: Array, Y: Array | None = None) -> Array:
        """Estimated Gram matrix ``Re phi(X) conj(phi(Y))^T``."""
        PX = self(X)
        PY = PX if Y is None else self._features(Y, "Y")
        if isinstance(PX, np.ndarray):
            return np.real(PX @ np.conj(PY).T)
        K = PX @ PY.conj().transpose(-1, -2)
        return K.real if K.is_complex() else K

    def pair_terms(self, X: Array, Y: Array) -> np.ndarray:
        """Per-frequency terms ``t_i(x_p, y_p)`` for row-aligned pairs: ``(P, m)`` float64.

        ``pair_terms(X, Y) @ weights`` is the estimate ``k_hat(x_p, y_p)``; fitting weights and
        the bootstrap over features work on these terms.
        """
        X = as_data_array(X, "X", n_features=self.dim)
        Y = as_data_array(Y, "Y", n_features=self.dim)
        if X.shape[0] != Y.shape[0]:
            raise ValueError(
                f"X and Y must have the same number of rows, got {len(X)} and {len(Y)}"
            )
        gx, _ = self._blocks(X)
        gy, _ = self._blocks(Y)
        return (gx * gy.conj()).real.sum(-1).numpy().astype(np.float64, copy=False)

    @classmethod
    def from_frequencies(
        cls,
        kernel: Kernel,
        frequencies: Any,
        *,
        weights: Any = "uniform",
        dtype: Any = None,
        **extra: Any,
    ) -> FeatureMap:
        """A map with given input-space frequencies ``(m, d)`` instead of sampled ones.

        ``extra`` sets map-specific randomness (e.g. ``offsets`` for ``cos_offset``).
        """
        W = as_data_array(frequencies, "frequencies")
        obj = cls.__new__(cls)
        if kernel.unit not in cls.supported_kernels:
            raise ValueError(f"map {cls.name!r} cannot target the {kernel.unit} kernel")
        obj.kernel, obj.n_features, obj.dim = kernel, W.shape[0], W.shape[1]
        obj.sampler, obj.seed, obj.dtype = None, None, check_float_dtype(dtype)
        obj.standard_frequencies = W / kernel.input_scale
        obj._set_extra(**extra)
        obj.set_weights(weights)
        return obj

    def _set_extra(self, **extra: Any) -> None:
        if extra:
            raise TypeError(f"map {self.name!r} takes no extra arrays, got {sorted(extra)}")

    def __repr__(self) -> str:
        sampler = getattr(self.sampler, "spec", None) or repr(self.sampler)
        uniform = np.allclose(self.weights, 1.0 / self.n_features, rtol=0, atol=0)
        return (
            f"{type(self).__name__}(kernel={self.kernel!r}, n_features={self.n_features}, "
            f"dim={self.dim}, sampler={sampler!r}, weights={'uniform' if uniform else 'custom'})"
        )


def require_point_sampler(sampler: Sampler, name: str) -> PointSetSampler:
    """Maps that draw radii from a one-dimensional point set need a :class:`PointSetSampler`."""
    if not isinstance(sampler, PointSetSampler):
        raise ValueError(
            f"map {name!r} draws its radii from a point set: sampler must be one of "
            "'mc', 'sobol', 'halton', 'lattice' (or a scipy QMCEngine), got "
            f"{getattr(sampler, 'name', sampler)!r}"
        )
    return sampler
