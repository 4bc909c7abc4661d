"""Any-Precision nested quantization (Park, Hyun, Cho, Sim & Lee, ICML 2024).

One n-bit memory footprint holds every width from the seed width to n: the k-bit code of a
weight is the first k bit-planes of its n-bit code.

* :mod:`.kmeans` -- sensitivity-weighted 1-D k-means per row (Lloyd, vectorized across rows),
  the exact optimum by dynamic programming, and the cluster split of the upscaling step;
* :mod:`.nested` -- the seed quantizer and incremental upscaling (:func:`nested_quantize`),
  and independent k-bit quantization for comparison;
* :mod:`.packing` -- the bit-plane layout (plane 0 most significant) and its exact bytes;
* :mod:`.layer` -- :class:`QuantizedLinear`, whose width is switched by ``layer.bits = k``;
* :mod:`.models` -- Fisher sensitivities from calibration data and in-place quantization of
  every linear layer of a model.
"""

from kernelapprox.compression.quantization.kmeans import (
    lloyd_kmeans,
    optimal_kmeans,
    run_bounds,
    split_runs,
    weighted_sse,
)
from kernelapprox.compression.quantization.layer import QuantizedLinear
from kernelapprox.compression.quantization.models import (
    fisher_diagonal,
    linear_modules,
    quantize_linears,
    set_bits,
)
from kernelapprox.compression.quantization.nested import (
    MAX_BITS,
    NestedQuantization,
    check_widths,
    independent_quantize,
    nested_quantize,
)
from kernelapprox.compression.quantization.packing import (
    nested_storage,
    pack_bitplanes,
    storage_bytes,
    unpack_bitplanes,
)

__all__ = [
    "MAX_BITS",
    "NestedQuantization",
    "QuantizedLinear",
    "check_widths",
    "fisher_diagonal",
    "independent_quantize",
    "linear_modules",
    "lloyd_kmeans",
    "nested_quantize",
    "nested_storage",
    "optimal_kmeans",
    "pack_bitplanes",
    "quantize_linears",
    "run_bounds",
    "set_bits",
    "split_runs",
    "storage_bytes",
    "unpack_bitplanes",
    "weighted_sse",
]
