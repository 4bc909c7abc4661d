"""Each trigonometric and hyperbolic map against its closed form, on every code path.

The maps compute in place when no autograd graph is needed and out of place otherwise, and
``cos_offset`` adds its offsets with ``addmm`` for 2-D input but with a broadcast for batched
input: a formula can be right on one path and wrong on the other. Unbiasedness does not
notice such bugs (``[cos, cos]``, a phase ``w.u - 2b`` with uniform ``b`` or the pair
``[e^{w.u}, e^{w.u}]`` are all still unbiased), so every path is compared here with the
formula written out in numpy (float64) from the map's frequencies, offsets and weights:

* ``sincos``: ``phi(x) = sqrt(xi) [cos(w.x), sin(w.x)]`` (all cosines, then all sines;
  Rahimi & Recht, NIPS 2007);
* ``cos_offset``: ``phi(x) = sqrt(2 xi) cos(w.x + b)`` (scikit-learn's ``RBFSampler``);
* ``hyperbolic``: ``phi(x) = sqrt(xi / 2) e^{-|u|^2/2} [e^{w.u}, e^{-w.u}]`` with
  ``u = x * input_scale`` (Choromanski et al., ICLR 2021, Lemma 1, Eq. 7), and
  ``e^{-|u|^2}`` instead of ``e^{-|u|^2/2}`` for the Gaussian target.

Gradients (the out-of-place path) are checked against central finite differences
(:func:`torch.autograd.gradcheck` in float64).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kernelapprox import features, kernels

X = 0.6 * np.random.default_rng(11).normal(size=(7, 3))
U64 = 2.0**-53
#: Rounding allowance in units of u: each side rounds the phase ``w.x`` (``d = 3`` products,
#: error <= 3 u sum_k |w_k x_k|, Higham 2002, §3.1), the function and the weight (1 u
#: each); two sides: ``2 * (3 + 1)``. Measured: at most 2.3 for the cases below.
GROWTH = 8.0


def _assert_within_rounding(got, expected, magnitude, size) -> None:
    """``|got - expected| <= GROWTH u (1 + magnitude) size`` entry by entry, where
    ``magnitude`` bounds the exponent or phase (``sum_k |w_k x_k|``, plus ``|u|^2`` for the
    exponential maps) and ``size`` is the entry's scale (``sqrt(xi)``, or its value)."""
    bound = GROWTH * U64 * (1.0 + magnitude) * size
    excess = np.abs(got - expected) / bound
    assert excess.max() <= 1.0, f"rounding allowance exceeded {excess.max():.3g}-fold"


def _paths(X: np.ndarray) -> dict[str, torch.Tensor]:
    """The same input through the in-place path, the autograd path and a batched shape."""
    x = torch.from_numpy(X)
    return {"no_grad": x, "requires_grad": x.clone().requires_grad_(), "batched": x[None]}


def _evaluate(fm, x: torch.Tensor) -> np.ndarray:
    return fm(x).detach().reshape(-1, fm.output_dim).numpy()


def sincos_reference(fm, X: np.ndarray):
    """Features, phase magnitudes and entry scales (see :func:`_assert_within_rounding`)."""
    phase = X @ fm.frequencies.T
    root = np.sqrt(fm.weights)
    magnitude = np.abs(X) @ np.abs(fm.frequencies).T
    features_ = np.concatenate((root * np.cos(phase), root * np.sin(phase)), axis=1)
    return features_, np.tile(magnitude, 2), np.tile(root, (len(X), 2))


def cos_offset_reference(fm, X: np.ndarray):
    root = np.sqrt(2.0 * fm.weights)
    magnitude = np.abs(X) @ np.abs(fm.frequencies).T + fm.offsets
    return root * np.cos(X @ fm.frequencies.T + fm.offsets), magnitude, np.tile(root, (len(X), 1))


def hyperbolic_reference(fm, X: np.ndarray):
    u = X * fm.kernel.input_scale
    projection = u @ fm.standard_frequencies.T
    norm2 = (u**2).sum(axis=1, keepdims=True)
    prefactor = np.exp(-0.5 * norm2 if fm.kernel.unit == "softmax" else -norm2)
    root = np.sqrt(fm.weights / 2.0)
    features_ = np.concatenate(
        (root * prefactor * np.exp(projection), root * prefactor * np.exp(-projection)), axis=1
    )
    magnitude = np.abs(u) @ np.abs(fm.standard_frequencies).T + norm2
    return features_, np.tile(magnitude, 2), np.abs(features_)


CASES = [
    pytest.param("sincos", kernels.Gaussian(1.3), sincos_reference, id="sincos-gaussian"),
    pytest.param("sincos", kernels.Laplacian(1.5), sincos_reference, id="sincos-laplacian"),
    pytest.param("cos_offset", kernels.Gaussian(0.8), cos_offset_reference, id="cos_offset"),
    pytest.param("hyperbolic", kernels.Softmax(0.7), hyperbolic_reference, id="hyperbolic-softmax"),
    pytest.param(
        "hyperbolic", kernels.Gaussian(1.2), hyperbolic_reference, id="hyperbolic-gaussian"
    ),
]


@pytest.mark.parametrize(("name", "kernel", "reference"), CASES)
@pytest.mark.parametrize("path", ["no_grad", "requires_grad", "batched"])
def test_every_path_equals_the_closed_form(name, kernel, reference, path):
    fm = features.make(name, kernel, 9, dim=3, seed=4)
    expected, magnitude, size = reference(fm, X)
    got = _evaluate(fm, _paths(X)[path])
    assert got.shape == expected.shape
    _assert_within_rounding(got, expected, magnitude, size)


@pytest.mark.parametrize(("name", "kernel", "reference"), CASES)
def test_gradient_matches_finite_differences(name, kernel, reference):
    fm = features.make(name, kernel, 5, dim=3, seed=2)
    x = torch.from_numpy(X[:3]).clone().requires_grad_()
    assert torch.autograd.gradcheck(fm, (x,), eps=1e-6, atol=1e-8, rtol=1e-6)


def test_sincos_gradient_is_the_derivative_of_the_closed_form():
    """d/dx [cos(w.x), sin(w.x)] = [-sin(w.x) w, cos(w.x) w]: summed over the features with
    weights c, the gradient is -sum_l c_l sqrt(xi_l) sin(w_l.x) w_l + ... ."""
    fm = features.make("sincos", kernels.Gaussian(1.1), 6, dim=3, seed=8)
    c = np.random.default_rng(1).normal(size=fm.output_dim)
    x = torch.from_numpy(X).clone().requires_grad_()
    (grad,) = torch.autograd.grad((fm(x) * torch.from_numpy(c)).sum(), x)
    W, root = fm.frequencies, np.sqrt(fm.weights)
    phase = X @ W.T
    m = fm.n_features
    d_phase = c[:m] * root * -np.sin(phase) + c[m:] * root * np.cos(phase)
    # each term c_l sqrt(xi_l) trig(phase) w_lk: the allowance of a feature, times |c_l w_lk|
    # (the final sums over l add m u relative to the absolute sum: GROWTH covers m = 6)
    magnitude = (np.abs(X) @ np.abs(W).T).max()
    size = (np.abs(c[:m]) + np.abs(c[m:])) * root @ np.abs(W)
    _assert_within_rounding(
        grad.numpy(), d_phase @ W, magnitude + m, np.broadcast_to(size, X.shape)
    )


def test_hyperbolic_pair_terms_are_the_cosh_formula():
    """t_l(x, y) = e^{-(|u|^2 + |v|^2)/2} cosh(w_l.(u + v)) for the softmax kernel (Eq. 7)."""
    kernel = kernels.Softmax(0.7)
    fm = features.make("hyperbolic", kernel, 8, dim=3, seed=3)
    Y = X[::-1].copy()
    u, v = X * kernel.input_scale, Y * kernel.input_scale
    expected = np.exp(-0.5 * ((u**2).sum(1) + (v**2).sum(1)))[:, None] * np.cosh(
        (u + v) @ fm.standard_frequencies.T
    )
    magnitude = np.abs(u + v) @ np.abs(fm.standard_frequencies).T
    magnitude = magnitude + ((u**2).sum(1) + (v**2).sum(1))[:, None]
    _assert_within_rounding(fm.pair_terms(X, Y), expected, magnitude, np.abs(expected))
