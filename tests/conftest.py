"""Shared test configuration.

Hypothesis runs a fast, derandomized profile by default (CI) and a thorough one when
``KERNELAPPROX_THOROUGH=1``; statistical tests read :data:`THOROUGH` to scale their
replication counts.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

THOROUGH = os.environ.get("KERNELAPPROX_THOROUGH", "") not in ("", "0")

# The fast profile is derandomized: CI draws the same examples on every run, so a statistical
# test sees fixed inputs (as its fixed seeds intend); the thorough profile explores.
settings.register_profile(
    "fast",
    max_examples=15,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "thorough", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("thorough" if THOROUGH else "fast")
