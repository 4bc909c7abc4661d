"""DiJiang's positive fixed features (Theorem 3.2, Eq. 9), built from the package for the claims.

:math:`\\phi(x)^\\top \\phi(y)
= e^{-\\|x\\|^2 - \\|y\\|^2} \\frac1m \\sum_i e^{r_i v_i^\\top (x + y)}` with radii
:math:`r_i = \\Phi^{-1}(t_i)` and unit directions :math:`v_i`. This is exactly the package's
positive map for the Gaussian kernel, ``features.make("positive", kernels.Gaussian(1.0), ...)``
(``exp(w.u - |u|^2)``, uniform weights ``1/m``); the claims only choose the frequencies:

* ``radial="chi"`` (what the proof needs): the package's spherical-radial sampler with Monte
  Carlo points, ``r = F_{chi_d}^{-1}(t)`` and ``v = g / |g|``, ``g = Phi^{-1}(u_{1:d})``
  (:class:`kernelapprox.sampling.Spherical`), so ``r v ~ N(0, I_d)``;
* ``radial="normal"`` (the released code's radius law, ``Normal(0, 1).icdf(torch.rand(...))``,
  with the theorem's uniform directions): not a package sampler, so it is assembled here from
  package pieces, the same spherical sampler's directions and standard-normal radii through
  :meth:`kernelapprox.kernels.SpectralMeasure.ppf` of Monte Carlo uniforms. It is kept only as
  the experiment's model of the released code.
"""

from __future__ import annotations

import numpy as np
from scipy import special

from kernelapprox import features, kernels
from kernelapprox.sampling import MonteCarlo, Spherical

from ._stats import uniform_directions

#: The unit Gaussian kernel K_G(x, y) = exp(-|x - y|^2 / 2) of Theorem 3.2.
GAUSSIAN = kernels.Gaussian(1.0)
#: Chi radius and uniform direction from independent Monte Carlo uniforms.
SPHERICAL_MC = Spherical(points=MonteCarlo())
RADIAL = ("chi", "normal")


def gaussian_kernel(x: np.ndarray, y: np.ndarray) -> float:
    """``K_G(x, y)`` from :class:`kernelapprox.kernels.Gaussian`."""
    return float(GAUSSIAN(x[None, :], y[None, :])[0, 0])


def pff_frequencies(seed: np.random.SeedSequence, m: int, d: int, *, radial: str) -> np.ndarray:
    """``r_i v_i`` with ``t_i ~ U(0, 1)``, uniform directions ``v_i`` and ``r = F^{-1}(t)``.

    ``radial="chi"``: ``F`` is the chi distribution with ``d`` degrees of freedom (the law of
    ``|N(0, I_d)|``); ``radial="normal"``: ``F`` is the standard normal CDF (released code).
    """
    if radial not in RADIAL:
        raise ValueError(f"radial must be 'chi' or 'normal'; got {radial!r}")
    direction_seed, radius_seed = seed.spawn(2)
    w = SPHERICAL_MC.frequencies(GAUSSIAN.spectral_measure, m, d, seed=direction_seed)
    if radial == "chi":
        return w
    v = w / np.linalg.norm(w, axis=1, keepdims=True)
    t = MonteCarlo().uniform_points(m, 1, seed=radius_seed)[:, 0]
    return kernels.NORMAL.ppf(t)[:, None] * v


def pff_map(frequencies: np.ndarray) -> features.FeatureMap:
    """The package's Gaussian positive map (PFF, Eq. 9) on the given frequencies."""
    return features.Positive.from_frequencies(GAUSSIAN, frequencies)


def pff_estimate(x: np.ndarray, y: np.ndarray, frequencies: np.ndarray) -> float:
    """``phi(x) . phi(y)`` of :func:`pff_map`: ``exp(-|x|^2 - |y|^2) mean_i exp(w_i . (x + y))``."""
    return float(pff_map(frequencies).gram(x[None, :], y[None, :])[0, 0])


def normal_radii_limit(x: np.ndarray, y: np.ndarray) -> float:
    """The m -> infinity limit with standard-normal radii and uniform directions.

    With ``r ~ N(0, 1)``, ``E_r[e^{r c}] = e^{c^2/2}``, and for ``v`` uniform on the sphere
    ``(v . s)^2 / |s|^2 ~ Beta(1/2, (d-1)/2)``, whose moment-generating function is
    ``1F1(1/2; d/2; .)``; hence the limit ``e^{-|x|^2-|y|^2} 1F1(1/2; d/2; |x+y|^2/2)``.
    """
    s = x + y
    return float(np.exp(-x @ x - y @ y) * special.hyp1f1(0.5, x.size / 2, s @ s / 2))


def input_pair(seed: int, d: int, norm: float) -> tuple[np.ndarray, np.ndarray]:
    """A fixed pair of inputs with norm ``norm`` in random directions."""
    rng = np.random.default_rng(seed)
    dirs = uniform_directions(rng, 2, d)
    return norm * dirs[0], norm * dirs[1]
