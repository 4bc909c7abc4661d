"""The feature-map registry: a class joins ``MAPS`` by being defined with ``register=True``."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from kernelapprox import features
from kernelapprox.features import _base
from kernelapprox.study.spec import StudySpec


@pytest.fixture
def registry() -> Iterator[dict[str, type[features.FeatureMap]]]:
    saved = dict(_base.REGISTRY)
    yield _base.REGISTRY
    _base.REGISTRY.clear()
    _base.REGISTRY.update(saved)


def test_the_built_in_maps_in_their_documented_order() -> None:
    assert list(features.MAPS) == [
        "sincos",
        "cos_offset",
        "fourier",
        "positive",
        "hyperbolic",
        "dct",
        "dct_released",
    ]
    assert features.MAPS is _base.REGISTRY
    assert all(name == cls.name for name, cls in features.MAPS.items())


def test_one_class_is_all_a_new_map_needs(registry) -> None:
    class RenamedSinCos(features.SinCos, register=True):
        """A map no module of the package knows (the sin/cos map under another name)."""

        name = "renamed_sincos"

    assert registry["renamed_sincos"] is RenamedSinCos
    X = np.random.default_rng(0).normal(size=(4, 3))
    phi = features.make("renamed_sincos", "gaussian", 8, dim=3, seed=0)
    assert isinstance(phi, RenamedSinCos)
    np.testing.assert_array_equal(phi(X), features.make("sincos", "gaussian", 8, dim=3, seed=0)(X))
    assert features.incompatibility("gaussian", "renamed_sincos", "sobol") == ""
    StudySpec(maps=["renamed_sincos"]).validate()


def test_subclasses_stay_private_unless_they_register(registry) -> None:
    class Variant(features.Positive):
        name = "private_variant"

    assert "private_variant" not in registry
    with pytest.raises(ValueError, match="map"):
        features.make("private_variant", "softmax", 4, dim=2)


def test_registering_needs_an_own_unused_name(registry) -> None:
    with pytest.raises(TypeError, match="own non-empty `name`"):

        class Nameless(features.SinCos, register=True):
            pass

    with pytest.raises(ValueError, match="'positive' is registered already"):

        class Clash(features.Hyperbolic, register=True):
            name = "positive"

    assert registry["positive"] is features.Positive
