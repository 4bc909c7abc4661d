r"""The feature maps compute their closed forms, with exact gradients, and are unbiased.

Statement
---------
With frequencies $w_1, \dots, w_m$, offsets $b_i$ and $u$ the scaled input, the package's maps
are
$$\phi_{\text{sincos}}(u) = \tfrac{1}{\sqrt m}\bigl[\cos(w_i^\top u)\bigr]_i \oplus
\tfrac{1}{\sqrt m}\bigl[\sin(w_i^\top u)\bigr]_i,\qquad
\phi_{\text{cos\_offset}}(u) = \sqrt{\tfrac2m}\bigl[\cos(w_i^\top u + b_i)\bigr]_i,$$
$$\phi_{\text{positive}}(u) = \tfrac{1}{\sqrt m}\bigl[e^{w_i^\top u - \|u\|^2/2}\bigr]_i,\qquad
\phi_{\text{hyperbolic}}(u) = \tfrac{e^{-\|u\|^2/2}}{\sqrt{2m}}
\bigl[e^{w_i^\top u}\bigr]_i \oplus
\tfrac{e^{-\|u\|^2/2}}{\sqrt{2m}}\bigl[e^{-w_i^\top u}\bigr]_i,$$
and their gradients are the derivatives of these expressions. For $w_i \sim N(0, I)$ and
$b_i \sim U[0, 2\pi)$, $E[\phi(x)^\top\phi(y)]$ is the Gaussian kernel $e^{-\|x-y\|^2/2}$ for the
trigonometric maps and the softmax kernel $e^{x^\top y}$ for the exponential ones.

Source
------
Rahimi & Recht, "Random Features for Large-Scale Kernel Machines", NIPS 2007 (Bochner; both
trigonometric maps); Choromanski et al., "Rethinking Attention with Performers", ICLR 2021
(arXiv 2009.14794), Lemma 1 (positive and hyperbolic features).

Method
------
Each map is built with given frequencies (`from_frequencies`) and evaluated in float64 on a
batch of inputs of shape $(2, 3, d)$ twice: without gradients (the in-place branch) and with
`requires_grad` (the autograd branch, which the maps compute separately). Both must equal the
closed forms, computed here with numpy, to a relative $10^{-12}$ (rounding of the phases and
exponents is below $10^{-14}$ here); the autograd gradient of $\sum \phi(X) \odot C$ for a fixed
random $C$ must equal the hand-derived gradient to the same tolerance. Then $R$ maps drawn with
independent seeds estimate $k(x, y)$ at a fixed pair; the mean must lie within 5 standard errors
of the exact kernel.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from kernelapprox.estimators.replications import mean_and_se
from kernelapprox.features import CosOffset, Hyperbolic, Positive, SinCos
from kernelapprox.kernels import Gaussian, Softmax

from ._core import Verdict
from ._numerical import Checks, numerical_claim, z_score

SEED = 20071203
DIM, M = 3, 5
RTOL = 1e-12


def closed_form(name: str, X: np.ndarray, W: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The map's features from its formula (module docstring): ``(..., output_dim)``."""
    phase = X @ W.T
    m = W.shape[0]
    sq = 0.5 * np.sum(X**2, axis=-1, keepdims=True)
    if name == "sincos":
        return np.concatenate((np.cos(phase), np.sin(phase)), axis=-1) / math.sqrt(m)
    if name == "cos_offset":
        return math.sqrt(2.0 / m) * np.cos(phase + b)
    if name == "positive":
        return np.exp(phase - sq) / math.sqrt(m)
    return np.concatenate((np.exp(phase - sq), np.exp(-phase - sq)), axis=-1) / math.sqrt(2 * m)


def closed_form_gradient(
    name: str, X: np.ndarray, W: np.ndarray, b: np.ndarray, C: np.ndarray
) -> np.ndarray:
    """``d/dX sum(phi(X) * C)`` from the derivatives of the closed forms."""
    phase = X @ W.T
    m = W.shape[0]
    if name == "sincos":
        Cc, Cs = C[..., :m], C[..., m:]
        return ((-np.sin(phase) * Cc + np.cos(phase) * Cs) @ W) / math.sqrt(m)
    if name == "cos_offset":
        return (-math.sqrt(2.0 / m) * np.sin(phase + b) * C) @ W
    phi = closed_form(name, X, W, b)
    if name == "positive":
        return (phi * C) @ W - X * np.sum(phi * C, axis=-1, keepdims=True)
    plus, minus = phi[..., :m] * C[..., :m], phi[..., m:] * C[..., m:]
    return (plus - minus) @ W - X * np.sum(phi * C, axis=-1, keepdims=True)


MAPS = {
    "sincos": (SinCos, Gaussian()),
    "cos_offset": (CosOffset, Gaussian()),
    "positive": (Positive, Softmax()),
    "hyperbolic": (Hyperbolic, Softmax()),
}


def run(*, thorough: bool = False, seed: int = SEED) -> Verdict:
    checks = Checks()
    form_seed, kernel_seed = np.random.SeedSequence(seed).spawn(2)
    rng = np.random.default_rng(form_seed)
    W = rng.standard_normal((M, DIM))
    b = rng.uniform(0.0, 2.0 * math.pi, M)
    X = 0.7 * rng.standard_normal((2, 3, DIM))
    gaps: dict[str, float] = {}
    for name, (cls, kernel) in MAPS.items():
        extra = {"offsets": b} if name == "cos_offset" else {}
        feature_map = cls.from_frequencies(kernel, W, **extra)
        expected = closed_form(name, X, W, b)
        plain = feature_map(torch.from_numpy(X)).numpy()
        tracked = torch.from_numpy(X.copy()).requires_grad_(True)
        features = feature_map(tracked)
        C = rng.standard_normal(expected.shape)
        (grad,) = torch.autograd.grad((features * torch.from_numpy(C)).sum(), tracked)
        scale = np.max(np.abs(expected))
        gaps[f"{name} values"] = float(np.max(np.abs(plain - expected)) / scale)
        gaps[f"{name} values (autograd)"] = float(
            np.max(np.abs(features.detach().numpy() - expected)) / scale
        )
        reference = closed_form_gradient(name, X, W, b, C)
        gaps[f"{name} gradient"] = float(
            np.max(np.abs(grad.numpy() - reference)) / np.max(np.abs(reference))
        )
    for key, gap in gaps.items():
        checks.require(gap <= RTOL, f"{key} differ from the closed form by {gap:.1e} (relative)")
    # unbiasedness: R independently drawn maps at one pair (x, y)
    R = 2000 if thorough else 400
    x, y = np.array([[0.3, -0.2, 0.4]]), np.array([[-0.1, 0.25, 0.2]])
    zs: dict[str, float] = {}
    for (name, (cls, kernel)), child in zip(
        MAPS.items(), kernel_seed.spawn(len(MAPS)), strict=True
    ):
        exact = float(kernel(x, y)[0, 0])
        estimates = [
            float(cls(kernel, 16, dim=DIM, seed=s).gram(x, y)[0, 0]) for s in child.spawn(R)
        ]
        mean, se = mean_and_se(estimates)
        zs[name] = z_score(mean, exact, se)
        checks.within(
            zs[name], 5, f"{name}: mean estimate {mean:.5f} is {zs[name]:+.1f} SE from {exact:.5f}"
        )
    worst = max(gaps.values())
    return checks.verdict(
        f"four maps equal their closed forms and gradients to {worst:.1e} (limit {RTOL:.0e}), "
        "with and without autograd; unbiased over "
        f"{R} maps: " + ", ".join(f"{k} {v:+.1f} SE" for k, v in zs.items()),
        gaps=gaps,
        z=zs,
        maps=R,
    )


CLAIM = numerical_claim(
    run,
    name="feature_map_forms",
    title="Feature maps: closed forms, exact gradients and unbiased kernel estimates",
    source="Rahimi & Recht (NIPS 2007); Choromanski et al. (ICLR 2021) Lemma 1",
    family="random_features",
    seed=SEED,
    tolerance="1e-12 relative to the closed forms; means within 5 standard errors",
    verifies=(
        "kernelapprox.features.trigonometric.SinCos._trig_blocks",
        "kernelapprox.features.trigonometric.CosOffset._phase",
        "kernelapprox.features.trigonometric.CosOffset._trig_blocks",
        "kernelapprox.features.exponential.Hyperbolic.log_row_scale",
        "kernelapprox.features.exponential.Hyperbolic._log_blocks",
        "kernelapprox.features.exponential._Exponential.log_row_scale",
        "kernelapprox.features._base.FeatureMap.gram",
    ),
)
