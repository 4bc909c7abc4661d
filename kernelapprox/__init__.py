"""kernelapprox: approximate kernels with random features and verify the theory behind them.

The package follows one pipeline, and its sub-packages are laid out along it::

    kernels -> sampling -> features -> estimators -> study

``kernels`` holds the exact targets, ``sampling`` draws frequencies from their spectral
measures (Monte Carlo, orthogonal, structured, quasi-Monte Carlo), ``features`` turns
frequencies into feature maps ``phi`` with ``phi(x) . phi(y) ~ k(x, y)``, ``estimators``
puts error bars on the approximation and ``study`` sweeps all of it.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("kernelapprox")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
