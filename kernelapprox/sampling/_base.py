"""The sampler protocol: frequencies for a spectral measure, with a replication axis."""

from __future__ import annotations

import inspect
import warnings
from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from kernelapprox._validation import (
    SeedLike,
    as_seed_sequence,
    check_positive_int,
    renamed_keywords,
    spawn,
)
from kernelapprox.kernels import SpectralMeasure


def reemit_once(caught: list[warnings.WarningMessage], stacklevel: int = 3) -> None:
    """Re-emit recorded warnings, each distinct (category, message) once, in order.

    Used where one request repeats a draw (replications, a transformer's ``fit``), so that a
    sampler's warning, e.g. a :class:`~kernelapprox.sampling.QMCBalanceWarning`, is issued
    once per request rather than once per draw.
    """
    seen: set[tuple[type[Warning], str]] = set()
    for w in caught:
        key = (w.category, str(w.message))
        if key not in seen:
            seen.add(key)
            warnings.warn(w.message, stacklevel=stacklevel)


def _spec_text(value: Any) -> str:
    if isinstance(value, Sampler):
        return value.spec
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    return str(value)


class Sampler(ABC):
    """Draws ``n_features`` (``m``) frequencies in dimension ``dim`` (``d``) from a spectral
    measure.

    Subclasses implement :meth:`draw` for one randomization; :meth:`frequencies` adds the
    replication axis, with every replication an independent randomization spawned from the
    seed (``SeedSequence.spawn``), never a continuation of one stream.
    """

    #: Short name used by the registry, the study and result tables.
    name: str = ""
    #: Whether the sampler needs a rotation-invariant spectral measure.
    needs_rotation_invariance: bool = False
    #: Whether every frequency is marginally exactly the spectral measure, so that maps
    #: unbiased under Monte Carlo stay unbiased with this sampler (SORF: no).
    unbiased: bool = True

    @abstractmethod
    def draw(
        self, measure: SpectralMeasure, n_features: int, dim: int, seed: np.random.SeedSequence
    ) -> np.ndarray:
        """One randomization: standardized frequencies of shape ``(n_features, dim)``.

        The hook a subclass implements; :meth:`frequencies` calls it positionally, with
        checked sizes and a seed it has already spawned (so ``seed`` has no default)."""

    def check_measure(self, measure: SpectralMeasure) -> None:
        if self.needs_rotation_invariance and not measure.rotation_invariant:
            raise ValueError(
                f"sampler {self.name!r} needs a rotation-invariant spectral measure (Gaussian or "
                f"softmax kernel); the {measure.family} measure is not. Use one of 'mc', 'sobol', "
                "'halton', 'lattice'"
            )

    @renamed_keywords({"m": "n_features", "d": "dim"})
    def frequencies(
        self,
        measure: SpectralMeasure,
        n_features: int,
        dim: int,
        *,
        seed: SeedLike = None,
        replications: int | None = None,
    ) -> np.ndarray:
        """Frequencies of shape ``(n_features, dim)``, or ``(R, n_features, dim)`` when
        ``replications=R``.

        A warning of the draws (e.g. :class:`~kernelapprox.sampling.QMCBalanceWarning`) is
        issued once per call, not once per replication. The old keywords ``m=`` and ``d=``
        still work until kernelapprox 0.2, with a ``DeprecationWarning``.
        """
        m = check_positive_int(n_features, "n_features")
        d = check_positive_int(dim, "dim")
        self.check_measure(measure)
        if replications is None:
            return self.draw(measure, m, d, as_seed_sequence(seed))
        R = check_positive_int(replications, "replications")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            W = np.stack([self.draw(measure, m, d, child) for child in spawn(seed, R)])
        reemit_once(caught, stacklevel=4)  # past the renamed_keywords wrapper
        return W

    @property
    def spec(self) -> str:
        """The spec string ``name[:option=value,...]`` of this sampler: its name and the
        options that differ from their defaults (:func:`kernelapprox.sampling.from_spec`
        rebuilds it from the string, for the samplers of the registry)."""
        parts = []
        for p in inspect.signature(type(self).__init__).parameters.values():
            if p.kind is not inspect.Parameter.KEYWORD_ONLY:
                continue
            value = getattr(self, p.name, p.default)
            if _spec_text(value) != _spec_text(self._spec_default(p.name, p.default)):
                parts.append(f"{p.name}={_spec_text(value)}")
        return self.name + (":" + ",".join(parts) if parts else "")

    def _spec_default(self, option: str, default: Any) -> Any:
        """The value an option has when it is left out (``default`` unless it is resolved
        in ``__init__``, as :class:`~kernelapprox.sampling.Spherical`'s ``points``)."""
        return default

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({params})"


class PointSetSampler(Sampler):
    """A sampler built on a point set in ``[0, 1)^d`` mapped through the inverse CDF.

    ``w = F^{-1}(u)`` coordinate-wise, with ``u`` clipped to ``[1e-10, 1 - 1e-10]``
    (:data:`kernelapprox.kernels.PPF_EPS`), so an unrandomized origin gives a large finite
    frequency, never ``-inf``.
    """

    @abstractmethod
    def points(self, n: int, d: int, seed: np.random.SeedSequence) -> np.ndarray:
        """One randomization of the point set: ``(n, d)`` uniforms in ``[0, 1)``."""

    def uniform_points(
        self, n: int, d: int, *, seed: SeedLike = None, replications: int | None = None
    ) -> np.ndarray:
        """The point set itself, ``(n, d)`` or ``(R, n, d)``: what the frequencies are made of."""
        n = check_positive_int(n, "n")
        d = check_positive_int(d, "dim")
        if replications is None:
            return self.points(n, d, as_seed_sequence(seed))
        R = check_positive_int(replications, "replications")
        return np.stack([self.points(n, d, child) for child in spawn(seed, R)])

    def draw(
        self, measure: SpectralMeasure, n_features: int, dim: int, seed: np.random.SeedSequence
    ) -> np.ndarray:
        return measure.ppf(self.points(n_features, dim, seed))
