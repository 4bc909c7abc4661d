"""The built documentation site (``site/``, made by ``bash docs/build.sh``) for the site tests.

:func:`require_site` returns its folder, or skips the calling test module when it is not built
(``KERNELAPPROX_REQUIRE_SITE=1``, as in CI, turns the skip into an error).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "site"


def require_site() -> Path:
    """``SITE`` if it holds a built site; otherwise skip the module that calls this at import."""
    if not (SITE / "index.html").is_file():
        if os.environ.get("KERNELAPPROX_REQUIRE_SITE") == "1":
            raise RuntimeError("site/ is not built: run `bash docs/build.sh` before these tests")
        pytest.skip("site/ is not built (bash docs/build.sh)", allow_module_level=True)
    return SITE
