"""Loading a script that is not part of the package (``benchmarks/``, ``docs/``) in a test."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]


def load_script(path: Path, name: str | None = None) -> ModuleType:
    """The module of the script at ``path``, run once per process and registered in
    ``sys.modules`` under ``name`` (default ``kernelapprox_<folder>_<stem>``), since dataclasses
    look their module up by name. Later calls return the registered module."""
    name = name or f"kernelapprox_{path.parent.name}_{path.stem}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module
