r"""A linear layer holding every width of a nested quantization, switchable at run time.

:class:`QuantizedLinear` stores the Any-Precision layout (Park et al., ICML 2024, Sec. 4):
``qweight`` of shape ``(n_bits, out, ceil(in / 32))`` int32 (plane 0 most significant) and
one fp16 table ``(out, 2**k)`` per width ``k``. Setting ``layer.bits = k`` selects width
:math:`k` without reloading anything: the weight is :math:`\hat W_{rj} = T_k[r, q^{(k)}_{rj}]`
with :math:`q^{(k)}` read from the first :math:`k` planes.

CPU path: dequantize, then ``F.linear`` (dense matmul). The dequantized weight of the current
width is cached (``cache=True``, one dense matrix in the dtype of the original weight) until
``bits`` changes; ``cache=False`` unpacks on every call (the memory of the planes only).
The paper's table-lookup kernel (bit-transpose then lookup, used below 8 tokens on GPU) has
no CPU counterpart here yet. The ``weight`` and ``bias`` attributes behave like those of
:class:`torch.nn.Linear`, so code that reads ``module.weight`` (the small decoder slices its
projections) works unchanged.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from kernelapprox._validation import check_bool, check_positive_int
from kernelapprox.compression.quantization.nested import NestedQuantization
from kernelapprox.compression.quantization.packing import (
    pack_bitplanes,
    storage_bytes,
    unpack_bitplanes,
)

__all__ = ["QuantizedLinear"]


class QuantizedLinear(nn.Module):
    """``y = x W_k^T + b`` with :math:`W_k` the ``bits``-bit dequantized weight.

    Parameters
    ----------
    quantization : NestedQuantization
        Codes and tables of the weight (``(out, in)``).
    bias : tensor (out,) or None
    dtype : torch.dtype
        Dtype of the dequantized weight and of the computation (that of the original layer).
    bits : int or None
        Initial width (default: the widest).
    cache : bool
        Keep the dequantized weight of the current width.

    Examples
    --------
    >>> from kernelapprox.compression.quantization import nested_quantize
    >>> w = torch.randn(4, 40, generator=torch.Generator().manual_seed(0))
    >>> layer = QuantizedLinear(nested_quantize(w, torch.ones_like(w), max_bits=4), None)
    >>> layer.bits = 3
    >>> layer(torch.ones(2, 40)).shape
    torch.Size([2, 4])
    """

    def __init__(
        self,
        quantization: NestedQuantization,
        bias: torch.Tensor | None,
        *,
        dtype: torch.dtype = torch.float32,
        bits: int | None = None,
        cache: bool = True,
    ) -> None:
        super().__init__()
        if not isinstance(quantization, NestedQuantization):
            raise TypeError(
                f"quantization must be a NestedQuantization, got {type(quantization).__name__}"
            )
        out, cols = quantization.codes.shape
        if bias is not None and (not isinstance(bias, torch.Tensor) or bias.shape != (out,)):
            raise ValueError(f"bias must be None or a tensor of shape ({out},)")
        if dtype not in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
            raise ValueError(f"dtype must be a floating torch dtype, got {dtype!r}")
        self.in_features, self.out_features = cols, out
        self.seed_bits, self.max_bits = quantization.seed_bits, quantization.max_bits
        self.compute_dtype = dtype
        self.cache = check_bool(cache, "cache")
        self.register_buffer("qweight", pack_bitplanes(quantization.codes, self.max_bits))
        for k in quantization.widths:
            self.register_buffer(f"table_{k}", quantization.tables[k].to(torch.float16))
        if bias is None:
            self.register_parameter("bias", None)
        else:
            self.bias = nn.Parameter(bias.detach().to(dtype).clone(), requires_grad=False)
        self._cached: tuple[int, torch.Tensor] | None = None
        self._bits = self.max_bits
        self.bits = self.max_bits if bits is None else bits

    @classmethod
    def from_linear(
        cls, linear: nn.Linear, quantization: NestedQuantization, **kwargs: Any
    ) -> QuantizedLinear:
        """The quantized counterpart of ``linear`` (its bias and dtype) from ``quantization``."""
        if not isinstance(linear, nn.Linear):
            raise TypeError(f"linear must be a torch.nn.Linear, got {type(linear).__name__}")
        if tuple(quantization.codes.shape) != tuple(linear.weight.shape):
            raise ValueError(
                f"quantization is of shape {tuple(quantization.codes.shape)}, linear.weight "
                f"of {tuple(linear.weight.shape)}"
            )
        return cls(quantization, linear.bias, dtype=linear.weight.dtype, **kwargs)

    @property
    def widths(self) -> tuple[int, ...]:
        """The widths this layer can run at."""
        return tuple(range(self.seed_bits, self.max_bits + 1))

    @property
    def bits(self) -> int:
        """The current width; assign any of :attr:`widths` to switch."""
        return self._bits

    @bits.setter
    def bits(self, value: int) -> None:
        value = check_positive_int(value, "bits")
        if not self.seed_bits <= value <= self.max_bits:
            raise ValueError(f"bits must be one of {list(self.widths)}, got {value}")
        if value != self._bits:
            self._cached = None
        self._bits = value

    def table(self, bits: int | None = None) -> torch.Tensor:
        """The fp16 lookup table ``(out, 2**bits)`` of a width (default: the current one)."""
        bits = self._bits if bits is None else bits
        return getattr(self, f"table_{bits}")

    def codes(self, bits: int | None = None) -> torch.Tensor:
        """The codes ``(out, in)`` of a width, unpacked from its first planes."""
        bits = self._bits if bits is None else bits
        return unpack_bitplanes(self.qweight, bits, self.in_features)

    def dequantize(self, bits: int | None = None) -> torch.Tensor:
        """The dequantized weight ``(out, in)`` at ``bits`` (default: current), compute dtype."""
        bits = self._bits if bits is None else bits
        table = self.table(bits).to(self.compute_dtype)
        return table.gather(1, self.codes(bits).to(self.qweight.device))

    @property
    def weight(self) -> torch.Tensor:
        """The current width's dequantized weight (cached when ``cache``)."""
        if self._cached is not None and self._cached[0] == self._bits:
            return self._cached[1]
        w = self.dequantize()
        if self.cache:
            self._cached = (self._bits, w)
        return w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias)

    def nbytes(self, bits: int | None = None) -> dict[str, int]:
        """Exact bytes stored: all planes and tables, or (``bits``) what width ``bits`` reads.

        The bias and the optional cache are not counted.
        """
        if bits is None:
            return storage_bytes(self.out_features, self.in_features, self.max_bits, self.widths)
        bits = check_positive_int(bits, "bits")
        return storage_bytes(self.out_features, self.in_features, bits, [bits])

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bits={self._bits}, widths={self.seed_bits}..{self.max_bits}, "
            f"bias={self.bias is not None}"
        )

    def _apply(self, fn: Any, recurse: bool = True) -> QuantizedLinear:  # device moves
        self._cached = None
        return super()._apply(fn, recurse)
