"""One colour and one marker per implementation, the same in every figure of the package.

The study figures give each sampler a fixed colour and marker (``SAMPLER_STYLE`` in
:mod:`kernelapprox.study.report`, matplotlib's ``tab10`` cycle ``C0``..``C8``). The figures
that compare implementations (the attention benchmark, the full-width vs compressed dynamics
runs) use this table instead, with colours taken outside ``tab10`` (ColorBrewer's *Dark2*,
and grey for an exact or full-size reference), so that no implementation is drawn in a
sampler's colour. A name not in the table is drawn in black with a circle.
"""

from __future__ import annotations

#: ``name -> (colour, marker)``; the reference of each comparison is grey.
IMPLEMENTATION_STYLE: dict[str, tuple[str, str]] = {
    "ours": ("#1b9e77", "o"),  # feature attention in torch
    "triton": ("#7570b3", "D"),  # the same attention in Triton kernels
    "sdpa": ("0.35", "s"),  # exact softmax attention, the reference
    "performer": ("#d95f02", "^"),  # performer-pytorch's FastAttention
    "fla": ("#e7298a", "v"),  # flash-linear-attention's chunked kernel
    "full": ("0.35", "s"),  # the full-width model, the reference of the compressed one
    "compressed": ("#1b9e77", "o"),  # the compressed (width 2r) model
    "frozen": ("#e6ab02", "v"),  # the compressed model with its outer factors frozen
    "est": ("#66a61e", "P"),  # evolving subnetwork training, against "full" fine-tuning
}

#: The style of a reference curve (a rate guide such as ``T`` or ``T^2``).
GUIDE_COLOR = "0.6"


def implementation_style(name: str) -> tuple[str, str]:
    """``(colour, marker)`` of an implementation (black circle for an unknown name)."""
    return IMPLEMENTATION_STYLE.get(name, ("k", "o"))
