"""The recurrent state of feature-map attention (the decode cache), stored with a log-scale.

After keys ``k_1..k_t`` with values ``v_1..v_t`` the exact state is

.. math:: S_t = \\sum_{j \\le t} \\phi(k_j) v_j^\\top, \\qquad z_t = \\sum_{j \\le t} \\phi(k_j),

and the output of a query is ``phi(q)^T S_t / phi(q)^T z_t`` (Katharopoulos et al., ICML 2020,
Eq. 16-18). Exponential features overflow, so the state is kept relative to a running
reference: ``S_t = exp(r_t) kv``, ``z_t = exp(r_t) z`` with ``r_t`` the running maximum of the
keys' per-token log-scales, rescaled whenever it grows (as in online softmax, Milakov &
Gimelshein 2018). ``r_t`` depends on keys ``<= t`` only, so splitting a sequence and resuming
from the state reproduces one pass, and no output depends on a later token.

The reference is either one number per head (``log_scale`` ``(B, H_kv)``: the fast path's
running maximum of per-token log-scales) or one per feature (``(B, H_kv, F)``: ``r_{t,f} =
max_{j <= t} log phi_f(k_j)``, which exponential maps use at large ``|k|``, where features of
one state differ by more than the float32 range). Both describe the same true state
``exp(r) * (kv, z)``, the scalar one broadcast over the features; every function that takes a
state accepts either.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from kernelapprox._validation import renamed_keywords
from kernelapprox.attention.maps import LOG_FLOOR


class AttentionState(NamedTuple):
    """State of feature-map attention per batch element and key/value head (all float32/64).

    Attributes
    ----------
    kv : Tensor ``(B, H_kv, F, D_v)``
        ``sum_j exp(-log_scale) phi(k_j) v_j^T`` (row ``f`` relative to its reference).
    z : Tensor ``(B, H_kv, F)``
        ``sum_j exp(-log_scale) phi(k_j)`` (the normalizer).
    log_scale : Tensor ``(B, H_kv)`` or ``(B, H_kv, F)``
        The running reference ``r``, per head or per feature: the true state is
        ``exp(log_scale) * (kv, z)``. :data:`~kernelapprox.attention.maps.LOG_FLOOR` means
        "no key yet".
    """

    kv: torch.Tensor
    z: torch.Tensor
    log_scale: torch.Tensor

    @classmethod
    @renamed_keywords(
        {"n_features": "output_dim"},
        notes={
            "n_features": "Here it meant the feature width F (the map's output_dim); "
            "everywhere else n_features is the number of frequencies m."
        },
    )
    def zeros(
        cls,
        batch: int,
        kv_heads: int,
        output_dim: int,
        value_dim: int,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> AttentionState:
        """The empty state (no key seen), for a map with ``output_dim`` feature columns ``F``
        (``FeatureMap.output_dim``; ``n_features=``, its old name, works until kernelapprox
        0.2 with a ``DeprecationWarning``)."""
        return cls(
            torch.zeros(batch, kv_heads, output_dim, value_dim, device=device, dtype=dtype),
            torch.zeros(batch, kv_heads, output_dim, device=device, dtype=dtype),
            torch.full((batch, kv_heads), LOG_FLOOR, device=device, dtype=dtype),
        )

    def absolute(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(S, z)`` without the log-scale, i.e. ``exp(log_scale) * (kv, z)`` (may overflow)."""
        factor = torch.exp(self.feature_log_scale())
        return self.kv * factor[..., None], self.z * factor

    def feature_log_scale(self) -> torch.Tensor:
        """The reference per feature, ``(B, H_kv, F)`` (a per-head one broadcast)."""
        r = self.log_scale
        return r if r.ndim == self.z.ndim else r[..., None].expand_as(self.z)
