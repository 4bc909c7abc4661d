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

Cost: a run of width :math:`\ell` is allowed at most :math:`L_\ell = \min(G,\ \lceil \beta G /
2^{\ell} \rceil)` atoms (the *band*, :math:`\beta` = ``band``). Then :math:`2^{\ell} L_\ell
\ge G` (a seed partition into runs of the band exists) and :math:`L_\ell \le 2 L_{\ell+1}`
(a run of the band can always be split into two runs of the next band). Width :math:`\ell`
then costs :math:`O(G L_{\ell+1}^2)` per row instead of :math:`O(G^3)`, vectorized across
rows. With ``band=None`` the recursion is unrestricted and exact over the atoms.

Speed: the bottom-up pass computes the values :math:`F_\ell` only, one tensor operation per
left length :math:`s` covering every :math:`(a, \mathrm{len})` of all rows of a block; the
minimizing splits are recomputed top-down for the :math:`2^\ell` runs actually chosen (the
same sums, so the minimum found is attained). The run costs :math:`C` come from windows of
the prefix sums at the atoms, once per block for the widest band.

The exact optimum over all nested trees is the case "every position is an atom"; a test
checks it against enumeration of every tree on small rows.
"""

from __future__ import annotations

import math

import torch

from kernelapprox._validation import check_positive_int
from kernelapprox.compression.quantization.kmeans import _cost_of_sums, _prefix, _run_cost

__all__ = ["best_nested_tree", "level_weights", "tree_objective"]

_INF = float("inf")
#: Rows per block of the recursion (16-32 ran 20-30 % faster than 64 or more: cache).
_CHUNK = 16


def level_weights(seed_bits: int, top_bits: int) -> dict[int, float]:
    r""":math:`\lambda_\ell = 4^{\ell - b_0}` for :math:`\ell = b_0, \dots, t`."""
    return {bits: 4.0 ** (bits - seed_bits) for bits in range(seed_bits, top_bits + 1)}


def _band(atoms: int, bits: int, band: float | None) -> int:
    if band is None:
        return atoms
    return int(min(atoms, max(1, math.ceil(band * atoms / 2**bits))))


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
    return _tree_of_prefix(
        _prefix(v - v.mean(1, keepdim=True), w), atoms, seed_bits, top_bits, lam, band
    )


def _tree_of_prefix(
    prefix: tuple[torch.Tensor, ...],
    atoms: torch.Tensor,
    seed_bits: int,
    top_bits: int,
    lam: dict[int, float],
    band: float | None,
) -> dict[int, torch.Tensor]:
    """:func:`best_nested_tree` from checked inputs: ``prefix`` (:func:`~.kmeans._prefix` of
    the centred sorted rows) and long ``atoms``; blocks of :data:`_CHUNK` rows."""
    # prefix sums of w, wv, wv^2 at the atoms: C(a, a + len) is a difference of these
    atom_prefix = tuple(p.gather(1, atoms) for p in prefix)
    rows = atoms.shape[0]
    parts = [
        _best_tree(tuple(p[i : i + _CHUNK] for p in atom_prefix), seed_bits, top_bits, lam, band)
        for i in range(0, rows, _CHUNK)
    ]
    found = {bits: torch.cat([p[bits] for p in parts]) for bits in parts[0]}
    return {bits: atoms.gather(1, b) for bits, b in found.items()}


def _best_tree(
    atom_prefix: tuple[torch.Tensor, ...],
    seed_bits: int,
    top_bits: int,
    lam: dict[int, float],
    band: float | None,
) -> dict[int, torch.Tensor]:
    """The tree's run boundaries as atom indices, from the prefix sums at the atoms."""
    rows, atoms = atom_prefix[0].shape
    g = atoms - 1
    # bottom-up: F[l] (rows, g+1, L_l+1), values only (the splits are found top-down)
    length = {bits: _band(g, bits, band) for bits in range(seed_bits, top_bits + 1)}
    cost = _atom_costs(atom_prefix, max(length.values()))  # C(a, a + len), sliced per width
    f = {top_bits: lam[top_bits] * cost[:, :, : length[top_bits] + 1]}
    for bits in range(top_bits - 1, seed_bits - 1, -1):
        own = lam[bits] * cost[:, :, : length[bits] + 1]
        f[bits] = own + _split_costs(f[bits + 1], length[bits])
    partial = _seed_partition(f[seed_bits], 2**seed_bits)
    # top-down: the seed runs from the last one back, then every run's split
    ends = [torch.full((rows,), g, dtype=torch.long)]
    for d in reversed(partial):
        ends.append(ends[-1] - _last_run(d, f[seed_bits], ends[-1]))
    ends.append(torch.zeros(rows, dtype=torch.long))
    bounds = {seed_bits: torch.stack(ends[::-1], 1)}
    for bits in range(seed_bits, top_bits):
        b = bounds[bits]
        a = b[:, :-1]
        s = _best_split(f[bits + 1], a, b.diff(dim=1))
        children = torch.stack([a, a + s], 2).reshape(rows, -1)
        bounds[bits + 1] = torch.cat([children, b[:, -1:]], 1)
    return bounds


def _atom_costs(atom_prefix: tuple[torch.Tensor, ...], length: int) -> torch.Tensor:
    """``C(a, a + len)`` for every atom ``a`` and ``len`` in 0..length: (rows, g+1, L+1).

    Runs past the last atom cost ``inf``. ``atom_prefix`` holds the prefix sums of ``w, wv,
    wv^2`` at the atoms, ``(rows, g+1)`` each.
    """
    rows, atoms = atom_prefix[0].shape
    sums = []
    for p in atom_prefix:
        # window [a, len] = p[a + len]: the last atom's sum repeated past the end
        padded = torch.cat([p, p[:, -1:].expand(rows, length)], 1)
        sums.append(padded.unfold(1, length + 1, 1) - p[:, :, None])
    cost = _cost_of_sums(*sums)
    past = torch.arange(atoms)[:, None] + torch.arange(length + 1)[None, :] >= atoms
    return cost.masked_fill_(past, _INF)


def _split_costs(f: torch.Tensor, big: int) -> torch.Tensor:
    """``min_s F(a, a + s) + F(a + s, a + len)`` for every atom ``a`` and ``len`` in 0..big.

    ``f``: the children's costs (rows, g+1, L_c+1), ``inf`` past the last atom; the answer
    is (rows, g+1, big+1), ``inf`` where no split fits. One step per left length ``s``
    covers every ``(a, len = s + r)``, ``r`` in 0..L_c, at once.
    """
    rows, atoms, width = f.shape
    best = torch.full((rows, atoms, big + 1), _INF, dtype=f.dtype)
    for s in range(min(width - 1, big, atoms - 1) + 1):
        # runs starting at a = 0..g - s: left child F(a, a + s), right F(a + s, a + s + r)
        hi = min(big + 1, s + width)
        cand = f[:, : atoms - s, s : s + 1] + f[:, s:, : hi - s]
        region = best[:, : atoms - s, s:hi]
        torch.minimum(region, cand, out=region)
    return best


def _best_split(f: torch.Tensor, a: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
    """The first ``s`` minimizing ``F(a, a + s) + F(a + s, a + len)`` of runs ``(a, len)``.

    ``f`` (rows, g+1, L_c+1) as in :func:`_split_costs`; ``a``, ``lens`` (rows, runs). The
    candidates are the very sums :func:`_split_costs` minimized, so the minimum found there
    is attained here.
    """
    rows, atoms, width = f.shape
    flat = f.reshape(rows, -1)
    s = torch.arange(width)
    right_len = lens[..., None] - s
    start = a[..., None] + s
    valid = (right_len >= 0) & (right_len < width) & (start < atoms)
    left = flat.gather(1, (a[..., None] * width + s).reshape(rows, -1))
    right_at = start.clamp_max(atoms - 1) * width + right_len.clamp(0, width - 1)
    right = flat.gather(1, right_at.reshape(rows, -1))
    cand = (left + right).reshape(valid.shape)
    return torch.where(valid, cand, _INF).argmin(-1)


def _seed_partition(f: torch.Tensor, runs: int) -> list[torch.Tensor]:
    r"""The costs of the best partitions of the first atoms into ``1..runs - 1`` runs.

    With ``f`` = :math:`F_{b_0}` (rows, g+1, L+1): :math:`D_1(b) = F(0, b)`,
    :math:`D_m(b) = \min_{\mathrm{len}} D_{m-1}(b - \mathrm{len}) + F(b - \mathrm{len}, b)`;
    returns :math:`D_1, \dots, D_{\mathrm{runs}-1}`, (rows, g+1) each.
    """
    rows, atoms, width = f.shape
    top = width - 1
    d = torch.full((rows, atoms), _INF, dtype=f.dtype)
    d[:, :width] = f[:, 0, :]
    # run[b, u] = F(b - len, len) with len = top - u: f with top rows of inf in front
    padded = torch.cat([torch.full((rows, top, width), _INF, dtype=f.dtype), f], 1)
    run = padded.as_strided((rows, atoms, width), (padded.stride(0), width, top), top)
    partial = [d]
    for _ in range(runs - 2):
        earlier = torch.cat([torch.full((rows, top), _INF, dtype=f.dtype), d], 1)
        d = (earlier.unfold(1, width, 1) + run).amin(-1)
        partial.append(d)
    return partial[: runs - 1]


def _last_run(d: torch.Tensor, f: torch.Tensor, end: torch.Tensor) -> torch.Tensor:
    """The first ``len`` minimizing ``D(end - len) + F(end - len, end)``: (rows,)."""
    rows, width = f.shape[0], f.shape[2]
    lens = torch.arange(width)
    start = end[:, None] - lens
    at = start.clamp_min(0)
    cand = d.gather(1, at) + f.reshape(rows, -1).gather(1, at * width + lens)
    return torch.where(start >= 0, cand, _INF).argmin(-1)
