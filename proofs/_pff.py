"""DiJiang's positive fixed features (Theorem 3.2, Eq. 9), in plain numpy for the claims.

:math:`\\phi(x)^\\top \\phi(y)
= e^{-\\|x\\|^2 - \\|y\\|^2} \\frac1m \\sum_i e^{r_i v_i^\\top (x + y)}` with radii
:math:`r_i = \\Phi^{-1}(t_i)` and unit directions :math:`v_i`. With the chi_d inverse CDF,
:math:`w_i = r_i v_i \\sim N(0, I_d)` and the estimate is unbiased for the Gaussian kernel
:math:`K_G(x, y) = e^{-\\|x - y\\|^2/2}`.

This module will give way to ``kernelapprox.features`` (the ``dct``/PFF maps) once that exists.
"""

from __future__ import annotations

import numpy as np
from scipy import special, stats

from proofs._stats import uniform_directions


def gaussian_kernel(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.exp(-np.sum((x - y) ** 2) / 2))


def pff_estimate(x: np.ndarray, y: np.ndarray, frequencies: np.ndarray) -> float:
    """``exp(-|x|^2 - |y|^2) mean_i exp(w_i . (x + y))`` for frequencies ``w`` of shape (m, d)."""
    return float(np.exp(-x @ x - y @ y) * np.mean(np.exp(frequencies @ (x + y))))


def pff_frequencies(rng: np.random.Generator, m: int, d: int, *, radial: str) -> np.ndarray:
    """``r_i v_i`` with ``t_i ~ U(0, 1)``, uniform directions and ``r = F^{-1}(t)``.

    ``radial="chi"``: ``F`` is the chi distribution with ``d`` degrees of freedom (the law of
    ``|N(0, I_d)|``, what the proof of Theorem 3.2 needs). ``radial="normal"``: ``F`` is the
    standard normal CDF, as in the released code (``Normal(0, 1).icdf(torch.rand(...))``).
    """
    t = rng.random(m)
    if radial == "chi":
        radii = stats.chi.ppf(t, d)
    elif radial == "normal":
        radii = stats.norm.ppf(t)
    else:
        raise ValueError(f"radial must be 'chi' or 'normal'; got {radial!r}")
    return radii[:, None] * uniform_directions(rng, m, d)


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
