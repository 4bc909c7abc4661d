"""A scikit-learn transformer over kernelapprox's feature maps."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data


class RandomFeatures(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Random-feature transformer: ``fit`` draws the frequencies, ``transform`` is deterministic.

    Parameters
    ----------
    feature_map : str, default "sincos"
        One of :data:`kernelapprox.features.MAPS`.
    kernel : {"gaussian", "laplacian", "softmax"}, default "gaussian"
    length_scale : float, default 1.0
        Gaussian/Laplacian length scale (``RBFSampler(gamma)`` is ``1 / sqrt(2 gamma)``).
    scale : float, default 1.0
        Softmax scale.
    n_features : int, default 100
        Number of frequencies ``m``; the output width is ``m`` times the map's components
        (2 for ``sincos``/``hyperbolic``; complex ``fourier`` features are returned as
        ``[Re, Im]``, which gives the same Gram matrix).
    sampler : str or scipy QMCEngine, default "mc"
    weights : "uniform" or array of shape (n_features,), default "uniform"
    random_state : int, RandomState, Generator or None
        Seeds the frequency draw.

    Attributes
    ----------
    map_ : FeatureMap
        The fitted map; ``map_.frequencies`` are the input-space frequencies.
    frequencies_ : ndarray of shape (n_features, n_features_in_)
    weights_ : ndarray of shape (n_features,)
    n_features_in_ : int

    Examples
    --------
    >>> import numpy as np
    >>> from kernelapprox.features import RandomFeatures
    >>> X = np.random.default_rng(0).normal(size=(10, 4))
    >>> RandomFeatures(n_features=64, sampler="sobol", random_state=0).fit_transform(X).shape
    (10, 128)
    """

    def __init__(
        self,
        *,
        feature_map: str = "sincos",
        kernel: str = "gaussian",
        length_scale: float = 1.0,
        scale: float = 1.0,
        n_features: int = 100,
        sampler: Any = "mc",
        weights: Any = "uniform",
        random_state: Any = None,
    ) -> None:
        self.feature_map = feature_map
        self.kernel = kernel
        self.length_scale = length_scale
        self.scale = scale
        self.n_features = n_features
        self.sampler = sampler
        self.weights = weights
        self.random_state = random_state

    def _seed(self) -> Any:
        rs = self.random_state
        if rs is None or isinstance(rs, (int, np.integer, np.random.Generator)):
            return None if rs is None else rs if isinstance(rs, np.random.Generator) else int(rs)
        return int(check_random_state(rs).randint(np.iinfo(np.int32).max))

    def fit(self, X: Any, y: Any = None) -> RandomFeatures:
        from kernelapprox.features import make
        from kernelapprox.kernels import make_kernel

        X = validate_data(self, X, dtype=[np.float64, np.float32])
        kernel = make_kernel(self.kernel, length_scale=self.length_scale, scale=self.scale)
        self.map_ = make(
            self.feature_map,
            kernel,
            self.n_features,
            dim=X.shape[1],
            sampler=self.sampler,
            weights=self.weights,
            seed=self._seed(),
        )
        self.frequencies_ = self.map_.frequencies
        self.weights_ = self.map_.weights
        width = self.map_.output_dim
        self._n_features_out = 2 * width if self.map_.complex_valued else width
        return self

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
