"""Exact kernels: the targets every feature map approximates.

Each kernel evaluates exact Gram matrices in float64 and knows its spectral measure, the
distribution its random frequencies come from (Bochner's theorem: a continuous
shift-invariant positive-definite kernel with ``k(0) = 1`` is ``k(x - y) = E_w cos(w.(x - y))``
for a unique probability measure ``p(w)``).

Every kernel is a *scaled unit kernel*: inputs are first multiplied by
:attr:`Kernel.input_scale` (``u = x * input_scale``) and the unit kernel is evaluated on ``u``:

=================  ======================================  =============  ===================
kernel             value                                   input_scale    unit family
=================  ======================================  =============  ===================
``Gaussian(l)``    ``exp(-|x - y|^2 / (2 l^2))``            ``1 / l``      ``"gaussian"``
``Laplacian(l)``   ``exp(-|x - y|_1 / l)``                  ``1 / l``      ``"laplacian"``
``Softmax(s)``     ``exp(s * x.y)``                         ``sqrt(s)``    ``"softmax"``
=================  ======================================  =============  ===================

The Gaussian and softmax kernels share the standard normal spectral measure through

.. math:: e^{-|u - v|^2/2} = e^{-|u|^2/2}\\, e^{-|v|^2/2}\\, e^{u \\cdot v},

which :func:`gaussian_softmax_log_factor` provides, once, for every map that targets one of
them through the other.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from scipy import stats
from scipy.spatial.distance import cdist

from kernelapprox._validation import (
    SeedLike,
    as_data_array,
    as_seed_sequence,
    check_choice,
    check_positive_float,
)

#: Inverse-CDF maps clip their uniform input to ``[PPF_EPS, 1 - PPF_EPS]``: an unrandomized
#: QMC origin (``u = 0``) maps to a large finite frequency instead of ``-inf``. The same
#: value scipy's ``MultivariateNormalQMC`` uses (``1e-10``, i.e. ``|w| <= 6.36`` for a
#: standard normal).
PPF_EPS = 1e-10


def clip_uniform(u: np.ndarray, eps: float = PPF_EPS) -> np.ndarray:
    """Clip uniforms to ``[eps, 1 - eps]`` before an inverse CDF (documented in :data:`PPF_EPS`)."""
    return np.clip(np.asarray(u, dtype=np.float64), eps, 1.0 - eps)


@dataclass(frozen=True)
class SpectralMeasure:
    """The spectral measure of a *unit* kernel: the law of its standardized frequencies.

    Parameters
    ----------
    family : {"normal", "cauchy"}
        ``"normal"``: ``w ~ N(0, I_d)`` (Gaussian and softmax kernels);
        ``"cauchy"``: independent standard Cauchy coordinates (the L1 Laplacian kernel).
    """

    family: str

    @property
    def rotation_invariant(self) -> bool:
        """Whether the law is invariant under rotations (needed by orthogonal samplers)."""
        return self.family == "normal"

    def ppf(self, u: np.ndarray) -> np.ndarray:
        """Coordinate-wise inverse CDF of uniforms in ``[0, 1]`` (clipped by :data:`PPF_EPS`)."""
        u = clip_uniform(u)
        if self.family == "normal":
            return stats.norm.ppf(u)
        return stats.cauchy.ppf(u)

    def radial_ppf(self, u: np.ndarray, d: int) -> np.ndarray:
        """Inverse CDF of the radius ``|w|`` in dimension ``d`` (chi with ``d`` degrees of freedom).

        Only defined for rotation-invariant measures: ``w = r v`` with ``r ~ chi_d`` and ``v``
        uniform on the sphere is exactly ``N(0, I_d)``.
        """
        if not self.rotation_invariant:
            raise ValueError(
                f"a radial law needs a rotation-invariant spectral measure; {self.family!r} is not"
            )
        return stats.chi.ppf(clip_uniform(u), df=d)


NORMAL = SpectralMeasure("normal")
CAUCHY = SpectralMeasure("cauchy")


def gaussian_softmax_log_factor(u: Any) -> Any:
    """``log`` of the factor relating the unit Gaussian and softmax kernels: ``-|u|^2 / 2`` per row.

    ``exp(-|u - v|^2 / 2) = exp(f(u)) exp(f(v)) exp(u.v)`` with ``f(u) = -|u|^2/2``; a map
    for the softmax kernel targets the Gaussian one by adding ``f`` to its log-features, and
    a map for the Gaussian targets the softmax by subtracting it. Works on numpy arrays and
    torch tensors (rows are the last-but-one axis).
    """
    return -0.5 * (u * u).sum(-1)


#: Pair statistics of scaled inputs ``U, V``: name -> (matrix of every pair, row-aligned pairs).
PAIR_STATISTICS: dict[str, tuple[Any, Any]] = {
    "sqeuclidean": (
        lambda U, V: cdist(U, V, "sqeuclidean"),
        lambda U, V: ((U - V) ** 2).sum(1),
    ),
    "cityblock": (
        lambda U, V: cdist(U, V, "cityblock"),
        lambda U, V: np.abs(U - V).sum(1),
    ),
    "inner": (lambda U, V: U @ V.T, lambda U, V: (U * V).sum(1)),
}


class Kernel(ABC):
    """A positive-definite kernel ``k(x, y)`` with a known spectral measure."""

    #: Name of the unit kernel family: ``"gaussian"``, ``"softmax"`` or ``"laplacian"``.
    unit: ClassVar[str]
    #: Whether ``k(x, y)`` depends on ``x - y`` only.
    shift_invariant: ClassVar[bool]
    #: Law of the standardized frequencies ``w`` of the unit kernel.
    spectral_measure: ClassVar[SpectralMeasure]

    @property
    @abstractmethod
    def input_scale(self) -> float:
        """Inputs are multiplied by this before the unit kernel is evaluated."""

    #: The statistic of a pair of scaled inputs that the unit kernel is a function of
    #: (:data:`PAIR_STATISTICS`): ``"sqeuclidean"``, ``"cityblock"`` or ``"inner"``.
    statistic: ClassVar[str]

    @abstractmethod
    def _profile(self, s: np.ndarray) -> np.ndarray:
        """The unit kernel as a function of the pair statistic ``s`` (its one formula)."""

    def _unit_gram(self, U: np.ndarray, V: np.ndarray) -> np.ndarray:
        """Exact Gram matrix of the unit kernel on scaled inputs."""
        return self._profile(PAIR_STATISTICS[self.statistic][0](U, V))

    @abstractmethod
    def _params(self) -> dict[str, float]:
        """The parameters that matter, for ``repr`` and result tables."""

    def __call__(self, X: Any, Y: Any = None) -> np.ndarray:
        """Exact Gram matrix ``K[i, j] = k(X[i], Y[j])`` in float64 (``Y`` defaults to ``X``)."""
        X = as_data_array(X, "X")
        Y = X if Y is None else as_data_array(Y, "Y", n_features=X.shape[1])
        s = self.input_scale
        return self._unit_gram(X * s, Y * s)

    def paired(self, X: Any, Y: Any) -> np.ndarray:
        """``k(X[p], Y[p])`` for row-aligned pairs, shape ``(n,)``, without a Gram matrix."""
        X = as_data_array(X, "X")
        Y = as_data_array(Y, "Y", n_features=X.shape[1])
        if X.shape[0] != Y.shape[0]:
            raise ValueError(f"X and Y must have the same number of rows, got {len(X)}, {len(Y)}")
        s = self.input_scale
        return self._profile(PAIR_STATISTICS[self.statistic][1](X * s, Y * s))

    def diag(self, X: Any) -> np.ndarray:
        """``k(x, x)`` for every row of ``X`` without forming the Gram matrix."""
        X = as_data_array(X, "X")
        U = X * self.input_scale
        return self._profile(PAIR_STATISTICS[self.statistic][1](U, U))

    @property
    def name(self) -> str:
        return type(self).__name__.lower()

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._params().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other._params() == self._params()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self).__name__, tuple(self._params().items())))


class _LengthScaleKernel(Kernel):
    """A shift-invariant kernel of one length scale ``l``: inputs are scaled by ``1 / l``."""

    shift_invariant = True

    def __init__(self, length_scale: float = 1.0) -> None:
        self.length_scale = check_positive_float(length_scale, "length_scale")

    @property
    def input_scale(self) -> float:
        return 1.0 / self.length_scale

    def _params(self) -> dict[str, float]:
        return {"length_scale": self.length_scale}


class Gaussian(_LengthScaleKernel):
    """Gaussian (RBF) kernel ``k(x, y) = exp(-|x - y|^2 / (2 l^2))``.

    Spectral measure ``w ~ N(0, l^{-2} I)`` (Rahimi & Recht, NIPS 2007). In scikit-learn's
    convention ``exp(-gamma |x - y|^2)``, ``gamma = 1 / (2 l^2)``.

    Examples
    --------
    >>> import numpy as np
    >>> from kernelapprox.kernels import Gaussian
    >>> float(Gaussian(length_scale=2.0)(np.zeros((1, 1)), np.full((1, 1), 2.0))[0, 0])
    0.6065306597126334
    """

    unit = "gaussian"
    spectral_measure = NORMAL
    statistic = "sqeuclidean"

    def _profile(self, s: np.ndarray) -> np.ndarray:
        return np.exp(-0.5 * s)


class Laplacian(_LengthScaleKernel):
    """Laplacian (L1) kernel ``k(x, y) = exp(-|x - y|_1 / l)``.

    A product of one-dimensional Laplace kernels, whose spectral measure is a product of
    Cauchy laws: ``w_j ~ Cauchy(0, 1 / l)`` independently (Rahimi & Recht, NIPS 2007, Fig. 1).
    Not rotation invariant, so orthogonal and structured samplers do not apply.
    """

    unit = "laplacian"
    spectral_measure = CAUCHY
    statistic = "cityblock"

    def _profile(self, s: np.ndarray) -> np.ndarray:
        return np.exp(-s)


class Softmax(Kernel):
    """Softmax kernel ``k(x, y) = exp(scale * x.y)``, the unnormalized attention score.

    Not shift invariant; its random features come from the standard normal law through the
    Gaussian relation (:func:`gaussian_softmax_log_factor`) on ``u = sqrt(scale) x``:
    positive features ``E[exp(w.u - |u|^2/2) exp(w.v - |v|^2/2)] = exp(u.v)``
    (Choromanski et al., ICLR 2021, Lemma 1). In attention, ``scale = 1/sqrt(head_dim)``.
    """

    unit = "softmax"
    shift_invariant = False
    spectral_measure = NORMAL

    def __init__(self, scale: float = 1.0) -> None:
        self.scale = check_positive_float(scale, "scale")

    @property
    def input_scale(self) -> float:
        return float(np.sqrt(self.scale))

    statistic = "inner"

    def _profile(self, s: np.ndarray) -> np.ndarray:
        return np.exp(s)

    def _params(self) -> dict[str, float]:
        return {"scale": self.scale}


KERNELS: dict[str, type[Kernel]] = {
    "gaussian": Gaussian,
    "laplacian": Laplacian,
    "softmax": Softmax,
}


def make_kernel(name: str | Kernel, *, length_scale: float = 1.0, scale: float = 1.0) -> Kernel:
    """A kernel from its name (``"gaussian"``, ``"laplacian"``, ``"softmax"``) or as given."""
    if isinstance(name, Kernel):
        return name
    check_choice(name, "kernel", KERNELS)
    if name == "softmax":
        return Softmax(scale=scale)
    return KERNELS[name](length_scale=length_scale)


def median_pairwise_distance(
    X: Any, *, max_points: int = 2000, seed: SeedLike = 0, metric: str = "euclidean"
) -> float:
    """Median distance between distinct rows of ``X`` (the "median heuristic").

    ``metric`` is the kernel's own distance: ``"euclidean"`` (Gaussian) or ``"cityblock"``
    (L1, the Laplacian kernel's). Uses a fixed random subset of ``max_points`` rows when
    ``X`` is larger, drawn from ``seed`` (default 0: a statistic of the data, the same on
    every call, by the rule of :data:`~kernelapprox._validation.SeedLike`).
    """
    check_choice(metric, "metric", ("euclidean", "cityblock"))
    X = as_data_array(X, "X")
    if X.shape[0] < 2:
        raise ValueError("X needs at least 2 rows for a median pairwise distance")
    if X.shape[0] > max_points:
        rng = np.random.default_rng(as_seed_sequence(seed))
        X = X[rng.choice(X.shape[0], max_points, replace=False)]
    dist = cdist(X, X, metric)
    med = float(np.median(dist[np.triu_indices(X.shape[0], k=1)]))
    if med <= 0:
        raise ValueError("the median pairwise distance of X is 0; pass a numeric length_scale")
    return med
