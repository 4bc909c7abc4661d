r"""The best nested clustering of a sorted row: interval dynamic programming over atoms.

Any-Precision's upscaling (:func:`~.kmeans.split_runs`) fixes the :math:`k`-bit clusters
before it makes the :math:`(k+1)`-bit ones, so every width above the seed inherits boundaries
chosen for coarser widths. A nested quantizer is really one binary tree of runs of the sorted
row: the :math:`2^{b_0}` seed runs at its top, each run of width :math:`\ell` split into two
runs of width :math:`\ell + 1`. This module chooses the whole tree at once, minimizing

.. math:: J = \sum_{\ell = b_0}^{t} \lambda_\ell\, \mathrm{SSE}_\ell, \qquad
          \lambda_\ell = 4^{\ell - b_0},

where :math:`\mathrm{SSE}_\ell` is the weighted squared error of width :math:`\ell` (each run
at its weighted mean). The weighted error falls about 4x per added bit (3.3-4.4x measured on
Fisher-weighted rows), so these weights make each width's term comparable: :math:`J` is about
the sum of the widths' errors relative to their own scale, and no width is sacrificed for
another.

The run boundaries are restricted to :math:`G + 1` *atoms* (positions in sorted order, for
example the boundaries of the upscaled clustering at width :math:`t + 1`). With
:math:`C(a, b)` the weighted SSE of the atoms :math:`[a, b)` about their weighted mean (prefix
sums, :math:`O(1)`), the cost of the best subtree of width :math:`\ell` on :math:`[a, b)` is

.. math:: F_t(a, b) = \lambda_t C(a, b), \qquad
          F_\ell(a, b) = \lambda_\ell C(a, b) + \min_{a \le s \le b}
          F_{\ell+1}(a, s) + F_{\ell+1}(s, b),

and the seed level is the best partition of :math:`[0, G)` into :math:`2^{b_0}` runs of cost
:math:`F_{b_0}` (the recursion of :func:`~.kmeans.optimal_kmeans` with :math:`F_{b_0}` in
place of :math:`C`). A run may be empty (a row shorter than the number of clusters).

Cost: a run of width :math:`\ell` is allowed at most :math:`L_\ell = \min(G,\ \beta G /
2^{\ell})` atoms (the *band*, :math:`\beta` = ``band``; :math:`L_\ell = 2 L_{\ell+1}`, so a
run of the band can always be split into two runs of the next band). Width :math:`\ell`
then costs :math:`O(G L_\ell L_{\ell+1})` per row instead of :math:`O(G^3)`, vectorized across
rows. With ``band=None`` the recursion is unrestricted and exact over the atoms.

The exact optimum over all nested trees is the case "every position is an atom"; a test
checks it against enumeration of every tree on small rows.
"""

from __future__ import annotations

import torch

from kernelapprox._validation import check_positive_int
from kernelapprox.compression.quantization.kmeans import _prefix, _run_cost

__all__ = ["best_nested_tree", "level_weights", "tree_objective"]

_INF = float("inf")
#: Rows per block of the recursion.
_CHUNK = 64


def level_weights(seed_bits: int, top_bits: int) -> dict[int, float]:
    r""":math:`\lambda_\ell = 4^{\ell - b_0}` for :math:`\ell = b_0, \dots, t`."""
    return {bits: 4.0 ** (bits - seed_bits) for bits in range(seed_bits, top_bits + 1)}


def _band(atoms: int, bits: int, band: float | None) -> int:
    if band is None:
        return atoms
    return int(min(atoms, max(1, round(band * atoms / 2**bits))))


def tree_objective(
    prefix: tuple[torch.Tensor, ...], bounds: dict[int, torch.Tensor], weights: dict[int, float]
) -> torch.Tensor:
    r"""Per-row :math:`J = \sum_\ell \lambda_\ell \mathrm{SSE}_\ell` of the runs ``bounds``.

    ``bounds[l]`` holds the ``2**l + 1`` run boundaries of width ``l`` (positions in sorted
    order, non-decreasing, from 0 to n); ``prefix`` is :func:`~.kmeans._prefix` of the row.
    """
    total = torch.zeros(bounds[min(bounds)].shape[0], dtype=torch.float64)
    for bits, lam in weights.items():
        b = bounds[bits]
        total = total + lam * _run_cost(prefix, b[:, :-1], b[:, 1:]).sum(1)
    return total


def best_nested_tree(
    sorted_values: torch.Tensor,
    sorted_weights: torch.Tensor,
    atoms: torch.Tensor,
    *,
    seed_bits: int,
    top_bits: int,
    weights: dict[int, float] | None = None,
    band: float | None = 2.0,
) -> dict[int, torch.Tensor]:
    r"""The nested runs minimizing :math:`J` (module docstring) with boundaries at ``atoms``.

    Parameters
    ----------
    sorted_values, sorted_weights : float64 tensor (rows, n)
        Each row sorted ascending by value, with its non-negative sensitivities.
    atoms : long tensor (rows, G + 1)
        Allowed boundaries: non-decreasing positions in ``0..n``, the first 0 and the last n.
    seed_bits, top_bits : int
        The tree's widths, ``seed_bits <= top_bits``.
    weights : dict of int to float, optional
        :math:`\lambda_\ell` per width (default :func:`level_weights`).
    band : float or None
        :math:`\beta`: a run of width :math:`\ell` spans at most :math:`\beta G / 2^\ell`
        atoms; ``None`` for the unrestricted recursion.

    Returns
    -------
    dict of int to long tensor (rows, 2**l + 1)
        The run boundaries of each width ``l`` in ``seed_bits..top_bits`` (positions in
        sorted order); run ``j`` of width ``l`` is the union of runs ``2j`` and ``2j + 1`` of
        width ``l + 1``.
    """
    seed_bits = check_positive_int(seed_bits, "seed_bits", minimum=0)
    top_bits = check_positive_int(top_bits, "top_bits", minimum=seed_bits)
    if band is not None and not band >= 1:
        raise ValueError(f"band must be >= 1 or None, got {band!r}")
    v, w = sorted_values.to(torch.float64), sorted_weights.to(torch.float64)
    rows, n = v.shape
    if atoms.ndim != 2 or atoms.shape[0] != rows or atoms.shape[1] < 2:
        raise ValueError(f"atoms must be (rows, G + 1) with rows={rows}, got {tuple(atoms.shape)}")
    atoms = atoms.to(torch.long)
    if (atoms[:, 0] != 0).any() or (atoms[:, -1] != n).any() or (atoms.diff(dim=1) < 0).any():
        raise ValueError("atoms must be non-decreasing positions from 0 to n in every row")
    lam = level_weights(seed_bits, top_bits) if weights is None else dict(weights)
    if sorted(lam) != list(range(seed_bits, top_bits + 1)):
        raise ValueError(f"weights must have one entry per width {seed_bits}..{top_bits}")
    if rows > _CHUNK:  # the recursion's tensors stay small enough for the cache
        parts = [
            _best_tree(
                v[i : i + _CHUNK],
                w[i : i + _CHUNK],
                atoms[i : i + _CHUNK],
                seed_bits,
                top_bits,
                lam,
                band,
            )
            for i in range(0, rows, _CHUNK)
        ]
        return {bits: torch.cat([p[bits] for p in parts]) for bits in parts[0]}
    return _best_tree(v, w, atoms, seed_bits, top_bits, lam, band)


def _best_tree(
    v: torch.Tensor,
    w: torch.Tensor,
    atoms: torch.Tensor,
    seed_bits: int,
    top_bits: int,
    lam: dict[int, float],
    band: float | None,
) -> dict[int, torch.Tensor]:
    rows = v.shape[0]
    g = atoms.shape[1] - 1
    idx = torch.arange(g + 1)
    prefix = _prefix(v - v.mean(1, keepdim=True), w)
    # prefix sums at the atoms: the cost of atoms [a, a + len) is _run_cost on these
    atom_prefix = tuple(p.gather(1, atoms) for p in prefix)

    def cost(length: int) -> torch.Tensor:
        """``C(a, a + len)`` for every atom ``a`` and ``len`` in 0..length: (rows, g+1, L+1)."""
        lens = torch.arange(length + 1)
        end = idx[:, None] + lens[None, :]
        valid = end <= g
        a = idx[:, None].expand_as(end).reshape(1, -1).expand(rows, -1)
        b = end.clamp_max(g).reshape(1, -1).expand(rows, -1)
        c = _run_cost(atom_prefix, a, b).reshape(rows, g + 1, length + 1)
        return torch.where(valid, c, torch.full_like(c, _INF))

    # bottom-up: F[l] (rows, g+1, L_l+1) and the best left length of every run
    length = {bits: _band(g, bits, band) for bits in range(seed_bits, top_bits + 1)}
    f = lam[top_bits] * cost(length[top_bits])
    split: dict[int, torch.Tensor] = {}
    for bits in range(top_bits - 1, seed_bits - 1, -1):
        big, child = length[bits], length[bits + 1]
        best = torch.full((rows, g + 1, big + 1), _INF, dtype=torch.float64)
        arg = torch.zeros((rows, g + 1, big + 1), dtype=torch.long)
        for s in range(min(child, g) + 1):
            # F(a, a + s) + F(a + s, a + len) for len in s..s + child, a in 0..g - s
            hi = min(big, s + child)
            cand = f[:, : g + 1 - s, s, None] + f[:, s:, : hi + 1 - s]
            region = best[:, : g + 1 - s, s : hi + 1]
            better = cand < region
            region.copy_(torch.minimum(cand, region))
            arg[:, : g + 1 - s, s : hi + 1].masked_fill_(better, s)
        f = lam[bits] * cost(big) + best
        split[bits] = arg
    # the seed partition of [0, g) into 2**seed_bits runs of cost F[seed]
    top = length[seed_bits]
    d = torch.full((rows, g + 1), _INF, dtype=torch.float64)
    d[:, : top + 1] = f[:, 0, : top + 1]
    back = []
    for _ in range(2**seed_bits - 1):
        nd = torch.full_like(d, _INF)
        arg = torch.zeros((rows, g + 1), dtype=torch.long)
        for ln in range(min(top, g) + 1):
            # runs [b - ln, b) for b in ln..g
            cand = d[:, : g + 1 - ln] + f[:, : g + 1 - ln, ln]
            region = nd[:, ln:]
            better = cand < region
            region.copy_(torch.minimum(cand, region))
            arg[:, ln:].masked_fill_(better, ln)
        back.append(arg)
        d = nd
    # top-down: the seed runs, then every run's split
    ends = [torch.full((rows,), g, dtype=torch.long)]
    for arg in reversed(back):
        ends.append(ends[-1] - arg.gather(1, ends[-1][:, None])[:, 0])
    ends.append(torch.zeros(rows, dtype=torch.long))
    bounds_atoms = {seed_bits: torch.stack(ends[::-1], 1)}
    for bits in range(seed_bits, top_bits):
        b = bounds_atoms[bits]
        a, lens = b[:, :-1], b.diff(dim=1)
        s = split[bits].reshape(rows, -1).gather(1, a * (length[bits] + 1) + lens)
        children = torch.stack([a, a + s], 2).reshape(rows, -1)
        bounds_atoms[bits + 1] = torch.cat([children, b[:, -1:]], 1)
    return {bits: atoms.gather(1, b) for bits, b in bounds_atoms.items()}
