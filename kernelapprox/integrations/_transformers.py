"""The optional dependency ``transformers``, imported on first use with a clear error."""

from __future__ import annotations

from typing import Any


def require_transformers() -> Any:
    """The ``transformers`` module; an ``ImportError`` naming the extra that installs it."""
    try:
        import transformers
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "kernelapprox.integrations needs the optional dependency 'transformers' "
            "(pip install 'kernelapprox[convert]')"
        ) from exc
    return transformers
