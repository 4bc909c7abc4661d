r"""APT: the outlier term of the salience is the square root of the positive excess kurtosis.

Statement
---------
APT's outlier-aware salience adds, for each channel $j$ of a site with activations
$H_{\cdot j}$ over all samples and positions,
$$\sqrt{\max(\kappa_j, 0)}, \qquad \kappa_j = \frac{m_4}{m_2^2} - 3, \quad
m_q = \frac{1}{n} \sum_{b,t} \big(H_{btj} - \bar H_{\cdot j}\big)^q,$$
the (biased, Fisher) excess kurtosis, summed over the channels of a group: 0 for a Gaussian
channel, negative (so no term) for a uniform one ($-6/5$), positive for heavy tails
(Laplace: 3). Accumulated over several forward calls of one step, the moments are those of all
the calls' activations together.

Source
------
Zhao, Hajishirzi & Cao (ICML 2024), APT, Sec. 4.1 and the official code's outlier-aware
salience (used for LLaMA); `shared/reference/model_compression.md` §2.

Method
------
Reference `scipy.stats.kurtosis(..., fisher=True, bias=True)` in float64, against
`kernelapprox.compression.pruning.salience.excess_kurtosis` (from the package's raw moment
sums), against the difference `group_salience(..., kurtosis=True) - group_salience(...,
kurtosis=False)` for groups of 1 and 4 channels, and against a `SalienceTracker` with the
outlier term that sees the same activations split over two forward calls. Channels: Gaussian,
uniform, Laplace, Student-t(5), exponential and two-point (exactly a tenth $+1$, the rest
$-1$: $\kappa = (1 - 6pq)/(pq) = 46/9$ in closed form), with means up to 2 standard deviations;
a constant channel must score 0. Tolerance $10^{-9}$ absolute on $\kappa$ (plus $10^{-15}$ of
the score where a difference of two scores is compared, their round-off): the raw-moment
formula loses about $(1 + |\bar H|/\sigma)^4 \cdot n \cdot \varepsilon \approx 10^{-11}$ here
($n \le 600$, $\varepsilon = 1.1 \times 10^{-16}$), far below the 3 that separates excess
from plain kurtosis.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from ._core import Verdict, package_module
from ._numerical import Checks, numerical_claim

SEED = 20240718
TOLERANCE = 1e-9


def _channels(rng: np.random.Generator, n: int) -> np.ndarray:
    """``(n, 8)`` activations: one channel per law, the last two repeated/constant."""
    two_point = rng.permutation(np.where(np.arange(n) < n // 10, 1.0, -1.0))  # exactly 10 %
    cols = [
        rng.normal(0.5, 1.0, n),
        rng.uniform(-1.0, 3.0, n),
        rng.laplace(-1.0, 0.7, n),
        rng.standard_t(5, n) * 0.5 + 1.0,
        two_point,
        rng.normal(2.0, 1.0, n),
        rng.exponential(1.0, n),
        np.full(n, 0.75),
    ]
    return np.stack(cols, axis=1)


def run(*, thorough: bool = False, seed: int = SEED) -> Verdict:
    import torch

    pruning = package_module("kernelapprox.compression.pruning")
    from kernelapprox.compression.pruning import salience

    rng = np.random.default_rng(seed)
    checks = Checks()
    worst = dict.fromkeys(
        ("excess_kurtosis", "two_point_closed_form", "group_salience", "tracker"), 0.0
    )
    cases = 6 if thorough else 3
    kappa_range = [np.inf, -np.inf]
    for case in range(cases):
        n = 600 if case % 2 else 240
        h = _channels(rng, n)
        g = rng.normal(size=h.shape)
        # the constant last channel scores 0 by the package's convention (scipy: nan)
        kappa = np.append(stats.kurtosis(h[:, :-1], axis=0, fisher=True, bias=True), 0.0)
        finite = kappa[:-1]
        kappa_range = [min(kappa_range[0], finite.min()), max(kappa_range[1], finite.max())]
        ht = torch.from_numpy(h).reshape(3 if n == 600 else 2, -1, h.shape[1])  # (batch, T, C)
        gt = torch.from_numpy(g).reshape(ht.shape)
        moments = salience._moments(ht)
        got = salience.excess_kurtosis(moments).numpy()
        worst["excess_kurtosis"] = max(worst["excess_kurtosis"], float(np.abs(got - kappa).max()))
        # exactly a tenth of the two-point channel is +1: kappa = (1 - 6 p q) / (p q) = 46/9
        closed = abs(float(got[4]) - 46 / 9)
        worst["two_point_closed_form"] = max(worst["two_point_closed_form"], closed)
        term = np.sqrt(np.maximum(kappa, 0.0))
        for size in (1, 4):
            with_term = salience.group_salience(ht, gt, size, kurtosis=True)
            without = salience.group_salience(ht, gt, size, kurtosis=False)
            want = term.reshape(-1, size).sum(1)
            # the difference of two scores also carries their round-off, 1e-15 of the score
            slack = 1e-15 * float(without.abs().max()) / TOLERANCE
            gap = float(np.abs((with_term - without).numpy() - want).max()) / (1 + slack)
            worst["group_salience"] = max(worst["group_salience"], gap)
        worst["tracker"] = max(worst["tracker"], _tracker_gap(pruning, torch, h, g, term))
    for what, gap in worst.items():
        checks.require(
            gap <= TOLERANCE,
            f"{what}: outlier term differs from scipy's excess kurtosis by {gap:.2e} "
            f"(tolerance {TOLERANCE:g})",
        )
    return checks.verdict(
        f"{cases} sets of 8 channels (κ from {kappa_range[0]:.2f} to {kappa_range[1]:.2f}; "
        f"two-point channel at its closed form 46/9): package vs scipy.stats.kurtosis within "
        f"{max(worst.values()):.1e} (excess_kurtosis, group_salience, SalienceTracker; "
        f"tolerance {TOLERANCE:g})",
        largest_gaps=worst,
        kappa_range=kappa_range,
    )


def _tracker_gap(pruning, torch, h: np.ndarray, g: np.ndarray, term: np.ndarray) -> float:
    """One step of a kurtosis tracker over two forward calls; its score minus the
    compressed score must be the outlier term of all the activations."""
    from torch import nn

    channels = h.shape[1]
    site_module = nn.Identity()
    site = pruning.Site("probe", site_module, "output", "neuron", 1, channels, 0, 0)
    scores = {}
    for kurtosis in (True, False):
        tracker = pruning.SalienceTracker([site], kurtosis=kurtosis)
        with tracker:
            for part_h, part_g in zip(np.array_split(h, 2), np.array_split(g, 2), strict=True):
                x = torch.from_numpy(part_h).requires_grad_(True)
                y = site_module(x)
                (y * torch.from_numpy(part_g)).sum().backward()
            scores[kurtosis] = tracker.step()["probe"].numpy()
    slack = 1e-15 * float(np.abs(scores[False]).max()) / TOLERANCE
    return float(np.abs(scores[True] - scores[False] - term).max()) / (1 + slack)


CLAIM = numerical_claim(
    run,
    name="apt_outlier_kurtosis",
    title="APT: the outlier salience is the square root of the positive excess kurtosis (scipy)",
    source="Zhao, Hajishirzi & Cao (ICML 2024), APT, Sec. 4.1 (outlier-aware salience)",
    family="compression",
    seed=SEED,
    tolerance="1e-9 absolute on the excess kurtosis (raw-moment round-off about 1e-11), plus "
    "1e-15 of the score for a difference of two scores",
    requires=("kernelapprox.compression.pruning",),
    verifies=(
        "kernelapprox.compression.pruning.salience.excess_kurtosis",
        "kernelapprox.compression.pruning.salience.group_salience",
        "kernelapprox.compression.pruning.salience.SalienceTracker.step",
    ),
)
