r"""Which blocks to keep under a parameter budget: APT's density ranking and prefix search.

Every block :math:`i` (a head, a neuron, a hidden dimension, of any layer) has a salience
:math:`s_i` and owns :math:`p_i > 0` parameters. APT (Zhao, Hajishirzi & Cao, ICML 2024,
Sec. 4.2) sorts all blocks together by density :math:`s_i / p_i`, largest first, and keeps the
longest prefix of that order whose parameters fit the budget :math:`B`:

.. math::

    k^\star = \max\Big\{k : \sum_{r \le k} p_{\pi(r)} \le B\Big\}, \qquad
    \text{kept} = \{\pi(1), \dots, \pi(k^\star)\},

found by binary search over :math:`k` (the prefix sums increase, since every :math:`p_i > 0`).
So the kept count never exceeds :math:`B`, and unless every block is kept it is within one
block of it: :math:`B - \sum_{r \le k^\star} p_{\pi(r)} < p_{\pi(k^\star + 1)} \le \max_i p_i`
(claim ``apt_budget_search``). Ties in density keep the lower index first (a stable sort).

Hidden dimensions couple the counts: a head of a model that keeps :math:`d'` of its :math:`d`
hidden dimensions owns :math:`d_h (4 d' + 3)` parameters, not :math:`d_h (4 d + 3)`
(:mod:`~kernelapprox.compression.pruning.hidden`). Then the blocks are still ranked by their
full-size density and the prefix is searched against the exact count :math:`C` of the kept
set, :math:`k^\star = \max\{k : C(\{\pi(1), \dots, \pi(k)\}) \le B\}` (``cost`` of
:func:`select_blocks`). Since :math:`C` grows when a block is added, by at most that block's
full-size :math:`p_i`, the two guarantees above hold unchanged.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from kernelapprox.compression.pruning.salience import HIDDEN, Site


@dataclass(frozen=True)
class Selection:
    """The outcome of :func:`select_blocks`.

    Attributes
    ----------
    keep : torch.Tensor
        Boolean mask over the blocks, in the input order.
    order : torch.Tensor
        Block indices by decreasing density.
    n_kept : int
        :math:`k^\\star`, the length of the kept prefix.
    kept_params : int
        :math:`\\sum_{r \\le k^\\star} p_{\\pi(r)}`.
    budget : float
        :math:`B`.
    """

    keep: torch.Tensor
    order: torch.Tensor
    n_kept: int
    kept_params: int
    budget: float


def _as_vector(x: Any, name: str) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        t = x.detach().cpu()
    else:
        try:
            # through numpy: a list of Python floats stays float64 (torch's default is float32)
            t = torch.from_numpy(np.asarray(x))
        except (TypeError, ValueError, RuntimeError) as err:
            raise TypeError(f"{name} must be a 1-D tensor or sequence of numbers") from err
    if t.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {tuple(t.shape)}")
    if t.dtype == torch.bool or t.is_complex():
        raise TypeError(f"{name} must hold real numbers, got dtype {t.dtype}")
    return t


def longest_prefix(fits: Callable[[int], bool], n: int) -> int:
    """Largest ``k`` in ``0..n`` with ``fits(k)`` by bisection, for a ``fits`` that holds for
    every prefix shorter than one that fits (``fits(0)`` is taken to hold)."""
    lo, hi = 0, n  # invariant: prefix lo fits, prefix hi + 1 does not
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


def prefix_length(cumulative: torch.Tensor, budget: float) -> int:
    """Largest ``k`` with ``cumulative[k - 1] <= budget`` (0 if none) by bisection, for an
    increasing ``cumulative``."""
    return longest_prefix(lambda k: float(cumulative[k - 1]) <= budget, int(cumulative.numel()))


def select_blocks(
    salience: Any,
    params: Any,
    budget: float,
    *,
    cost: Callable[[torch.Tensor], int] | None = None,
) -> Selection:
    """Keep the densest blocks whose parameters fit ``budget`` (module docstring).

    Parameters
    ----------
    salience : 1-D tensor or sequence
        Score :math:`s_i` of each block (finite; any sign).
    params : 1-D tensor or sequence of int
        Parameters :math:`p_i \\ge 1` of each block.
    budget : float
        Parameter budget :math:`B \\ge 0`.
    cost : callable, optional
        ``cost(keep) -> int``, the exact parameters of a kept set (a bool mask over the
        blocks), for blocks whose counts depend on each other; it must grow by at most
        ``params[i]`` when block ``i`` is added. Default: the sum of ``params`` over the set.

    Returns
    -------
    Selection

    Examples
    --------
    >>> sel = select_blocks([3.0, 1.0, 4.0], [3, 1, 2], budget=5)
    >>> sel.keep.tolist(), sel.kept_params  # densities 1, 1, 2: blocks 2 then 0 fit, 1 not
    ([True, False, True], 5)
    """
    s = _as_vector(salience, "salience").to(torch.float64)
    p = _as_vector(params, "params")
    if p.is_floating_point():
        if not torch.equal(p, p.round()):
            raise ValueError("params must hold whole numbers of parameters")
    p = p.to(torch.int64)
    if s.shape != p.shape:
        raise ValueError(
            f"salience and params must have the same length, got {s.numel()} and {p.numel()}"
        )
    if not bool(torch.isfinite(s).all()):
        raise ValueError("salience must be finite (no nan or inf)")
    if p.numel() and int(p.min()) < 1:
        raise ValueError("params must be >= 1 for every block")
    if isinstance(budget, bool) or not isinstance(budget, numbers.Real):
        raise TypeError(f"budget must be a real number, got {budget!r}")
    budget = float(budget)
    if not budget >= 0:
        raise ValueError(f"budget must be >= 0, got {budget}")
    order = torch.sort(s / p.to(torch.float64), descending=True, stable=True).indices

    def prefix(k: int) -> torch.Tensor:
        keep = torch.zeros(s.numel(), dtype=torch.bool)
        keep[order[:k]] = True
        return keep

    if cost is None:
        cumulative = torch.cumsum(p[order], 0)
        k = prefix_length(cumulative, budget)
        kept = int(cumulative[k - 1]) if k else 0
    else:
        k = longest_prefix(lambda k: int(cost(prefix(k))) <= budget, s.numel())
        kept = int(cost(prefix(k)))
    keep = prefix(k)
    return Selection(keep=keep, order=order, n_kept=k, kept_params=kept, budget=budget)


def prunable_params(sites: Sequence[Site]) -> int:
    """Parameters owned by the prunable groups of ``sites`` (those with ``params_per_group``)."""
    return sum(s.n_groups * s.params_per_group for s in sites)


def select_masks(
    sites: Sequence[Site],
    scores: Mapping[str, torch.Tensor],
    budget: float,
    *,
    hidden: Any = None,
) -> tuple[dict[str, torch.Tensor], Selection]:
    """Run :func:`select_blocks` over every prunable group of ``sites`` (``params_per_group >
    0``) and split the kept set into one boolean mask per site, ``(masks, selection)``.

    With ``hidden`` (:class:`~kernelapprox.compression.pruning.hidden.HiddenDims`), the hidden
    dimensions are blocks too, scored by the sum of their ``hidden.sites`` scores, and the
    budget is held against the coupled count :meth:`HiddenDims.count
    <kernelapprox.compression.pruning.hidden.HiddenDims.count>` (module docstring); their mask
    is ``masks["hidden"]``."""
    prunable = [s for s in sites if s.params_per_group > 0]
    if not prunable:
        raise ValueError("sites must include a prunable site (params_per_group > 0)")
    for s in prunable:
        if s.name not in scores:
            raise ValueError(f"scores has no entry for site {s.name!r}")
        if scores[s.name].shape != (s.n_groups,):
            raise ValueError(
                f"scores[{s.name!r}] must have shape ({s.n_groups},), got "
                f"{tuple(scores[s.name].shape)}"
            )
    salience = [scores[s.name].detach().cpu().to(torch.float64) for s in prunable]
    params = [torch.full((s.n_groups,), s.params_per_group) for s in prunable]
    bounds = torch.tensor([0, *(s.n_groups for s in prunable)]).cumsum(0).tolist()
    cost = None
    if hidden is not None:
        salience.append(hidden.scores(scores))
        params.append(torch.full((hidden.width,), hidden.params_per_dim(prunable)))

        def cost(keep: torch.Tensor) -> int:
            kept = {
                s.name: int(keep[a:b].sum())
                for s, a, b in zip(prunable, bounds[:-1], bounds[1:], strict=True)
            }
            return hidden.count(prunable, kept, int(keep[bounds[-1] :].sum()))

    sel = select_blocks(torch.cat(salience), torch.cat(params), budget, cost=cost)
    masks = {
        s.name: sel.keep[a:b].clone()
        for s, a, b in zip(prunable, bounds[:-1], bounds[1:], strict=True)
    }
    if hidden is not None:
        masks[HIDDEN] = sel.keep[bounds[-1] :].clone()
        if not bool(masks[HIDDEN].any()):
            raise ValueError(
                f"budget {budget:g} keeps no hidden dimension (an encoder without one "
                "computes nothing): raise the budget or do not prune hidden dimensions"
            )
    return masks, sel
