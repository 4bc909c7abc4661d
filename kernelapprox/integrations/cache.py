"""A ``transformers`` cache that keeps feature attention's recurrent state instead of keys.

Decoding a converted causal model (:func:`kernelapprox.integrations.convert.convert`) with the
usual ``DynamicCache`` is exact but stores every key and value, so memory grows with the
generated length and each step re-reads the whole prefix. Feature attention needs only

.. math:: S_t = \\sum_{j \\le t} \\phi(k_j) v_j^\\top, \\qquad z_t = \\sum_{j \\le t} \\phi(k_j)

(Katharopoulos et al., ICML 2020, Eq. 16-18), kept with a running log-scale as an
:class:`~kernelapprox.attention.AttentionState`. :class:`FeatureStateCache` holds one such
state per layer: ``(B, H_kv, F, D_v + 1)`` numbers whatever the length, and a step costs
``O(F D)`` per head. Pass it to ``generate`` or to the forward call::

    cache = FeatureStateCache()
    out = student.generate(ids, cache=cache, max_new_tokens=20)

(``cache=`` since transformers 5.24, where ``past_key_values=`` is deprecated;
:func:`cache_kwargs` picks the keyword the installed version takes.)

How it plugs in: the cache's ``update`` hands the attention module only the *new* keys and
values and the mask covers only them (``get_mask_sizes`` returns the new length with the past
length as offset); the converted attention function, finding this cache on the module (a
forward pre-hook records it), runs causal feature attention from the layer's state and stores
the state it returns. A cache whose new keys were not consumed by feature attention (a model
that was not converted) raises instead of silently attending to the new tokens only.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch

from kernelapprox.attention.state import AttentionState
from kernelapprox.integrations._transformers import require_transformers

require_transformers()  # a clear ImportError without the optional dependency
from transformers.cache_utils import Cache, CacheLayerMixin  # noqa: E402

__all__ = ["FeatureStateCache", "FeatureStateLayer", "cache_kwargs", "output_cache"]


class FeatureStateLayer(CacheLayerMixin):
    """One layer's decode state: an :class:`AttentionState` and the number of tokens seen.

    ``keys``/``values`` stay ``None``: nothing grows with the sequence.
    """

    is_compileable = False
    is_croppable = False
    is_sliding = False
    supports_early_init = False

    def __init__(self, **kwargs: Any) -> None:
        super().__init__()
        self.state: AttentionState | None = None
        self.length = 0
        self.pending = False

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        self.dtype, self.device = key_states.dtype, key_states.device
        self.is_initialized = True

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Count the new tokens and return them unchanged (the state is updated by attention)."""
        if self.pending:
            raise RuntimeError(
                "FeatureStateCache: the keys of the previous call were not consumed by feature "
                "attention; this cache works only with models converted by "
                "kernelapprox.integrations.convert.convert (causal self-attention)"
            )
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        self.length += key_states.shape[-2]
        self.pending = True
        return key_states, value_states

    def consume(self, state: AttentionState) -> None:
        """Store the state after the new tokens (called by the converted attention function)."""
        self.state = state
        self.pending = False

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        """The mask covers the new tokens only, at absolute positions ``length ..``."""
        return query_length, self.length

    def get_seq_length(self) -> int:
        return self.length

    def get_max_length(self) -> int:
        return -1

    def reset(self) -> None:
        self.state, self.length, self.pending = None, 0, False

    def crop(self, tokens_to_remove: int) -> None:
        if tokens_to_remove != 0:
            raise ValueError(
                "a feature-attention state cannot be cropped (it sums over every past token); "
                "keep a copy of the cache instead"
            )

    def _map_state(self, fn: Any) -> None:
        if self.state is not None:
            self.state = AttentionState(*(fn(t) for t in self.state))

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        self._map_state(lambda t: t.index_select(0, beam_idx.to(t.device)))

    def batch_repeat_interleave(self, repeats: int) -> None:
        self._map_state(lambda t: t.repeat_interleave(repeats, dim=0))

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        self._map_state(lambda t: t[indices])

    def offload(self) -> None:
        self._map_state(lambda t: t.to("cpu", non_blocking=True))

    def prefetch(self) -> None:
        device = getattr(self, "device", None)
        if device is not None:
            self._map_state(lambda t: t.to(device, non_blocking=True))

    @property
    def nbytes(self) -> int:
        """Bytes held by the state (constant in the sequence length)."""
        return 0 if self.state is None else sum(t.numel() * t.element_size() for t in self.state)


class FeatureStateCache(Cache):
    """Constant-memory decode cache for models converted to feature attention.

    Layers are created on first use, one :class:`FeatureStateLayer` per attention layer.
    """

    def __init__(self) -> None:
        super().__init__(layer_class_to_replicate=FeatureStateLayer)

    @property
    def nbytes(self) -> int:
        """Bytes held by all layers' states."""
        return sum(layer.nbytes for layer in self.layers)


def find_state_cache(args: tuple, kwargs: dict) -> FeatureStateCache | None:
    """The :class:`FeatureStateCache` among a module call's arguments, if any."""
    for value in (*args, *kwargs.values()):
        if isinstance(value, FeatureStateCache):
            return value
    return None


def cache_kwargs(model: Any, cache: Any) -> dict[str, Any]:
    """``{keyword: cache}`` for ``model(...)`` or ``model.generate(...)``: ``cache`` where the
    model's ``forward`` takes it (transformers >= 5.24, which deprecates ``past_key_values``
    with a ``FutureWarning``, removal announced for 5.40), else ``past_key_values``.

    >>> # student(input_ids=ids, use_cache=True, **cache_kwargs(student, FeatureStateCache()))
    """
    params = inspect.signature(model.forward).parameters  # follows the deprecation wrapper
    return {"cache" if "cache" in params else "past_key_values": cache}


def output_cache(output: Any) -> Any:
    """The cache a forward call returned: ``output.cache`` (transformers >= 5.24, where
    ``output.past_key_values`` logs a deprecation warning), else ``output.past_key_values``."""
    if "cache" in getattr(output, "__dataclass_fields__", {}):
        return output.cache
    return output.past_key_values
