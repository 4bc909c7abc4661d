"""kernelapprox: approximate kernels with random features and verify the theory behind them.

The package follows one pipeline, and its sub-packages are laid out along it::

    kernels -> sampling -> features -> estimators -> study

``kernels`` holds the exact targets, ``sampling`` draws frequencies from their spectral
measures (Monte Carlo, orthogonal, structured, quasi-Monte Carlo), ``features`` turns
frequencies into feature maps ``phi`` with ``phi(x) . phi(y) ~ k(x, y)``, ``estimators``
puts error bars on the approximation and ``study`` sweeps all of it.
"""

import os
import sys
from importlib.metadata import PackageNotFoundError, version

# Large CPU tensors (feature matrices are often 100 MB) are faster to allocate with
# transparent huge pages, as numpy already does for large arrays: without them every call
# pays a page fault per 4 KiB, which made an (20000 x 1024) float32 feature map twice as
# slow as its matrix product. torch reads this switch when it is first imported, so it is
# only set when torch is not imported yet, and never overrides a value the user chose.
if "torch" not in sys.modules:
    os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")

try:
    __version__ = version("kernelapprox")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
