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

import sys
from collections.abc import Iterable
from typing import Any

import torch

from kernelapprox._validation import check_positive_int

__all__ = [
    "nested_storage",
    "pack_bitplanes",
    "storage_bytes",
    "unpack_bitplanes",
    "unpack_bitplanes_uint8",
]

_WORD = 32
_SHIFTS = torch.arange(_WORD, dtype=torch.int64)
_BYTE_SHIFTS = torch.arange(0, _WORD, 8, dtype=torch.int32)
#: ``_SPREAD[v]``: the int64 whose byte ``t`` (in value order) is bit ``t`` of the byte ``v``.
_SPREAD = (((torch.arange(256)[:, None] >> torch.arange(8)) & 1) << (8 * torch.arange(8))).sum(1)


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
    """The ``bits``-bit codes (long, ``(out, in_features)``) from the first ``bits`` planes.

    :math:`q^{(k)} = \\sum_{p<k} 2^{k-1-p}\\,\\mathrm{plane}_p`, evaluated by Horner's rule on
    eight codes at a time (see :func:`unpack_bitplanes_uint8`).
    """
    return unpack_bitplanes_uint8(qweight, bits, in_features).to(torch.long)


def unpack_bitplanes_uint8(qweight: torch.Tensor, bits: int, in_features: int) -> torch.Tensor:
    """The ``bits``-bit codes as ``uint8`` ``(out, in_features)``, from the first planes.

    Each byte :math:`v` of a plane word holds eight consecutive columns; the table
    :data:`_SPREAD` maps it to the int64 whose byte :math:`t` is bit :math:`t` of :math:`v`.
    Horner's rule :math:`s \\leftarrow 2 s + \\mathrm{spread}(v_p)` over the planes then builds,
    in every byte lane of one int64, the code of one column (at most 255, so no lane carries
    into the next), and the int64s read as bytes (lane order fixed with :data:`sys.byteorder`)
    are the codes in column order.
    """
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
    out = qweight.shape[1]
    spread = _SPREAD.to(qweight.device)
    lanes = None
    for p in range(bits):
        # the four bytes of every word, least significant first (column order)
        octets = (qweight[p, :, :, None] >> _BYTE_SHIFTS.to(qweight.device)) & 0xFF
        term = spread[octets.to(torch.long)]
        lanes = term if lanes is None else lanes * 2 + term
    assert lanes is not None
    codes = lanes.view(torch.uint8).reshape(out, -1, 8)
    if sys.byteorder != "little":
        codes = codes.flip(-1)
    return codes.reshape(out, -1)[:, :in_features]


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
