"""Sampler spec strings ``name:option=value,...`` and warnings once per replicated draw."""

import warnings

import numpy as np
import pytest

from kernelapprox import features, kernels
from kernelapprox.sampling import (
    SAMPLERS,
    Halton,
    Lattice,
    QMCBalanceWarning,
    Sobol,
    Spherical,
    from_spec,
    make_sampler,
    sample_frequencies,
    sampler_options,
)


def test_spec_strings_build_the_configured_sampler():
    s = from_spec("spherical:directions=orthogonal")
    assert isinstance(s, Spherical) and s.directions == "orthogonal"
    assert isinstance(s.points, Sobol)
    s = from_spec(" spherical : directions = orthogonal , points = lattice ")
    assert isinstance(s.points, Lattice) and s.directions == "orthogonal"
    s = from_spec("spherical:points=halton:scramble=false")  # a nested spec as a value
    assert isinstance(s.points, Halton) and s.points.scramble is False
    assert from_spec("sobol:scramble=FALSE").scramble is False
    assert from_spec("lattice:shift=0").shift is False
    assert from_spec("lattice:shift=yes").shift is True
    assert (
        type(from_spec("mc")) is SAMPLERS["mc"]
        and type(from_spec("orthogonal:")) is SAMPLERS["orthogonal"]
    )


def test_a_spec_is_accepted_wherever_a_name_is():
    W = sample_frequencies("spherical:directions=orthogonal", kernels.Gaussian(), 8, 4, seed=0)
    ref = Spherical(directions="orthogonal").frequencies(kernels.NORMAL, 8, 4, seed=0)
    np.testing.assert_array_equal(W, ref)
    fm = features.make("sincos", kernels.Gaussian(), 8, dim=4, sampler="sobol:scramble=false")
    assert fm.sampler.scramble is False
    assert sampler_options("spherical") == {"points": None, "directions": "qmc"}
    assert sampler_options("mc") == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("sobel", r"sampler must be one of .*got 'sobel'"),
        ("sobol:scrambled=false", r"sampler 'sobol' has no option 'scrambled'; its options: scr"),
        ("mc:scramble=false", r"sampler 'mc' has no option 'scramble'; its options: none"),
        ("sobol:scramble", r"option 'scramble' must be key=value"),
        ("sobol:scramble=", r"option 'scramble=' must be key=value"),
        ("sobol:scramble=maybe", r"option 'scramble' must be true or false, got 'maybe'"),
        ("sobol:scramble=true,scramble=false", r"option 'scramble' is given twice"),
        ("spherical:directions=random", r"directions must be one of"),
        ("spherical:points=orthogonal", r"points must be a point set"),
        ("spherical:points=nope", r"sampler must be one of"),
    ],
)
def test_bad_specs_name_the_bad_part(text, message):
    with pytest.raises(ValueError, match=message):
        from_spec(text)
    with pytest.raises(ValueError, match=message):
        make_sampler(text)


def test_spec_and_keywords_together_and_non_strings_are_refused():
    with pytest.raises(ValueError, match="either in the spec"):
        make_sampler("sobol:scramble=false", scramble=True)
    with pytest.raises(TypeError, match="spec must be a string"):
        from_spec(3)


def test_a_balance_warning_once_per_replicated_draw():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sample_frequencies("sobol", kernels.Gaussian(), 12, 3, seed=0, replications=6)
        sample_frequencies("spherical", kernels.Gaussian(), 12, 3, seed=0, replications=6)
    assert [issubclass(w.category, QMCBalanceWarning) for w in caught] == [True, True]


@pytest.mark.parametrize(
    "text",
    [
        "mc",
        "sobol:scramble=false",
        "spherical:directions=orthogonal",
        "spherical:points=halton:scramble=false,directions=orthogonal",
        "mub:antithetic=true,radii=frame",
        "lattice:shift=false",
    ],
)
def test_spec_round_trip(text):
    sampler = from_spec(text)
    assert from_spec(sampler.spec).spec == sampler.spec
    assert type(from_spec(sampler.spec)) is type(sampler)
    assert from_spec(text).spec == make_sampler(sampler.spec).spec


def test_spec_names_only_options_that_differ():
    assert from_spec("spherical:directions=qmc,points=sobol").spec == "spherical"
    assert Spherical(directions="orthogonal").spec == "spherical:directions=orthogonal"
    assert from_spec("sobol:scramble=true").spec == "sobol"
    fm = features.make("sincos", kernels.Gaussian(), 4, dim=2, sampler="sobol:scramble=false")
    assert "sampler='sobol:scramble=false'" in repr(fm)
