"""The exact line search that closes :func:`~kernelapprox.sampling.weights.box_weights`.

``_line_search(start, candidate, G, beta)`` returns the minimiser of the box discrepancy's
quadratic ``q(xi) = xi^T G xi - 2 beta^T xi`` on the segment from ``start`` to ``candidate``,
projected onto ``xi >= 0`` (a feature map cannot realise a negative weight, module
docstring of :mod:`kernelapprox.sampling.weights`).

``box_weights`` only ever hands it non-negative candidates (NNLS solutions), and a convex
combination of non-negative floats is non-negative after rounding, so the projection is
unreachable from the public function (600 calls on the hypothesis-style node sets of
``test_weights.py``: it never acted). It is the helper's own guarantee, so the helper is
tested directly: against :func:`scipy.optimize.minimize_scalar` on the segment (an
independent minimiser), and with candidates that leave the orthant.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import optimize

from kernelapprox import discrepancy
from kernelapprox.sampling.weights import _line_search, uniform_weights


def _problem(m: int, seed: int):
    rng = np.random.default_rng(seed)
    nodes = rng.normal(size=(m, 2))
    gram = discrepancy.box_gram(nodes, b=3.0)
    beta = discrepancy.box_mean_embedding(nodes, scale=1.0, b=3.0)
    return gram, beta, rng


def _objective(xi, gram, beta) -> float:
    return float(xi @ gram @ xi - 2.0 * beta @ xi)


@pytest.mark.parametrize("seed", range(6))
def test_minimiser_on_the_segment_matches_scipy(seed):
    m = 12
    gram, beta, rng = _problem(m, seed)
    start = uniform_weights(m)
    candidate = rng.uniform(0.0, 3.0 / m, size=m)  # non-negative, as NNLS returns
    got = _line_search(start, candidate, gram, beta)
    step = candidate - start
    ref = optimize.minimize_scalar(
        lambda t: _objective(start + t * step, gram, beta),
        bounds=(0.0, 1.0),
        method="bounded",
        options={"xatol": 1e-12},
    )
    expected = start + ref.x * step
    # q is quadratic in t: a t-error delta changes xi by delta * |step|; xatol 1e-12 bounds it
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-10 * np.abs(step).max())
    assert _objective(got, gram, beta) <= ref.fun + 1e-12 * abs(ref.fun)
    # never worse than either end of the segment
    assert _objective(got, gram, beta) <= min(
        _objective(start, gram, beta), _objective(candidate, gram, beta)
    ) + 1e-12 * abs(ref.fun)


@pytest.mark.parametrize("seed", range(4))
def test_candidates_outside_the_orthant_give_non_negative_weights(seed):
    """A candidate with negative entries (as an unconstrained solve ``G^{-1} beta`` can be).
    With ``beta = G c`` the quadratic's unconstrained minimiser is ``c`` itself, so on the
    segment to ``candidate = c`` the minimiser is ``t = 1`` (closed form) and the result must
    be ``c`` projected onto ``xi >= 0``."""
    m = 10
    gram, _, rng = _problem(m, seed)
    gram = gram + 1e-3 * np.trace(gram) / m * np.eye(m)  # well conditioned: t = 1 exactly
    c = rng.uniform(0.0, 2.0 / m, size=m)
    c[rng.permutation(m)[: m // 2]] *= -1.0  # half of the entries negative
    beta = gram @ c
    got = _line_search(uniform_weights(m), c, gram, beta)
    assert np.all(got >= 0.0)
    np.testing.assert_allclose(got, np.maximum(c, 0.0), rtol=0, atol=1e-12 / m)
