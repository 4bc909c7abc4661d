"""The recurrent state of feature-map attention (the decode cache), stored with a log-scale.

After keys ``k_1..k_t`` with values ``v_1..v_t`` the exact state is

.. math:: S_t = \\sum_{j \\le t} \\phi(k_j) v_j^\\top, \\qquad z_t = \\sum_{j \\le t} \\phi(k_j),

and the output of a query is ``phi(q)^T S_t / phi(q)^T z_t`` (Katharopoulos et al., ICML 2020,
Eq. 16-18). Exponential features overflow, so the state is kept relative to a running
reference: ``S_t = exp(r_t) kv``, ``z_t = exp(r_t) z`` with ``r_t`` the running maximum of the
keys' per-token log-scales, rescaled whenever it grows (as in online softmax, Milakov &
Gimelshein 2018). ``r_t`` depends on keys ``<= t`` only, so splitting a sequence and resuming
from the state reproduces one pass, and no output depends on a later token.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from kernelapprox.attention.maps import LOG_FLOOR


class AttentionState(NamedTuple):
    """State of feature-map attention per batch element and key/value head (all float32/64).

    Attributes
    ----------
    kv : Tensor ``(B, H_kv, F, D_v)``
        ``sum_j exp(c_j - log_scale) phi_tilde(k_j) v_j^T``.
    z : Tensor ``(B, H_kv, F)``
        ``sum_j exp(c_j - log_scale) phi_tilde(k_j)`` (the normalizer).
    log_scale : Tensor ``(B, H_kv)``
        The running reference ``r``: the true state is ``exp(log_scale) * (kv, z)``.
        :data:`~kernelapprox.attention.maps.LOG_FLOOR` means "no key yet".
    """

    kv: torch.Tensor
    z: torch.Tensor
    log_scale: torch.Tensor

    @classmethod
    def zeros(
        cls,
        batch: int,
        kv_heads: int,
        n_features: int,
        value_dim: int,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> AttentionState:
        """The empty state (no key seen)."""
        return cls(
            torch.zeros(batch, kv_heads, n_features, value_dim, device=device, dtype=dtype),
            torch.zeros(batch, kv_heads, n_features, device=device, dtype=dtype),
            torch.full((batch, kv_heads), LOG_FLOOR, device=device, dtype=dtype),
        )

    def absolute(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(S, z)`` without the log-scale, i.e. ``exp(log_scale) * (kv, z)`` (may overflow)."""
        factor = torch.exp(self.log_scale)
        return self.kv * factor[..., None, None], self.z * factor[..., None]
