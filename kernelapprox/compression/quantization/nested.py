r"""Any-Precision nested quantization: a seed k-means, then one bit at a time by splitting.

Park, Hyun, Cho, Sim & Lee, *Any-Precision LLM*, ICML 2024, Sec. 3 (incremental upscaling).
Each output row of a weight matrix, with its diagonal-Fisher sensitivities :math:`w`, is

1. quantized to the seed width :math:`b_0` (default 3) by weighted k-means with
   :math:`2^{b_0}` clusters (:func:`~.kmeans.lloyd_kmeans`: k-means++ then 50 Lloyd steps);
2. upscaled from :math:`k` to :math:`k+1` bits for :math:`k = b_0, \dots, n-1` (default
   :math:`n = 8`) by splitting every cluster -- a contiguous run of the sorted row -- into two
   (:func:`~.kmeans.split_runs`: the exact optimal weighted 2-means of the run, where the
   paper's code runs a 2-means heuristic); the left half gets bit 0, the right half bit 1:

   .. math:: q^{(k+1)}_j = 2\,q^{(k)}_j + \beta_j, \qquad\text{hence}\qquad
             q^{(k)}_j = q^{(n)}_j \gg (n - k),

   and the :math:`k`-bit lookup table :math:`T_k \in \mathbb{R}^{2^k}` is kept as it was when
   width :math:`k` was made. Width :math:`k` dequantizes as :math:`\hat W_{rj} = T_k[r,
   q^{(n)}_{rj} \gg (n - k)]`.

The weighted error :math:`\sum_j w_j (W_{rj} - \hat W_{rj})^2` never increases with
:math:`k` (a split can only lower it). The price of nesting is that the :math:`k`-bit
clustering, :math:`k > b_0`, is not refit: :func:`independent_quantize` runs k-means at
:math:`2^k` clusters directly for comparison, and :func:`~.kmeans.optimal_kmeans` gives the
exact optimum.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from kernelapprox._validation import (
    SeedLike,
    as_seed_sequence,
    check_choice,
    check_positive_int,
)
from kernelapprox.compression.quantization.kmeans import (
    _check_rows,
    _prefix,
    _split_sorted,
    _weighted_means,
    lloyd_kmeans,
    run_bounds,
    weighted_sse,
)
from kernelapprox.compression.quantization.tree import (
    _tree_of_prefix,
    level_weights,
    tree_objective,
)

__all__ = [
    "METHODS",
    "NestedQuantization",
    "check_widths",
    "independent_quantize",
    "nested_quantize",
]

#: Widest code the packed layout supports (codes are held in ``torch.uint8``).
MAX_BITS = 8
#: How the nested clustering is chosen: the paper's upscaling, or the best tree (:mod:`.tree`).
METHODS = ("upscale", "tree")


def check_widths(seed_bits: Any, max_bits: Any) -> tuple[int, int]:
    """``(seed_bits, max_bits)`` checked: integers with ``1 <= seed_bits <= max_bits <= 8``."""
    seed_bits = check_positive_int(seed_bits, "seed_bits")
    max_bits = check_positive_int(max_bits, "max_bits")
    if seed_bits > MAX_BITS or max_bits > MAX_BITS:
        raise ValueError(
            f"seed_bits and max_bits must be <= {MAX_BITS}, got {seed_bits} and {max_bits}"
        )
    if seed_bits > max_bits:
        raise ValueError(
            f"seed_bits must be <= max_bits, got seed_bits={seed_bits} > max_bits={max_bits}"
        )
    return seed_bits, max_bits


@dataclass(frozen=True)
class NestedQuantization:
    """The nested codes and per-width tables of one weight matrix.

    Attributes
    ----------
    codes : uint8 tensor (out, in)
        The ``max_bits``-bit code of every weight.
    tables : dict of int to float64 tensor (out, 2**k)
        The lookup table of each width ``k`` in ``seed_bits..max_bits``.
    seed_bits, max_bits : int
    """

    codes: torch.Tensor
    tables: dict[int, torch.Tensor]
    seed_bits: int
    max_bits: int

    @property
    def widths(self) -> tuple[int, ...]:
        """The widths stored, ``seed_bits..max_bits``."""
        return tuple(range(self.seed_bits, self.max_bits + 1))

    def _check_bits(self, bits: Any) -> int:
        bits = check_positive_int(bits, "bits")
        if bits not in self.tables:
            raise ValueError(f"bits must be one of {list(self.widths)}, got {bits}")
        return bits

    def codes_at(self, bits: int) -> torch.Tensor:
        """The ``bits``-bit codes, ``codes >> (max_bits - bits)`` (long)."""
        bits = self._check_bits(bits)
        return self.codes.to(torch.long) >> (self.max_bits - bits)

    def dequantize(self, bits: int) -> torch.Tensor:
        """The ``bits``-bit weight :math:`T_k[r, q_{rj} \\gg (n-k)]`, float64 (out, in)."""
        return self.tables[bits].gather(1, self.codes_at(bits))

    def sse(self, weight: torch.Tensor, fisher: torch.Tensor, bits: int) -> float:
        """Total weighted squared error at ``bits`` against ``weight`` with sensitivities
        ``fisher`` (float64)."""
        bits = self._check_bits(bits)
        return float(weighted_sse(weight, fisher, self.codes_at(bits), self.tables[bits]).sum())


def _check_matrix(weight: Any, fisher: Any) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(weight, torch.Tensor) or weight.ndim != 2:
        raise TypeError("weight must be a 2-D torch tensor (out, in)")
    if not isinstance(fisher, torch.Tensor) or fisher.shape != weight.shape:
        raise ValueError(f"fisher must be a tensor of the weight's shape {tuple(weight.shape)}")
    return _check_rows(weight, fisher)


def nested_quantize(
    weight: torch.Tensor,
    fisher: torch.Tensor,
    *,
    seed_bits: int = 3,
    max_bits: int = 8,
    iterations: int = 50,
    seed: SeedLike = None,
    method: str = "upscale",
    tree_bits: int = 6,
    band: float | None = 2.0,
) -> NestedQuantization:
    r"""Any-Precision quantization of ``weight`` (see the module docstring).

    Parameters
    ----------
    weight : tensor (out, in)
        The weight matrix; each row is quantized on its own.
    fisher : tensor (out, in)
        Non-negative sensitivities (diagonal Fisher); a row of zeros counts as uniform.
    seed_bits, max_bits : int
        Seed width :math:`b_0` and final width :math:`n`, ``1 <= b_0 <= n <= 8``.
    iterations : int
        Lloyd steps of the seed.
    seed : int, SeedSequence, numpy or torch Generator, or None
        Seeds the k-means++ draws of the seed quantizer; ``None`` (default) draws fresh
        entropy.
    method : {"upscale", "tree"}
        ``"upscale"``: the paper's algorithm (seed k-means, then split every cluster).
        ``"tree"``: the widths ``seed_bits..min(tree_bits, max_bits)`` chosen together as the
        best nested tree (:func:`~.tree.best_nested_tree`, boundaries restricted to those of
        the upscaled clustering one bit finer), kept per row only where its objective
        :math:`\sum_\ell 4^{\ell - b_0} \mathrm{SSE}_\ell` beats the upscaled tree's (so it
        is never worse in that objective); the widths above are upscaled from it.
    tree_bits : int
        The finest width the tree search chooses (``"tree"`` only).
    band : float or None
        The tree search's band (:func:`~.tree.best_nested_tree`).

    Returns
    -------
    NestedQuantization
    """
    seed_bits, max_bits = check_widths(seed_bits, max_bits)
    method = check_choice(method, "method", METHODS)
    tree_bits = check_positive_int(tree_bits, "tree_bits")
    v, w = _check_matrix(weight, fisher)
    as_seed_sequence(seed)
    sv, order = torch.sort(v, dim=1)
    sw = w.gather(1, order)
    codes, table = lloyd_kmeans(sv, sw, 2**seed_bits, iterations=iterations, seed=seed)
    tables = {seed_bits: table}
    prefix = _prefix(sv - sv.mean(1, keepdim=True), sw)
    top = min(tree_bits, max_bits)
    if method == "tree" and top > seed_bits:
        codes, tables = _best_tree(sv, sw, prefix, codes, table, seed_bits, top, band)
    else:
        top = seed_bits
    for bits in range(top + 1, max_bits + 1):
        codes, table = _split_sorted(sv, sw, prefix, codes, tables[bits - 1])
        tables[bits] = table
    out = torch.empty_like(codes).scatter_(1, order, codes)
    return NestedQuantization(out.to(torch.uint8), tables, seed_bits, max_bits)


def _best_tree(
    sv: torch.Tensor,
    sw: torch.Tensor,
    prefix: tuple[torch.Tensor, ...],
    seed_codes: torch.Tensor,
    seed_table: torch.Tensor,
    seed_bits: int,
    top: int,
    band: float | None,
) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
    """Widths ``seed_bits..top`` as the best tree over the upscaled clustering's boundaries.

    Returns the sorted codes at width ``top`` and the table of every width.
    """
    rows, n = sv.shape
    # the paper's tree, one bit beyond `top`: its boundaries are the atoms of the search
    codes, table = seed_codes, seed_table
    upscaled = {seed_bits: codes}
    for bits in range(seed_bits + 1, top + 2):
        codes, table = _split_sorted(sv, sw, prefix, codes, table)
        upscaled[bits] = codes
    atoms = _boundaries(upscaled[top + 1], top + 1)
    weights = level_weights(seed_bits, top)
    found = _tree_of_prefix(prefix, atoms, seed_bits, top, weights, band)
    paper = {bits: _boundaries(upscaled[bits], bits) for bits in weights}
    keep = tree_objective(prefix, found, weights) < tree_objective(prefix, paper, weights)
    pos = torch.arange(n).expand(rows, n).contiguous()
    bounds = torch.where(keep[:, None], found[top], paper[top])
    codes = torch.searchsorted(bounds[:, 1:-1].contiguous(), pos, right=True)
    tables = {}
    for bits in weights:
        level = codes >> (top - bits)
        fallback = (
            tables[bits - 1].repeat_interleave(2, dim=1)
            if bits > seed_bits
            else sv.mean(1, keepdim=True).expand(rows, 2**bits).contiguous()
        )
        tables[bits] = _weighted_means(sv, sw, level, fallback)
    return codes, tables


def _boundaries(sorted_codes: torch.Tensor, bits: int) -> torch.Tensor:
    """The ``2**bits + 1`` run boundaries (0, starts of runs 1.., n) of non-decreasing codes."""
    start, end = run_bounds(sorted_codes, 2**bits)
    return torch.cat([start[:, :1].zero_(), end], 1)


def independent_quantize(
    weight: torch.Tensor,
    fisher: torch.Tensor,
    bits: int,
    *,
    iterations: int = 50,
    seed: SeedLike = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted k-means of each row at ``2**bits`` clusters directly (no nesting).

    Returns ``(codes, table)`` as :func:`~.kmeans.lloyd_kmeans`: long codes (out, in) and a
    float64 table (out, 2**bits).
    """
    bits = check_positive_int(bits, "bits")
    if bits > MAX_BITS:
        raise ValueError(f"bits must be <= {MAX_BITS}, got {bits}")
    v, w = _check_matrix(weight, fisher)
    return lloyd_kmeans(v, w, 2**bits, iterations=iterations, seed=seed)
