r"""A linear layer holding every width of a nested quantization, switchable at run time.

:class:`QuantizedLinear` stores the Any-Precision layout (Park et al., ICML 2024, Sec. 4):
``qweight`` of shape ``(n_bits, out, ceil(in / 32))`` int32 (plane 0 most significant) and
one fp16 table ``(out, 2**k)`` per width ``k``. Setting ``layer.bits = k`` selects width
:math:`k` without reloading anything: the weight is :math:`\hat W_{rj} = T_k[r, q^{(k)}_{rj}]`
with :math:`q^{(k)}` read from the first :math:`k` planes.

Paths (``backend=``, one switch; ``"auto"`` picks per call, see :meth:`QuantizedLinear.path`):

* ``"dequantize"``: form :math:`\hat W` (``table.gather(codes)``), then ``F.linear`` (a dense
  matmul). With ``cache=True`` the dequantized weight of the current width is kept (one dense
  matrix in the dtype of the original weight) until ``bits`` changes; ``cache=False``
  unpacks on every call.
* ``"lookup"`` (:func:`lookup_linear`): never forms :math:`\hat W`. For every token
  :math:`x` and row :math:`r`, with :math:`S_{rc} = \sum_{j:\,q^{(k)}_{rj} = c} x_j` (a
  scatter-add of :math:`x` by the row's codes),

  .. math:: y_r = \sum_j T_k[r, q^{(k)}_{rj}]\, x_j = \sum_{c < 2^k} T_k[r, c]\, S_{rc},

  accumulated in float32 (float64 for a float64 layer). Its temporaries are the int64 codes
  of a block of at most :data:`LOOKUP_COLUMNS` columns (8 bytes each) and the sums :math:`S`
  of at most :data:`LOOKUP_SUMS` elements, never an ``(out, in)`` float matrix; the
  uncached dequantize path holds the int64 codes of every column plus the dense weight (12
  bytes per weight in float32).
* ``"triton"``: the Triton kernel of :mod:`._triton` (the planes read inside the kernel).

The ``weight`` and ``bias`` attributes behave like those of :class:`torch.nn.Linear`, so code
that reads ``module.weight`` (the small decoder slices its projections) works unchanged.

A GPT-2 ``Conv1D`` of Hugging Face transformers (``y = x W + b`` with ``W`` of shape
``(in, out)``) is the linear map of :math:`W^\top`; :func:`output_rows` gives the weight of
either kind as ``(out, in)`` rows, and :meth:`QuantizedLinear.from_linear` replaces either
(its ``weight`` is then ``(out, in)``, the transpose of the ``Conv1D``'s).
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from kernelapprox._validation import check_bool, check_choice, check_positive_int
from kernelapprox.compression.quantization.nested import NestedQuantization
from kernelapprox.compression.quantization.packing import (
    pack_bitplanes,
    storage_bytes,
    unpack_bitplanes,
)

__all__ = [
    "BACKENDS",
    "LOOKUP_MAX_TOKENS",
    "QuantizedLinear",
    "is_linear",
    "lookup_linear",
    "output_rows",
]

#: Values of ``backend``: ``"auto"`` (the measured rule of :meth:`QuantizedLinear.path`) or
#: one path always.
BACKENDS = ("auto", "dequantize", "lookup", "triton")
#: ``"auto"`` takes the lookup path on CPU for at most this many tokens when ``cache`` is off.
LOOKUP_MAX_TOKENS = 1
#: Columns whose codes the lookup path unpacks at a time (a multiple of 32).
LOOKUP_COLUMNS = 1024
#: At most this many sums ``S`` (tokens x out x 2**bits) are held at a time by the lookup path.
LOOKUP_SUMS = 1 << 22


def _conv1d_type() -> type | None:
    """transformers' ``Conv1D`` class if transformers is imported (a model holding one has
    imported it), else ``None``; transformers is never imported here."""
    module = sys.modules.get("transformers.pytorch_utils")
    return getattr(module, "Conv1D", None)


def is_linear(module: nn.Module) -> bool:
    """Whether ``module`` is a :class:`torch.nn.Linear` or a transformers GPT-2 ``Conv1D``."""
    conv1d = _conv1d_type()
    return isinstance(module, nn.Linear) or (conv1d is not None and isinstance(module, conv1d))


def output_rows(module: nn.Module) -> torch.Tensor:
    """The weight of a linear ``module`` as ``(out, in)`` rows, one per output: an
    ``nn.Linear``'s ``weight``, the transpose (a view) of a ``Conv1D``'s ``(in, out)`` one."""
    if not is_linear(module):
        raise TypeError(
            "module must be a torch.nn.Linear or a transformers Conv1D, "
            f"got {type(module).__name__}"
        )
    return module.weight if isinstance(module, nn.Linear) else module.weight.T


def lookup_linear(
    x: torch.Tensor,
    qweight: torch.Tensor,
    table: torch.Tensor,
    bits: int,
    in_features: int,
    bias: torch.Tensor | None = None,
) -> torch.Tensor:
    r"""``x W_k^T + b`` by table lookup, without forming :math:`W_k` (see the module docstring).

    Parameters
    ----------
    x : float tensor (tokens, in_features)
    qweight : int32 tensor (n_bits, out, ceil(in_features / 32))
        The bit planes; the first ``bits`` are read.
    table : tensor (out, 2**bits)
        :math:`T_k`.
    bits, in_features : int
    bias : tensor (out,) or None

    Returns
    -------
    tensor (tokens, out) in ``x.dtype``; sums in float32 (float64 when ``x`` is float64).
    """
    bits = check_positive_int(bits, "bits")
    if not isinstance(x, torch.Tensor) or x.ndim != 2 or x.shape[1] != in_features:
        raise ValueError(f"x must be a 2-D tensor (tokens, {in_features})")
    if qweight.ndim != 3 or bits > qweight.shape[0]:
        raise ValueError(f"bits must be <= the planes of qweight, got {bits}")
    out, levels = table.shape
    if levels != 2**bits or out != qweight.shape[1]:
        raise ValueError(f"table must be ({qweight.shape[1]}, 2**bits = {2**bits})")
    acc = torch.float64 if x.dtype == torch.float64 else torch.float32
    xa, ta = x.to(acc), table.to(acc)
    tokens = xa.shape[0]
    y = torch.zeros(tokens, out, dtype=acc, device=x.device)
    step_words = LOOKUP_COLUMNS // 32
    step_tokens = max(1, LOOKUP_SUMS // (out * levels))
    for w0 in range(0, qweight.shape[2], step_words):
        c0, c1 = 32 * w0, min(in_features, 32 * (w0 + step_words))
        codes = unpack_bitplanes(qweight[:bits, :, w0 : w0 + step_words], bits, c1 - c0)
        for t0 in range(0, tokens, step_tokens):
            xs = xa[t0 : t0 + step_tokens, None, c0:c1]
            shape = (xs.shape[0], out, c1 - c0)
            sums = torch.zeros(xs.shape[0], out, levels, dtype=acc, device=x.device)
            sums.scatter_add_(2, codes.expand(shape), xs.expand(shape))
            y[t0 : t0 + step_tokens] += (sums * ta).sum(-1)
    if bias is not None:
        y += bias.to(acc)
    return y.to(x.dtype)


def to_float16(table: torch.Tensor) -> torch.Tensor:
    """``table`` rounded once to the nearest float16 (ties to even).

    torch converts float64 to float16 by way of float32, rounding twice: about one value in
    20,000 of a standard normal sample lands one float16 step away from the nearest (e.g.
    ``-1.51416017`` becomes ``-1.513671875``, not ``-1.5146484375``). numpy rounds once.
    """
    if table.dtype != torch.float64:
        return table.to(torch.float16)
    rounded = table.detach().cpu().numpy().astype(np.float16)
    return torch.from_numpy(rounded).to(table.device)


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
    backend : str
        One of :data:`BACKENDS`: ``"auto"`` (default; :meth:`path` chooses per call),
        ``"dequantize"``, ``"lookup"`` or ``"triton"``.

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
        backend: str = "auto",
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
        self.backend = backend
        self.register_buffer("qweight", pack_bitplanes(quantization.codes, self.max_bits))
        for k in quantization.widths:
            self.register_buffer(f"table_{k}", to_float16(quantization.tables[k]))
        if bias is None:
            self.register_parameter("bias", None)
        else:
            self.bias = nn.Parameter(bias.detach().to(dtype).clone(), requires_grad=False)
        self._cached: tuple[int, torch.Tensor] | None = None
        self._bits = self.max_bits
        self.bits = self.max_bits if bits is None else bits

    @classmethod
    def from_linear(
        cls, linear: nn.Module, quantization: NestedQuantization, **kwargs: Any
    ) -> QuantizedLinear:
        """The quantized counterpart of ``linear`` (its bias and dtype) from ``quantization``
        of its :func:`output_rows` (an ``nn.Linear`` or a GPT-2 ``Conv1D``)."""
        if not is_linear(linear):
            raise TypeError(
                f"linear must be a torch.nn.Linear or a transformers Conv1D, "
                f"got {type(linear).__name__}"
            )
        rows = output_rows(linear)
        if tuple(quantization.codes.shape) != tuple(rows.shape):
            raise ValueError(
                f"quantization is of shape {tuple(quantization.codes.shape)}, the weight's "
                f"(out, in) rows of {tuple(rows.shape)}"
            )
        return cls(quantization, linear.bias, dtype=rows.dtype, **kwargs)

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

    @property
    def backend(self) -> str:
        """One of :data:`BACKENDS`; assign to switch."""
        return self._backend

    @backend.setter
    def backend(self, value: str) -> None:
        self._backend = check_choice(value, "backend", BACKENDS)

    def path(self, tokens: int, device: torch.device | None = None) -> str:
        """The path a call with ``tokens`` rows on ``device`` takes.

        ``backend`` unless it is ``"auto"``; then ``"lookup"`` on CPU when ``cache`` is off
        and ``tokens <= LOOKUP_MAX_TOKENS``, else ``"dequantize"`` (with ``cache`` on, one
        dense matmul with the kept weight, the speed of :class:`torch.nn.Linear`). Measured
        by ``benchmarks/quantized_linear.py --tokens 1 2 --paths dequantize lookup`` (paired
        in-process timing, one thread, MiniLM's shapes 384x384, 1536x384, 384x1536 at 3 and
        8 bits): ``time(lookup) / time(dequantize)`` was 0.90-1.11 at 1 token (a tie on
        speed; lookup holds no dense weight) and 1.11-1.41 at 2 tokens; the scatter-add
        costs about as much per token as the whole dequantization, so lookup loses from 2
        tokens on. The experiment's interleaved timing (best of 20 rounds, loaded machine)
        gave 0.93-1.25 at 1 token on 1536x384 and 1.08-1.21 on the small decoder's 256x64:
        at 1 token lookup is chosen for its memory (no dense weight), not for speed. On
        other devices (CUDA), ``"dequantize"``.
        """
        if self.backend != "auto":
            return self.backend
        on_cpu = device is None or torch.device(device).type == "cpu"
        if on_cpu and not self.cache and tokens <= LOOKUP_MAX_TOKENS:
            return "lookup"
        return "dequantize"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.ndim < 1 or x.shape[-1] != self.in_features:
            raise ValueError(f"x must be a tensor (..., {self.in_features})")
        if x.dtype != self.compute_dtype:
            raise TypeError(f"x must be of the layer's dtype {self.compute_dtype}, got {x.dtype}")
        lead = x.shape[:-1]
        tokens = x.reshape(-1, self.in_features)
        path = self.path(tokens.shape[0], x.device)
        if path == "dequantize":
            return F.linear(x, self.weight, self.bias)
        if path == "lookup":
            y = lookup_linear(
                tokens, self.qweight, self.table(), self._bits, self.in_features, self.bias
            )
        else:
            from kernelapprox.compression.quantization._triton import triton_quantized_linear

            y = triton_quantized_linear(
                tokens, self.qweight, self.table(), self._bits, self.in_features, self.bias
            )
        return y.reshape(*lead, self.out_features)

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
            f"bias={self.bias is not None}, backend={self.backend!r}"
        )

    def _apply(self, fn: Any, recurse: bool = True) -> QuantizedLinear:  # device moves
        self._cached = None
        return super()._apply(fn, recurse)
