"""The shared input checks of :mod:`kernelapprox._validation`."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kernelapprox._validation import as_data_array, as_finite_array, check_bool, check_real_finite
from kernelapprox.dynamics.theorem import verify_invariant_subspace
from kernelapprox.sampling.qmc import Sobol


@pytest.mark.parametrize("value", [True, False, np.bool_(True)])
def test_check_bool_accepts_booleans(value):
    assert check_bool(value, "flag") is bool(value)


@pytest.mark.parametrize("value", ["no", "False", 0, 1, None, 1.0, np.int64(1), [True]])
def test_check_bool_refuses_everything_else(value):
    with pytest.raises(TypeError, match=r"^flag must be True or False"):
        check_bool(value, "flag")


@pytest.mark.parametrize(
    "call",
    [
        lambda: Sobol(scramble="no"),
        lambda: verify_invariant_subspace(dim=6, rank=1, steps=1, progress="no"),
    ],
    ids=["Sobol(scramble)", "verify_invariant_subspace(progress)"],
)
def test_public_boolean_options_are_checked(call):
    with pytest.raises(TypeError, match="must be True or False"):
        call()


@pytest.mark.parametrize("backend", [np.asarray, torch.as_tensor])
def test_check_real_finite_is_one_check_for_both_backends(backend):
    check_real_finite(backend([[1.0, 2.0]]), "X")
    with pytest.raises(ValueError, match=r"^X contains NaN or infinite values$"):
        check_real_finite(backend([[1.0, np.nan]]), "X")
    with pytest.raises(ValueError, match=r"^X contains NaN or infinite values$"):
        check_real_finite(backend([np.inf]), "X")
    with pytest.raises(TypeError, match=r"^X must be real-valued"):
        check_real_finite(backend([1.0 + 2.0j]), "X")


def test_as_finite_array_no_longer_drops_an_imaginary_part():
    with pytest.raises(TypeError, match=r"^data must be real-valued"):
        as_finite_array(np.array([1.0 + 1e-3j]), "data")
    with pytest.raises(TypeError, match=r"^X must be real-valued"):
        as_data_array(torch.zeros(2, 2, dtype=torch.complex128), "X")
    with pytest.raises(TypeError, match="numeric array"):
        as_finite_array(["a"], "data")


def test_as_finite_array_takes_any_real_tensor():
    out = as_finite_array(torch.ones(2, 2, dtype=torch.bfloat16), "X")
    assert out.dtype == np.float64 and out.tolist() == [[1.0, 1.0], [1.0, 1.0]]
    x = np.arange(3.0)
    assert as_finite_array(x, "x") is x  # float64 input is not copied


def test_seed_like_is_a_type_alias_of_every_accepted_seed() -> None:
    import typing

    from kernelapprox._validation import SeedLike, as_seed_sequence

    args = typing.get_args(SeedLike)
    assert {int, np.random.SeedSequence, np.random.Generator, type(None)} <= set(args)
    assert any(
        isinstance(a, typing.ForwardRef) and a.__forward_arg__ == "torch.Generator" for a in args
    )
    for seed in (
        None,
        3,
        np.int64(3),
        np.random.SeedSequence(3),
        np.random.default_rng(3),
        torch.Generator().manual_seed(3),
    ):
        assert isinstance(as_seed_sequence(seed), np.random.SeedSequence)
