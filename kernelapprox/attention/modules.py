"""``nn.Module``s: :class:`FeatureAttention` (the SDPA call, through a feature map) and
:class:`MultiheadFeatureAttention` (a self-attention layer with its projections).

The map's tensors (frequencies ``W``, weights ``sqrt_xi`` and map-specific extras) are drawn
on the host with numpy at construction (seeded, bit-identical on every device) and kept as
buffers, so ``module.to(device)`` moves them once and ``state_dict`` saves them; the forward
pass never touches the host. With ``learnable=True`` the frequencies, weights (and DCT radii)
are ``nn.Parameter``s instead.

Redraw policy (``redraw``): ``"never"`` (default; fixed features), ``"every_call"`` or an
integer ``n`` (new frequencies every ``n`` training-mode forward calls). Evaluation mode
never redraws, so evaluation is deterministic. Redraw ``i`` uses the ``i``-th child of the
module's seed (``SeedSequence.spawn`` semantics), so a run is reproducible from its seed.
Buffers are float32 (the map is evaluated in float32 even for half inputs); calling
``.half()`` on the module would round them, so move modules with ``.to(device)``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from kernelapprox._validation import (
    as_seed_sequence,
    check_bool,
    check_choice,
    check_positive_int,
    spawn,
)
from kernelapprox.attention.functional import (
    DEFAULT_CHUNK,
    LAYOUTS,
    feature_attention,
    feature_attention_step,
)
from kernelapprox.attention.maps import BaselineMap, make_map
from kernelapprox.attention.state import AttentionState
from kernelapprox.attention.triton import DTYPES as TRITON_DTYPES
from kernelapprox.attention.triton import (
    HAS_TRITON,
    has_positive_form,
    triton_feature_attention,
)

#: Implementations a :class:`FeatureAttention` can run (see its ``backend`` parameter).
BACKENDS = ("torch", "triton", "auto")
#: Map tensors that become parameters with ``learnable=True``.
LEARNABLE = ("W", "sqrt_xi", "radii")


def _check_redraw(redraw: Any) -> str | int:
    if redraw in ("never", "every_call"):
        return redraw
    if isinstance(redraw, int) and not isinstance(redraw, bool) and redraw >= 1:
        return redraw
    raise ValueError(f"redraw must be 'never', 'every_call' or an integer >= 1, got {redraw!r}")


class FeatureAttention(nn.Module):
    """Attention through a random-feature map, used like ``scaled_dot_product_attention``.

    Parameters
    ----------
    head_dim : int
        Query/key dimension ``D``.
    n_features : int, optional
        Number of frequencies ``m`` (default ``D``); baselines have ``m = D``.
    feature_map : str
        A :mod:`kernelapprox.features` map (``"positive"``, ``"hyperbolic"``, ``"sincos"``,
        ``"dct"``, ``"dct_released"``) made for ``kernels.Softmax()``, or a baseline
        (``"elu"``, ``"identity"``).
    sampler : str, optional
        Frequency sampler (default ``"orthogonal"``; ``"mc"`` for the DCT maps).
    seed : int, SeedSequence or torch.Generator
        Seed of the first draw and of every redraw.
    layout : {"bhtd", "bthd"}
        Input layout; ``"bhtd"`` is SDPA's ``(B, H, T, D)``.
    redraw : "never", "every_call" or int
        Redraw policy (see the module docstring).
    learnable : bool
        Make ``W``, ``sqrt_xi`` (and DCT ``radii``) trainable parameters.
    chunk_size : int
        Chunk length of the causal algorithm.
    recompute : bool
        Recompute features in the backward pass instead of storing them (see
        :func:`feature_attention`).
    backend : {"torch", "triton", "auto"}
        ``"torch"``: :func:`feature_attention`; ``"triton"``:
        :func:`~kernelapprox.attention.triton.triton_feature_attention` (features
        computed inside the kernels; maps of the positive form, float32/half inputs);
        ``"auto"``: Triton for CUDA inputs when it is installed and the call
        qualifies, torch otherwise.
    **map_options
        Passed to :func:`kernelapprox.features.make` (e.g. ``radial`` for ``"dct"``).

    Examples
    --------
    >>> import torch
    >>> attn = FeatureAttention(16, 64, seed=0)
    >>> q = k = v = torch.randn(2, 4, 10, 16)
    >>> attn(q, k, v, is_causal=True).shape
    torch.Size([2, 4, 10, 16])
    """

    def __init__(
        self,
        head_dim: int,
        n_features: int | None = None,
        *,
        feature_map: str = "positive",
        sampler: Any = None,
        seed: Any = None,
        layout: str = "bhtd",
        redraw: str | int = "never",
        learnable: bool = False,
        chunk_size: int = DEFAULT_CHUNK,
        recompute: bool = False,
        backend: str = "torch",
        **map_options: Any,
    ) -> None:
        super().__init__()
        self.head_dim = check_positive_int(head_dim, "head_dim")
        self.recompute = bool(recompute)
        self.backend = check_choice(backend, "backend", BACKENDS)
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
        self.layout = layout
        self.redraw_policy = _check_redraw(redraw)
        if learnable and self.redraw_policy != "never":
            raise ValueError("learnable feature maps cannot be redrawn: use redraw='never'")
        self.learnable = bool(learnable)
        self.chunk_size = check_positive_int(chunk_size, "chunk_size")
        self._map_spec = (feature_map, n_features, sampler, map_options)
        self._seed = as_seed_sequence(seed)
        self._draws = 0
        self._calls = 0
        self.feature_map = self._draw(0)
        self._names = tuple(self.feature_map.tensors(torch.device("cpu"), torch.float32))
        for name, t in self.feature_map.tensors(torch.device("cpu"), torch.float32).items():
            if self.learnable and name in LEARNABLE:
                self.register_parameter(f"map_{name}", nn.Parameter(t.clone()))
            else:
                self.register_buffer(f"map_{name}", t.clone())

    def _draw(self, index: int) -> Any:
        name, m, sampler, options = self._map_spec
        seed = spawn(self._seed, index + 1)[index]
        return make_map(name, self.head_dim, m, sampler=sampler, seed=seed, **options)

    @property
    def map_tensors(self) -> dict[str, torch.Tensor]:
        """The map's tensors as this module holds them (buffers or parameters)."""
        return {name: getattr(self, f"map_{name}") for name in self._names}

    @property
    def n_draws(self) -> int:
        """How many times the frequencies were redrawn since construction."""
        return self._draws

    @torch.no_grad()
    def redraw(self) -> None:
        """Draw new frequencies now (from the next child of the seed), in place."""
        if self.learnable:
            raise RuntimeError("a learnable feature map is not redrawn")
        self._draws += 1
        self.feature_map = self._draw(self._draws)
        for name, t in self.feature_map.tensors(torch.device("cpu"), torch.float32).items():
            buf = getattr(self, f"map_{name}")
            buf.copy_(t.to(dtype=buf.dtype), non_blocking=True)

    def _maybe_redraw(self) -> None:
        if not self.training or self.redraw_policy == "never":
            return
        if isinstance(self.feature_map, BaselineMap):
            return
        self._calls += 1
        every = 1 if self.redraw_policy == "every_call" else self.redraw_policy
        if self._calls > 1 and (self._calls - 1) % every == 0:
            self.redraw()

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        *,
        is_causal: bool = False,
        scale: float | None = None,
        key_padding_mask: torch.Tensor | None = None,
        cu_seqlens: torch.Tensor | None = None,
        initial_state: AttentionState | None = None,
        output_final_state: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, AttentionState]:
        """``feature_attention(query, key, value, ...)`` with this module's map and layout.

        The first training-mode call uses the construction-time draw; redraws (per the policy)
        happen before later calls.
        """
        is_causal = check_bool(is_causal, "is_causal")
        self._maybe_redraw()
        shared = {
            "causal": is_causal,
            "scale": scale,
            "layout": self.layout,
            "key_padding_mask": key_padding_mask,
            "cu_seqlens": cu_seqlens,
            "initial_state": initial_state,
            "output_final_state": output_final_state,
            "params": self.map_tensors,
        }
        if self._use_triton(query, cu_seqlens):
            return triton_feature_attention(query, key, value, self.feature_map, **shared)
        return feature_attention(
            query,
            key,
            value,
            self.feature_map,
            chunk_size=self.chunk_size,
            recompute=self.recompute,
            **shared,
        )

    def _use_triton(self, query: torch.Tensor, cu_seqlens: torch.Tensor | None) -> bool:
        if self.backend == "torch":
            return False
        if self.backend == "triton":
            return True
        return (
            HAS_TRITON
            and query.is_cuda
            and query.dtype in TRITON_DTYPES
            and has_positive_form(self.feature_map)
        )

    def step(
        self,
        q_t: torch.Tensor,
        k_t: torch.Tensor,
        v_t: torch.Tensor,
        state: AttentionState | None,
        *,
        scale: float | None = None,
    ) -> tuple[torch.Tensor, AttentionState]:
        """One decoding step (``(B, H, D)`` inputs); see :func:`feature_attention_step`."""
        return feature_attention_step(
            q_t, k_t, v_t, state, self.feature_map, scale=scale, params=self.map_tensors
        )

    def extra_repr(self) -> str:
        return (
            f"{self.feature_map!r}, layout={self.layout!r}, redraw={self.redraw_policy!r}, "
            f"learnable={self.learnable}, backend={self.backend!r}"
        )


class MultiheadFeatureAttention(nn.Module):
    """Multi-head self-attention with feature-map attention inside, batch-first ``(B, T, E)``.

    ``q = x W_q``, ``k = x W_k``, ``v = x W_v`` (``H`` query heads, ``H_kv`` key/value heads
    for grouped-query attention), ``o = FeatureAttention(q, k, v) W_o``. The heads are views
    of the projections in layout ``(B, T, H, D)`` (no copies).

    Parameters
    ----------
    embed_dim, num_heads : int
        ``E`` and ``H``; ``E`` must be divisible by ``H`` (head dim ``D = E / H``).
    num_kv_heads : int, optional
        ``H_kv`` (default ``H``); must divide ``H``.
    causal : bool
        Causal self-attention (then :meth:`step` decodes).
    bias : bool
        Biases in the four projections.
    n_features, feature_map, sampler, seed, redraw, learnable, chunk_size, recompute,
    **map_options
        As :class:`FeatureAttention`.
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        *,
        num_kv_heads: int | None = None,
        causal: bool = False,
        bias: bool = True,
        n_features: int | None = None,
        feature_map: str = "positive",
        sampler: Any = None,
        seed: Any = None,
        redraw: str | int = "never",
        learnable: bool = False,
        chunk_size: int = DEFAULT_CHUNK,
        recompute: bool = False,
        device: Any = None,
        dtype: torch.dtype | None = None,
        **map_options: Any,
    ) -> None:
        super().__init__()
        E = check_positive_int(embed_dim, "embed_dim")
        H = check_positive_int(num_heads, "num_heads")
        Hk = H if num_kv_heads is None else check_positive_int(num_kv_heads, "num_kv_heads")
        if E % H:
            raise ValueError(f"embed_dim ({E}) must be divisible by num_heads ({H})")
        if H % Hk:
            raise ValueError(f"num_heads ({H}) must be a multiple of num_kv_heads ({Hk})")
        self.embed_dim, self.num_heads, self.num_kv_heads = E, H, Hk
        self.head_dim = E // H
        self.causal = check_bool(causal, "causal")
        factory = {"device": device, "dtype": dtype}
        self.q_proj = nn.Linear(E, H * self.head_dim, bias=bias, **factory)
        self.k_proj = nn.Linear(E, Hk * self.head_dim, bias=bias, **factory)
        self.v_proj = nn.Linear(E, Hk * self.head_dim, bias=bias, **factory)
        self.out_proj = nn.Linear(H * self.head_dim, E, bias=bias, **factory)
        self.attention = FeatureAttention(
            self.head_dim,
            n_features,
            feature_map=feature_map,
            sampler=sampler,
            seed=seed,
            layout="bthd",
            redraw=redraw,
            learnable=learnable,
            chunk_size=chunk_size,
            recompute=recompute,
            **map_options,
        )
        if device is not None:
            self.attention.to(device)

    def _heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        lead = x.shape[:-1]
        D = self.head_dim
        q = self.q_proj(x).view(*lead, self.num_heads, D)
        k = self.k_proj(x).view(*lead, self.num_kv_heads, D)
        v = self.v_proj(x).view(*lead, self.num_kv_heads, D)
        return q, k, v

    def forward(
        self,
        x: torch.Tensor,
        *,
        key_padding_mask: torch.Tensor | None = None,
        cu_seqlens: torch.Tensor | None = None,
        state: AttentionState | None = None,
        return_state: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, AttentionState]:
        """Self-attention of ``x`` ``(B, T, E)``; ``state`` continues an earlier call (causal)."""
        if not isinstance(x, torch.Tensor) or x.ndim != 3 or x.shape[-1] != self.embed_dim:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"x must be a tensor of shape (B, T, {self.embed_dim}), got {shape}")
        return_state = check_bool(return_state, "return_state")
        q, k, v = self._heads(x)
        result = self.attention(
            q,
            k,
            v,
            is_causal=self.causal,
            key_padding_mask=key_padding_mask,
            cu_seqlens=cu_seqlens,
            initial_state=state,
            output_final_state=return_state,
        )
        o, new_state = result if return_state else (result, None)
        out = self.out_proj(o.flatten(-2))
        return (out, new_state) if return_state else out

    def step(
        self, x_t: torch.Tensor, state: AttentionState | None
    ) -> tuple[torch.Tensor, AttentionState]:
        """Decode one token ``x_t`` ``(B, E)`` given the state of the tokens before it."""
        if not self.causal:
            raise RuntimeError("step() decodes causal attention; this layer is non-causal")
        if not isinstance(x_t, torch.Tensor) or x_t.ndim != 2 or x_t.shape[-1] != self.embed_dim:
            shape = tuple(x_t.shape) if isinstance(x_t, torch.Tensor) else type(x_t).__name__
            raise ValueError(f"x_t must be a tensor of shape (B, {self.embed_dim}), got {shape}")
        q, k, v = self._heads(x_t)
        o, state = self.attention.step(q, k, v, state)
        return self.out_proj(o.flatten(-2)), state

    def extra_repr(self) -> str:
        return (
            f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, "
            f"num_kv_heads={self.num_kv_heads}, causal={self.causal}, "
            f"scale=1/sqrt({self.head_dim})={1 / math.sqrt(self.head_dim):.4g}"
        )
