"""Samplers with options on the study's sampler axis (``spherical:directions=orthogonal``)."""

from __future__ import annotations

import pytest

from kernelapprox.cli.study import _samplers
from kernelapprox.study.report import SAMPLER_STYLE, sampler_style
from kernelapprox.study.spec import StudySpec


def test_options_after_a_colon_stay_with_their_sampler() -> None:
    assert _samplers("mc,spherical:directions=orthogonal,points=lattice,sobol") == [
        "mc",
        "spherical:directions=orthogonal,points=lattice",
        "sobol",
    ]
    assert _samplers("mc, sobol") == ["mc", "sobol"]


def test_a_spec_validates_through_the_sampler_and_names_the_bad_option() -> None:
    spec = StudySpec(samplers=["mc", "spherical:directions=orthogonal"])
    assert spec.validate() is spec
    with pytest.raises(ValueError, match="no option 'scrambled'"):
        StudySpec(samplers=["sobol:scrambled=false"]).validate()
    with pytest.raises(ValueError, match="samplers"):
        StudySpec(samplers=["nonsense"]).validate()


def test_a_variant_keeps_its_base_colour_and_gets_its_own_marker() -> None:
    variant = sampler_style("spherical:directions=orthogonal")
    assert variant[0] == SAMPLER_STYLE["spherical"][0]
    assert variant != SAMPLER_STYLE["spherical"]
    assert sampler_style("spherical:directions=orthogonal") == variant  # fixed, not drawn
