"""The GPU backend of feature attention: Triton kernels with autograd (optional; ``triton``).

:func:`triton_feature_attention` computes what :func:`kernelapprox.attention.feature_attention`
computes for maps with a positive form (:meth:`kernelapprox.features.FeatureMap.positive_form`),
with the features formed inside the kernels; :class:`kernelapprox.attention.FeatureAttention`
selects it with ``backend="triton"`` (or ``"auto"``). The autograd wrapper is
:mod:`.attention`, the kernels :mod:`._kernels` (imported only when ``triton`` is). This
package imports without ``triton``: :data:`HAS_TRITON` is then ``False``.
"""

from kernelapprox.attention.triton.attention import (
    DTYPES,
    HAS_TRITON,
    has_positive_form,
    positive_form,
    triton_feature_attention,
)

__all__ = ["DTYPES", "HAS_TRITON", "has_positive_form", "positive_form", "triton_feature_attention"]
