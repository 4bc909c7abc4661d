"""A scikit-learn transformer over kernelapprox's feature maps."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from kernelapprox._validation import REMOVED_IN, check_choice, check_positive_int
from kernelapprox.kernels import make_kernel, median_pairwise_distance
from kernelapprox.sampling import reemit_once

#: Output columns when neither ``n_components`` nor ``n_features`` is given.
DEFAULT_N_COMPONENTS = 256


class RandomFeatures(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Random-feature transformer: ``fit`` draws the frequencies, ``transform`` is deterministic.

    Parameters
    ----------
    feature_map : str, default "sincos"
        One of :data:`kernelapprox.features.MAPS`.
    kernel : {"gaussian", "laplacian", "softmax"}, default "gaussian"
    length_scale : float or "median", default 1.0
        Gaussian/Laplacian length scale (``RBFSampler(gamma)`` is ``1 / sqrt(2 gamma)``).
        ``"median"``: the median pairwise distance of the training rows, in the kernel's own
        distance (Euclidean for the Gaussian, L1 for the Laplacian), like ``RBFSampler``'s
        ``gamma="scale"``; the value used is :attr:`length_scale_`.
    scale : float, default 1.0
        Softmax scale.
    n_components : int or None, default None
        Output width (scikit-learn's name for it, kept here as in ``RBFSampler``; the rest of
        the package calls the output width ``output_dim``): ``n_components / c``
        frequencies, with ``c`` the output columns per frequency (2 for ``sincos``,
        ``hyperbolic`` and the ``[Re, Im]`` of ``fourier``, else 1). Not a multiple of
        ``c``: rounded up, with a warning (dropping a column would bias the estimate; and
        scikit-learn's ``check_estimator`` sets ``n_components=1``). With neither
        ``n_components`` nor ``n_features`` given: 256 columns, so a power-of-2 number of
        frequencies for every map (no :class:`QMCBalanceWarning` with Sobol' points).
    n_features : int or None, default None
        Number of frequencies ``m`` instead (the output width is ``m * c``); when given it
        takes precedence over ``n_components``.
    sampler : str or scipy QMCEngine, default "mc"
    weights : "uniform" or array of shape (n_features,), default "uniform"
    random_state : int, RandomState, Generator or None
        Seeds the frequency draw (scikit-learn's name for ``seed``).

    Attributes
    ----------
    map_ : FeatureMap
        The fitted map; ``map_.frequencies`` are the input-space frequencies.
    frequencies_ : ndarray of shape (n_features_, n_features_in_)
    weights_ : ndarray of shape (n_features_,)
    n_features_ : int
        Number of frequencies ``m`` drawn, as the parameter ``n_features`` (the input width
        is scikit-learn's ``n_features_in_``, the output width ``n_components`` columns).
        ``n_frequencies_``, its old name, still works until kernelapprox 0.2, with a
        ``DeprecationWarning``.
    length_scale_ : float
        The length scale used (the median when ``length_scale="median"``).
    n_features_in_ : int

    Output columns keep the input's dtype (float32 in, float32 out). A sampler that warns
    (e.g. :class:`~kernelapprox.sampling.QMCBalanceWarning`) does so at most once per
    ``fit``.

    Examples
    --------
    >>> import numpy as np
    >>> from kernelapprox.features import RandomFeatures
    >>> X = np.random.default_rng(0).normal(size=(10, 4))
    >>> RandomFeatures(n_features=64, sampler="sobol", random_state=0).fit_transform(X).shape
    (10, 128)
    >>> est = RandomFeatures(n_components=64, length_scale="median", random_state=0).fit(X)
    >>> est.n_features_, est.transform(X.astype(np.float32)).dtype
    (32, dtype('float32'))
    """

    def __init__(
        self,
        *,
        feature_map: str = "sincos",
        kernel: str = "gaussian",
        length_scale: float | str = 1.0,
        scale: float = 1.0,
        n_components: int | None = None,
        n_features: int | None = None,
        sampler: Any = "mc",
        weights: Any = "uniform",
        random_state: Any = None,
    ) -> None:
        self.feature_map = feature_map
        self.kernel = kernel
        self.length_scale = length_scale
        self.scale = scale
        self.n_components = n_components
        self.n_features = n_features
        self.sampler = sampler
        self.weights = weights
        self.random_state = random_state

    def _seed(self) -> Any:
        rs = self.random_state
        if rs is None or isinstance(rs, (int, np.integer, np.random.Generator)):
            return None if rs is None else rs if isinstance(rs, np.random.Generator) else int(rs)
        return int(check_random_state(rs).randint(np.iinfo(np.int32).max))

    def _n_features_for(self, columns_per_frequency: int) -> int:
        """The number of frequencies m: ``n_features``, else ``n_components`` columns rounded
        up to whole frequencies of ``columns_per_frequency`` columns each."""
        if self.n_features is not None:
            return check_positive_int(self.n_features, "n_features")
        columns = DEFAULT_N_COMPONENTS if self.n_components is None else self.n_components
        columns = check_positive_int(columns, "n_components")
        n_features = -(-columns // columns_per_frequency)
        if columns % columns_per_frequency:
            warnings.warn(
                f"n_components={columns} is not a multiple of {columns_per_frequency}, the "
                f"columns per frequency of map {self.feature_map!r}: using {n_features} "
                f"frequencies, {n_features * columns_per_frequency} columns (dropping a "
                "column would bias the kernel estimate)",
                UserWarning,
                stacklevel=3,
            )
        return n_features

    def _length_scale(self, X: np.ndarray) -> float:
        if isinstance(self.length_scale, str):
            if self.length_scale != "median":
                raise ValueError(
                    f"length_scale must be a number > 0 or 'median', got {self.length_scale!r}"
                )
            if X.shape[0] < 2:
                raise ValueError(
                    "length_scale='median' needs at least 2 samples for a pairwise distance, "
                    f"got n_samples={X.shape[0]}"
                )
            metric = "cityblock" if self.kernel == "laplacian" else "euclidean"
            return median_pairwise_distance(X, metric=metric)
        return self.length_scale

    def fit(self, X: Any, y: Any = None) -> RandomFeatures:
        from kernelapprox.features import MAPS, make

        X = validate_data(self, X, dtype=[np.float64, np.float32])
        check_choice(self.feature_map, "map", MAPS)
        cls = MAPS[self.feature_map]
        per_frequency = cls.components * (2 if cls.complex_valued else 1)
        n_features = self._n_features_for(per_frequency)
        self.length_scale_ = self._length_scale(X)
        kernel = make_kernel(self.kernel, length_scale=self.length_scale_, scale=self.scale)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            self.map_ = make(
                self.feature_map,
                kernel,
                n_features,
                dim=X.shape[1],
                sampler=self.sampler,
                weights=self.weights,
                seed=self._seed(),
            )
        reemit_once(caught)
        self.n_features_ = n_features
        self.frequencies_ = self.map_.frequencies
        self.weights_ = self.map_.weights
        self._n_features_out = n_features * per_frequency
        return self

    @property
    def n_frequencies_(self) -> int:
        """Deprecated name of :attr:`n_features_` (until kernelapprox 0.2)."""
        value = self.n_features_  # AttributeError before fit, as for every fitted attribute
        warnings.warn(
            "RandomFeatures.n_frequencies_ is deprecated; use n_features_ (the number of "
            f"frequencies m); n_frequencies_ stops working in kernelapprox {REMOVED_IN}",
            DeprecationWarning,
            stacklevel=2,
        )
        return value

    def transform(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "map_")
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=False)
        phi = self.map_(torch.from_numpy(np.ascontiguousarray(X)))
        if phi.is_complex():
            phi = torch.cat((phi.real, phi.imag), dim=-1)
        return phi.numpy()

    def __sklearn_tags__(self):  # type: ignore[no-untyped-def]
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags
