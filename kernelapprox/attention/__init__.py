"""Attention through kernelapprox's feature maps, at cost linear in the sequence length.

* :func:`feature_attention` (causal chunked or non-causal; both layouts, grouped-query
  attention, key padding, packed ``cu_seqlens``, state in and out) and
  :func:`feature_attention_step` (decoding);
* :func:`sequence_parallel_attention`, the sequence split across ``torch.distributed`` ranks;
* :func:`softmax_attention`, the exact reference, and the fp64 oracles in
  :mod:`kernelapprox.attention.naive`;
* ``nn.Module``s :class:`FeatureAttention` and :class:`MultiheadFeatureAttention`.
"""

from kernelapprox.attention.functional import (
    DEFAULT_CHUNK,
    feature_attention,
    feature_attention_step,
)
from kernelapprox.attention.maps import (
    LOG_FLOOR,
    EluPlusOneMap,
    IdentityMap,
    NumericalWarning,
    make_map,
)
from kernelapprox.attention.modules import FeatureAttention, MultiheadFeatureAttention
from kernelapprox.attention.naive import (
    quadratic_oracle,
    recurrent_oracle,
    relative_rms,
    softmax_attention,
)
from kernelapprox.attention.parallel import combine_states, sequence_parallel_attention
from kernelapprox.attention.state import AttentionState

__all__ = [
    "DEFAULT_CHUNK",
    "LOG_FLOOR",
    "AttentionState",
    "EluPlusOneMap",
    "FeatureAttention",
    "IdentityMap",
    "MultiheadFeatureAttention",
    "NumericalWarning",
    "combine_states",
    "feature_attention",
    "feature_attention_step",
    "make_map",
    "quadratic_oracle",
    "recurrent_oracle",
    "relative_rms",
    "sequence_parallel_attention",
    "softmax_attention",
]
