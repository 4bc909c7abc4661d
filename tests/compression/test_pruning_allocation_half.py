"""APT's top-half rule with an odd number of adapters: the upper half is rounded up.

:func:`~kernelapprox.compression.pruning.adapters.allocate_ranks` grows the
:math:`\\lceil n/2 \\rceil` most salient adapters (those below :math:`r_\\max`) by the common
factor :math:`\\rho = (N_\\mathrm{target} - N_\\mathrm{current}) / \\sum_{top} N_i + 1`. With an
even count rounding does not matter; with an odd one it decides who grows, and with a single
adapter rounding down would mean that it never grows at all, whatever the budget. The expected
ranks below are worked out by hand from the formula (exact: integer budgets, factors that are
whole numbers or whose floor is stated).
"""

from __future__ import annotations

import math

import pytest

from kernelapprox.compression.pruning import allocate_ranks


def test_a_single_adapter_grows_to_the_budget():
    # n = 1: top = {0}; rho = (160 - 80) / 80 + 1 = 2, so r = 8 -> 16 (exactly the target)
    assert allocate_ranks([0.4], [8], [10], 160) == [16]
    # rho = (130 - 80) / 80 + 1 = 1.625: floor(8 * 1.625) = 13 (130 parameters, the target)
    assert allocate_ranks([0.4], [8], [10], 130) == [13]


def test_three_adapters_grow_the_two_most_salient():
    # n = 3: ceil(3/2) = 2 grow, adapters 0 (0.9) and 2 (0.5); adapter 1 (0.1) keeps rank 8.
    # current = 3 * 80 = 240; rho = (400 - 240) / (80 + 80) + 1 = 2 -> [16, 8, 16]
    assert allocate_ranks([0.9, 0.1, 0.5], [8, 8, 8], [10, 10, 10], 400) == [16, 8, 16]


@pytest.mark.parametrize("n", [1, 3, 5, 7, 9])
def test_odd_counts_grow_exactly_the_upper_half_rounded_up(n):
    """Distinct saliences, equal ranks 4 and 10 parameters per rank, budget twice the current:
    rho = (2 N - N) / (k * 40) + 1 with k = ceil(n / 2) growing adapters, N = 40 n, so the
    k most salient get floor(4 rho) and the rest keep 4."""
    salience = [(2 * i % n + 1) / n for i in range(n)]  # n odd: a permutation of 1/n .. 1
    ranks, ppr = [4] * n, [10] * n
    current = 40 * n
    k = math.ceil(n / 2)
    rho = current / (k * 40) + 1
    order = sorted(range(n), key=lambda i: -salience[i])
    expected = [4] * n
    for i in order[:k]:
        expected[i] = math.floor(4 * rho)
    assert allocate_ranks(salience, ranks, ppr, 2 * current) == expected
    assert sum(expected) > 4 * n  # the budget is used: someone grows
