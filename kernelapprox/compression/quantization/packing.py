r"""Bit-plane layout of nested codes and its exact byte count.

Any-Precision's layout (Park et al., ICML 2024, Sec. 4; the official code's ``qweight``): the
:math:`n`-bit codes :math:`q \in \{0, \dots, 2^n - 1\}^{\mathrm{out} \times \mathrm{in}}` are
stored as :math:`n` bit-planes in an ``int32`` tensor of shape
``(n, out, ceil(in / 32))``; plane :math:`p` holds bit :math:`n - 1 - p` of every code (plane 0
is the most significant), and bit :math:`i` of word :math:`u` of a row holds column
:math:`32u + i` (least significant bit first; columns past ``in`` are 0). The first :math:`k`
planes are then the :math:`k`-bit model:

.. math:: q^{(k)}_{rj} = \sum_{p=0}^{k-1} 2^{k-1-p}\,\mathrm{plane}_p[r, j] = q_{rj} \gg (n-k).

Bytes (:func:`storage_bytes`): :math:`4\,n\,\mathrm{out}\,\lceil \mathrm{in}/32 \rceil` for
the planes plus :math:`2\,\mathrm{out}\,2^k` per fp16 table of width :math:`k`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from kernelapprox._validation import check_positive_int

__all__ = ["nested_storage", "pack_bitplanes", "storage_bytes", "unpack_bitplanes"]

_WORD = 32
_SHIFTS = torch.arange(_WORD, dtype=torch.int64)


def pack_bitplanes(codes: torch.Tensor, n_bits: int) -> torch.Tensor:
    """Pack ``(out, in)`` codes of ``n_bits`` bits into ``(n_bits, out, ceil(in/32))`` int32.

    Parameters
    ----------
    codes : integer tensor (out, in)
        Values in ``0..2**n_bits - 1``.
    n_bits : int
        Code width, 1..8.

    Returns
    -------
    qweight : int32 tensor
        Plane 0 = most significant bit; see the module docstring.
    """
    n_bits = check_positive_int(n_bits, "n_bits")
    if n_bits > 8:
        raise ValueError(f"n_bits must be <= 8, got {n_bits}")
    if not isinstance(codes, torch.Tensor) or codes.ndim != 2:
        raise TypeError("codes must be a 2-D integer torch tensor (out, in)")
    if codes.dtype.is_floating_point or codes.dtype == torch.bool:
        raise TypeError(f"codes must be an integer tensor, got {codes.dtype}")
    c = codes.to(torch.int64)
    if c.numel() and (int(c.min()) < 0 or int(c.max()) >= 2**n_bits):
        raise ValueError(f"codes must lie in 0..{2**n_bits - 1} for n_bits={n_bits}")
    out, cols = c.shape
    words = -(-cols // _WORD)
    c = torch.nn.functional.pad(c, (0, words * _WORD - cols)).reshape(out, words, _WORD)
    planes = []
    for p in range(n_bits):
        bits = (c >> (n_bits - 1 - p)) & 1
        word = (bits << _SHIFTS).sum(-1)  # < 2**32, exact in int64
        planes.append(torch.where(word >= 2**31, word - 2**32, word))
    return torch.stack(planes).to(torch.int32)


def unpack_bitplanes(qweight: torch.Tensor, bits: int, in_features: int) -> torch.Tensor:
    """The ``bits``-bit codes (long, ``(out, in_features)``) from the first ``bits`` planes."""
    if not isinstance(qweight, torch.Tensor) or qweight.dtype != torch.int32 or qweight.ndim != 3:
        raise TypeError("qweight must be a 3-D int32 tensor (n_bits, out, ceil(in/32))")
    bits = check_positive_int(bits, "bits")
    in_features = check_positive_int(in_features, "in_features")
    if bits > qweight.shape[0]:
        raise ValueError(f"bits must be <= the {qweight.shape[0]} planes stored, got {bits}")
    if qweight.shape[2] != -(-in_features // _WORD):
        raise ValueError(
            f"in_features={in_features} needs {-(-in_features // _WORD)} words per row, "
            f"qweight has {qweight.shape[2]}"
        )
    words = qweight[:bits].to(torch.int64) & 0xFFFFFFFF
    planes = (words[..., None] >> _SHIFTS) & 1  # (bits, out, words, 32)
    planes = planes.reshape(bits, qweight.shape[1], -1)[..., :in_features]
    weights = 2 ** torch.arange(bits - 1, -1, -1, dtype=torch.int64)
    return (planes * weights[:, None, None]).sum(0)


def storage_bytes(
    out_features: int, in_features: int, n_bits: int, table_widths: Iterable[int]
) -> dict[str, int]:
    """Exact bytes of ``n_bits`` int32 bit-planes and fp16 tables of the given widths.

    Returns ``{"planes": ..., "tables": ..., "total": ...}`` with planes
    ``4 * n_bits * out * ceil(in / 32)`` and tables ``sum_k 2 * out * 2**k``.
    """
    out_features = check_positive_int(out_features, "out_features")
    in_features = check_positive_int(in_features, "in_features")
    n_bits = check_positive_int(n_bits, "n_bits")
    widths: list[Any] = list(table_widths)
    for k in widths:
        check_positive_int(k, "table_widths")
    planes = 4 * n_bits * out_features * (-(-in_features // _WORD))
    tables = sum(2 * out_features * 2**k for k in widths)
    return {"planes": planes, "tables": tables, "total": planes + tables}


def nested_storage(
    shapes: Iterable[tuple[int, int]], seed_bits: int, max_bits: int
) -> dict[str, int | float]:
    """Bytes of all widths ``seed_bits..max_bits`` nested, against the alternatives.

    For weight matrices of the given ``(out, in)`` shapes: ``nested`` (``max_bits`` planes and
    a table per width), ``one_model`` (``max_bits`` planes and its table only) and
    ``separate`` (for every width ``k``, ``k`` planes and its table), with the ratios
    ``nested / one_model`` and ``separate / nested``.
    """
    widths = range(seed_bits, max_bits + 1)
    nested = one = separate = 0
    for out, cols in shapes:
        nested += storage_bytes(out, cols, max_bits, widths)["total"]
        one += storage_bytes(out, cols, max_bits, [max_bits])["total"]
        separate += sum(storage_bytes(out, cols, k, [k])["total"] for k in widths)
    if not nested:
        raise ValueError("shapes must name at least one (out, in) matrix")
    return {
        "nested": nested,
        "one_model": one,
        "separate": separate,
        "nested_over_one_model": nested / one,
        "separate_over_nested": separate / nested,
    }
