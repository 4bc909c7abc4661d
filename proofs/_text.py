"""Math in the evidence a claim reports: plain Unicode text.

A verdict's summary is shown as written in a terminal (``kernelapprox verify``) and on the
theory pages (``proofs/_render.py``, as Markdown text), so its math is Unicode that both show:
``±``, ``≤``, ``≥``, ``√``, ``Σ``, Greek letters, and superscripts and subscripts where Unicode
has them (``W⁴``, ``3⁻⁶``, ``Eₖ``); a subscript Unicode lacks stays ``K_G``.
"""

from __future__ import annotations

_SUPERSCRIPTS = str.maketrans("0123456789-+", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻⁺")


def superscript(exponent: int) -> str:
    """``exponent`` in superscript digits: ``superscript(-6) == "⁻⁶"``."""
    if not isinstance(exponent, int) or isinstance(exponent, bool):
        raise TypeError(f"exponent must be an integer, got {exponent!r}")
    return str(exponent).translate(_SUPERSCRIPTS)
