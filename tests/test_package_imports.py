"""``import kernelapprox`` is light, and its sub-packages load on first use (PEP 562)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import kernelapprox as ka

SUBPACKAGES = (
    "features",
    "kernels",
    "sampling",
    "estimators",
    "study",
    "attention",
    "dynamics",
    "compression",
    "discrepancy",
    "lm",
    "testing",
    "cli",
    "errors",
)


def test_import_kernelapprox_loads_no_sub_package_nor_torch():
    code = (
        "import json, sys, kernelapprox\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('kernelapprox.')"
        " or m.split('.')[0] in ('torch', 'numpy', 'scipy'))))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout) == []


def test_sub_packages_are_attributes_after_import_kernelapprox():
    code = (
        "import kernelapprox as ka\n"
        "fm = ka.features.make('sincos', ka.kernels.Gaussian(), 8, dim=2, seed=0)\n"
        "print(type(fm).__module__, tuple(fm(__import__('torch').zeros(3, 2)).shape))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    module, shape = done.stdout.split(" ", 1)
    assert module.startswith("kernelapprox.features") and shape.strip() == "(3, 16)"


@pytest.mark.parametrize("name", SUBPACKAGES)
def test_each_sub_package_is_the_module_itself(name):
    import importlib

    assert getattr(ka, name) is importlib.import_module(f"kernelapprox.{name}")


def test_dir_lists_the_sub_packages_and_the_existing_names():
    names = dir(ka)
    assert set(SUBPACKAGES) <= set(names)
    assert "__version__" in names and names == sorted(names)


def test_an_unknown_attribute_is_still_an_attribute_error():
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        ka.nope  # noqa: B018
    assert not hasattr(ka, "_io_nope")
    with pytest.raises(AttributeError):
        ka._validation_does_not_exist  # noqa: B018
