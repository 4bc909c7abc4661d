"""``quant_tree_nesting`` measures the enumeration gap against the row's scale, not the optimum.

The optimum of a short row is 0 up to round-off when it has no more weighted values than seed
clusters, so a gap relative to it failed at other seeds (4 of 40 cases at seed offset 3); the
claim now divides by :math:`\\Lambda \\sum w (v - \\bar v)^2`, which bounds every tree's
objective. These tests check that it holds where the old criterion failed and that a planted
wrong split still fails it.
"""

from __future__ import annotations

import pytest
import torch

from kernelapprox.compression.quantization import tree
from proofs import quant_tree_nesting


def test_holds_at_the_seed_where_relative_to_the_optimum_failed() -> None:
    verdict = quant_tree_nesting.run(seed=quant_tree_nesting.SEED + 3)
    assert verdict.status == "holds", verdict.summary
    # a few ulps of the scale (measured 1.0 there), far below the 1e-9 tolerance
    assert verdict.evidence["enumeration_gap"] <= 64 * torch.finfo(torch.float64).eps


def test_a_wrong_split_fails_the_enumeration(monkeypatch: pytest.MonkeyPatch) -> None:
    best = tree.best_nested_tree

    def one_late(*args, **kwargs) -> dict[int, torch.Tensor]:
        # still a nested tree: each split of the widest runs moves one position right, kept
        # inside its parent run; its objective is at least the optimum's
        bounds = best(*args, **kwargs)
        top = max(bounds)
        if top > min(bounds):
            b = bounds[top].clone()
            b[:, 1::2] = torch.minimum(b[:, 1::2] + 1, b[:, 2::2])
            bounds[top] = b
        return bounds

    monkeypatch.setattr(tree, "best_nested_tree", one_late)
    verdict = quant_tree_nesting.run()
    assert verdict.status == "fails"
    assert verdict.evidence["enumeration_gap"] > 1e-3, verdict.summary
