"""A map's closed-form variance comes from the map itself (FeatureMap.variance_family)."""

from __future__ import annotations

import numpy as np
import pytest

from kernelapprox import features
from kernelapprox.estimators.predictions import entrywise_variance
from kernelapprox.kernels import Gaussian, Softmax


class _MySinCos(features.SinCos):
    name = "my_sincos"


def test_a_new_map_of_a_known_family_needs_no_edit_of_the_predictions(monkeypatch) -> None:
    monkeypatch.setitem(features.MAPS, "my_sincos", _MySinCos)
    X = np.random.default_rng(0).normal(size=(5, 3)) * 0.3
    cases = ((Gaussian(1.5), "mc"), (Gaussian(1.5), "orthogonal"), (Softmax(), "mc"))
    for kernel, sampler in cases:
        want = entrywise_variance("sincos", kernel, sampler, X, 16)
        got = entrywise_variance("my_sincos", kernel, sampler, X, 16)
        assert want is not None
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize(
    ("name", "family"),
    [
        ("sincos", "sincos"),
        ("fourier", "sincos"),
        ("cos_offset", "cos_offset"),
        ("positive", "positive"),
        ("hyperbolic", "hyperbolic"),
        ("dct", None),
        ("dct_released", None),
    ],
)
def test_each_registered_map_names_its_family(name: str, family: str | None) -> None:
    assert features.MAPS[name].variance_family == family
    assert features.MAPS[name].needs_point_set == name.startswith("dct")
