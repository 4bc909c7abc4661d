"""kernelapprox: approximate kernels with random features and verify the theory behind them.

The package follows one pipeline, and its sub-packages are laid out along it::

    kernels -> sampling -> features -> estimators -> study

``kernels`` holds the exact targets, ``sampling`` draws frequencies from their spectral
measures (Monte Carlo, orthogonal, structured, quasi-Monte Carlo), ``features`` turns
frequencies into feature maps ``phi`` with ``phi(x) . phi(y) ~ k(x, y)``, ``estimators``
puts error bars on the approximation and ``study`` sweeps all of it.

The sub-packages load on first use (PEP 562): after ``import kernelapprox as ka``,
``ka.features.make(...)`` imports :mod:`kernelapprox.features` then, so that importing the
package (and ``kernelapprox --version``) does not pay for torch and scipy. ``__version__``
is read from the installed distribution's metadata on first use as well.
"""

import os
import sys

# Large CPU tensors (feature matrices are often 100 MB) are faster to allocate with
# transparent huge pages, as numpy already does for large arrays: without them every call
# pays a page fault per 4 KiB, which made an (20000 x 1024) float32 feature map twice as
# slow as its matrix product. torch reads this switch when it is first imported, so it is
# only set when torch is not imported yet, and never overrides a value the user chose.
if "torch" not in sys.modules:
    os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")

__all__ = ["__version__"]


def _submodules() -> frozenset[str]:
    """The public modules and sub-packages of this package (``features``, ``kernels``, ...)."""
    import pkgutil

    return frozenset(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def _version() -> str:
    """The installed distribution's version (``importlib.metadata`` costs ~80 ms to import)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("kernelapprox")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0.0.0+unknown"


def __getattr__(name: str) -> object:
    """``__version__`` and the sub-modules (``kernelapprox.features``), on first access."""
    if name == "__version__":
        value = _version()
        globals()["__version__"] = value
        return value
    if name in _submodules():
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | _submodules() | {"__version__"})
