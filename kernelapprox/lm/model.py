r"""A small decoder-only language model whose blocks can run a subnetwork.

Pre-LN GPT-style blocks: for layer :math:`\ell` with input :math:`x`,

.. math::

    x \leftarrow x + s_\ell\,\mathrm{MHA}(\mathrm{LN}_1(x)), \qquad
    x \leftarrow x + s_\ell\,\mathrm{MLP}(\mathrm{LN}_2(x)),

with causal multi-head self-attention (:math:`H` heads of dimension :math:`d/H`, biases on all
projections) and a GELU MLP of width :math:`d_\mathrm{mlp}`; learned positions, a final layer
norm and an LM head that is tied to the token embedding or not.

A :class:`Subnetwork` says what to compute: per layer either ``None`` (the layer is skipped and
its input passes through unchanged) or a :class:`LayerSlice` with the heads :math:`I_H` and MLP
neurons :math:`I_M` to keep and their scales. Only the kept slices are computed:

.. math::

    \mathrm{MHA}_{I_H}(x) = c_H \sum_{i \in I_H}
        \mathrm{softmax}\Big(\tfrac{x W_Q^i (x W_K^i)^\top}{\sqrt{d/H}} + M\Big)\,
        x W_V^i W_O^i + b_O, \qquad
    \mathrm{MLP}_{I_M}(x) = c_M\,\sigma(x W_1[:, I_M] + b_1[I_M])\,W_2[I_M, :] + b_2,

(:math:`M` the causal mask): the rows of :math:`W_Q, W_K, W_V` and columns of :math:`W_O` of the
kept heads, the kept rows of :math:`W_1` and columns of :math:`W_2` are gathered with
``index_select``, so the matrix products shrink and the gradient reaches only the gathered
slices (it is exactly zero elsewhere). The output biases :math:`b_O, b_2` are not scaled: they
are not sums over heads or neurons. This is the computation of evolving subnetwork training
(EST; Li, Chen, Ma, Wu, Zhu & Yu, ICML 2024, arXiv 2406.06962, Sec. 3), whose sampler lives in
:mod:`kernelapprox.dynamics.est`; a fixed slice is also structured pruning.

The byte tokenizer (:mod:`kernelapprox.lm.tokenizer`) gives ``vocab_size = 256``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from kernelapprox._validation import SeedLike, as_seed_sequence, check_positive_int


@dataclass(frozen=True)
class DecoderConfig:
    """Sizes of a :class:`Decoder`.

    Attributes
    ----------
    vocab_size : int
        Number of tokens (256 for the byte tokenizer).
    context : int
        Maximal sequence length T (learned positions).
    n_layers, d_model, n_heads, d_mlp : int
        Depth, width, heads (``d_model`` must be divisible by ``n_heads``), MLP width.
    tie_embeddings : bool
        Use the token embedding as the LM head (GPT-2 does).
    """

    vocab_size: int = 256
    context: int = 64
    n_layers: int = 4
    d_model: int = 64
    n_heads: int = 4
    d_mlp: int = 256
    tie_embeddings: bool = True

    def __post_init__(self) -> None:
        for name in ("vocab_size", "context", "n_layers", "d_model", "n_heads", "d_mlp"):
            check_positive_int(getattr(self, name), name)
        if self.d_model % self.n_heads:
            raise ValueError(
                f"d_model must be divisible by n_heads, got d_model={self.d_model}, "
                f"n_heads={self.n_heads}"
            )
        if not isinstance(self.tie_embeddings, bool):
            raise TypeError(f"tie_embeddings must be a bool, got {self.tie_embeddings!r}")

    @property
    def head_dim(self) -> int:
        """Dimension of one head, ``d_model // n_heads``."""
        return self.d_model // self.n_heads


def _check_index(index: Any, n: int, name: str) -> torch.Tensor | None:
    if index is None:
        return None
    if not isinstance(index, torch.Tensor) or index.dtype != torch.long or index.ndim != 1:
        raise TypeError(f"{name} must be None or a 1-D torch.long tensor of indices")
    if index.numel() == 0:
        raise ValueError(f"{name} must keep at least one index")
    if int(index.min()) < 0 or int(index.max()) >= n:
        raise ValueError(f"{name} must hold indices in [0, {n}), got {index.tolist()}")
    if index.unique().numel() != index.numel():
        raise ValueError(f"{name} must not repeat an index, got {index.tolist()}")
    return index


def _check_bound(index: torch.Tensor | None, n: int, name: str) -> None:
    """The part of :func:`_check_index` a checked :class:`LayerSlice` still needs: ``< n``."""
    if index is not None and int(index.max()) >= n:
        raise ValueError(f"{name} must hold indices in [0, {n}), got {index.tolist()}")


def _check_scale(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value}")
    return value


@dataclass(frozen=True)
class LayerSlice:
    """The part of one block to compute.

    Attributes
    ----------
    heads : 1-D ``torch.long`` tensor or None
        Kept heads :math:`I_H` (``None``: all heads).
    neurons : 1-D ``torch.long`` tensor or None
        Kept MLP neurons :math:`I_M` (``None``: all neurons).
    head_scale, neuron_scale : float
        :math:`c_H, c_M` multiplying the sum over kept heads / neurons (EST: ``N / |I|``).
    layer_scale : float
        :math:`s_\\ell` multiplying both residual updates of the block.
    """

    heads: torch.Tensor | None = None
    neurons: torch.Tensor | None = None
    head_scale: float = 1.0
    neuron_scale: float = 1.0
    layer_scale: float = 1.0

    def __post_init__(self) -> None:
        for name in ("head_scale", "neuron_scale", "layer_scale"):
            object.__setattr__(self, name, _check_scale(getattr(self, name), name))
        for name in ("heads", "neurons"):
            _check_index(getattr(self, name), 2**62, name)


@dataclass(frozen=True)
class Subnetwork:
    """What a :class:`Decoder` computes: one entry per layer, ``None`` for a skipped layer."""

    layers: tuple[LayerSlice | None, ...]

    def __post_init__(self) -> None:
        layers = tuple(self.layers)
        for i, part in enumerate(layers):
            if part is not None and not isinstance(part, LayerSlice):
                raise TypeError(f"layers[{i}] must be a LayerSlice or None, got {part!r}")
        object.__setattr__(self, "layers", layers)

    @classmethod
    def full(cls, n_layers: int) -> Subnetwork:
        """Every layer, head and neuron, unscaled."""
        return cls(tuple(LayerSlice() for _ in range(check_positive_int(n_layers, "n_layers"))))


def _rows_of_heads(heads: torch.Tensor, head_dim: int, device: torch.device) -> torch.Tensor:
    """Indices of the rows of a ``(n_heads * head_dim, d)`` projection that belong to ``heads``."""
    heads = heads.to(device)
    return (heads[:, None] * head_dim + torch.arange(head_dim, device=device)).reshape(-1)


class CausalSelfAttention(nn.Module):
    """Causal multi-head self-attention with per-head slicing (see the module docstring)."""

    def __init__(self, config: DecoderConfig) -> None:
        super().__init__()
        d = config.d_model
        self.n_heads, self.head_dim = config.n_heads, config.head_dim
        self.q = nn.Linear(d, d)
        self.k = nn.Linear(d, d)
        self.v = nn.Linear(d, d)
        self.o = nn.Linear(d, d)
        #: Identity on the concatenated head outputs (the input of ``o``), a place for hooks
        #: (pruning salience and masks, :mod:`kernelapprox.compression.pruning`).
        self.context = nn.Identity()

    def forward(
        self, x: torch.Tensor, heads: torch.Tensor | None = None, scale: float = 1.0
    ) -> torch.Tensor:
        batch, length, _ = x.shape
        if heads is None:
            n = self.n_heads
            wq, wk, wv, wo = self.q.weight, self.k.weight, self.v.weight, self.o.weight
            bq, bk, bv = self.q.bias, self.k.bias, self.v.bias
        else:
            # one gather per tensor, by head, on (heads, head_dim, ...) views of the weights
            n, hd, d = heads.numel(), self.head_dim, x.shape[-1]
            heads = heads.to(x.device)
            wq, wk, wv = (
                m.weight.view(self.n_heads, hd, d).index_select(0, heads).view(n * hd, d)
                for m in (self.q, self.k, self.v)
            )
            bq, bk, bv = (
                m.bias.view(self.n_heads, hd).index_select(0, heads).view(n * hd)
                for m in (self.q, self.k, self.v)
            )
            wo = self.o.weight.view(d, self.n_heads, hd).index_select(1, heads).view(d, n * hd)
        if scale != 1.0:  # c_H on the (d, k_H d_h) slice of W_O, not on the (B, T, d) output
            wo = wo * scale

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(batch, length, n, self.head_dim).transpose(1, 2)

        q, k, v = split(F.linear(x, wq, bq)), split(F.linear(x, wk, bk)), split(F.linear(x, wv, bv))
        ctx = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        ctx = self.context(ctx.transpose(1, 2).reshape(batch, length, n * self.head_dim))
        # the bias added after the product, not fused (addmm rounds differently): with a
        # power-of-two scale the result is bitwise the product-then-scale of the formula
        return F.linear(ctx, wo) + self.o.bias


class MLP(nn.Module):
    """GELU MLP with per-neuron slicing (see the module docstring)."""

    def __init__(self, config: DecoderConfig) -> None:
        super().__init__()
        self.fc = nn.Linear(config.d_model, config.d_mlp)
        self.proj = nn.Linear(config.d_mlp, config.d_model)
        #: Identity on the activations (the input of ``proj``), a place for hooks.
        self.act = nn.Identity()

    def forward(
        self, x: torch.Tensor, neurons: torch.Tensor | None = None, scale: float = 1.0
    ) -> torch.Tensor:
        if neurons is None:
            w1, b1, w2 = self.fc.weight, self.fc.bias, self.proj.weight
        else:
            neurons = neurons.to(x.device)
            w1 = self.fc.weight.index_select(0, neurons)
            b1 = self.fc.bias.index_select(0, neurons)
            w2 = self.proj.weight.index_select(1, neurons)
        if scale != 1.0:  # c_M on the (d, k_M) slice of W_2, not on the (B, T, d) output
            w2 = w2 * scale
        return F.linear(self.act(F.gelu(F.linear(x, w1, b1))), w2) + self.proj.bias


class Block(nn.Module):
    """One pre-LN transformer block."""

    def __init__(self, config: DecoderConfig) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(config.d_model)
        self.attn = CausalSelfAttention(config)
        self.ln2 = nn.LayerNorm(config.d_model)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor, part: LayerSlice | None = None) -> torch.Tensor:
        part = LayerSlice() if part is None else part
        a = self.attn(self.ln1(x), part.heads, part.head_scale)
        x = x + (a if part.layer_scale == 1.0 else part.layer_scale * a)
        m = self.mlp(self.ln2(x), part.neurons, part.neuron_scale)
        return x + (m if part.layer_scale == 1.0 else part.layer_scale * m)


class Decoder(nn.Module):
    """A GPT-style decoder-only LM (pre-LN, causal MHA, GELU MLP).

    Parameters
    ----------
    config : DecoderConfig
        The sizes.
    seed : SeedLike, default None
        Randomness of the initialization (``None``: fresh, as for every module with random
        initial weights, the rule of :data:`~kernelapprox._validation.SeedLike`): weights
        :math:`N(0, 0.02^2)`, the output projections of each residual branch
        :math:`N(0, (0.02/\\sqrt{2L})^2)` (GPT-2), biases 0, layer norms 1/0.
    dtype : torch.dtype
        Parameter type.

    Examples
    --------
    >>> model = Decoder(DecoderConfig(n_layers=2, d_model=16, n_heads=2, d_mlp=32), seed=0)
    >>> model(torch.zeros(1, 5, dtype=torch.long)).shape
    torch.Size([1, 5, 256])
    """

    def __init__(
        self,
        config: DecoderConfig | None = None,
        *,
        seed: SeedLike = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        config = DecoderConfig() if config is None else config
        if not isinstance(config, DecoderConfig):
            raise TypeError(f"config must be a DecoderConfig, got {type(config).__name__}")
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype!r}")
        self.config = config
        self.tok = nn.Embedding(config.vocab_size, config.d_model)
        self.pos = nn.Embedding(config.context, config.d_model)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.ln_f = nn.LayerNorm(config.d_model)
        self.head = (
            None
            if config.tie_embeddings
            else nn.Linear(config.d_model, config.vocab_size, bias=False)
        )
        self.to(dtype)
        self.reset_parameters(seed)

    @torch.no_grad()
    def reset_parameters(self, seed: SeedLike = None) -> None:
        """Re-initialize every parameter from ``seed`` (see the class docstring)."""
        seq = as_seed_sequence(seed)
        gen = torch.Generator().manual_seed(int(seq.generate_state(1, dtype="uint64")[0]))
        residual_std = 0.02 / math.sqrt(2 * self.config.n_layers)
        for name, param in self.named_parameters():
            if name.endswith("bias"):
                param.zero_()
            elif ".ln" in name or name.startswith("ln_"):
                param.fill_(1.0)
            else:
                std = residual_std if name.endswith(("o.weight", "proj.weight")) else 0.02
                param.copy_(torch.randn(param.shape, generator=gen, dtype=param.dtype) * std)

    def lm_head_weight(self) -> torch.Tensor:
        """The ``(vocab_size, d_model)`` output matrix (the token embedding when tied)."""
        return self.tok.weight if self.head is None else self.head.weight

    def forward(
        self, idx: torch.Tensor, subnetwork: Subnetwork | Sequence[LayerSlice | None] | None = None
    ) -> torch.Tensor:
        """Logits of shape ``(batch, T, vocab_size)`` for token ids ``idx`` of shape ``(batch, T)``.

        ``subnetwork`` (default: the full model) selects the layers, heads and neurons to
        compute; it has one entry per layer, ``None`` skipping that layer.
        """
        return F.linear(self.ln_f(self.residual_stream(idx, subnetwork)), self.lm_head_weight())

    def residual_stream(
        self, idx: torch.Tensor, subnetwork: Subnetwork | Sequence[LayerSlice | None] | None = None
    ) -> torch.Tensor:
        """The residual stream after the last block (before the final layer norm), shape
        ``(batch, T, d_model)``; arguments as :meth:`forward`."""
        if not isinstance(idx, torch.Tensor) or idx.dtype != torch.long or idx.ndim != 2:
            raise TypeError("idx must be a 2-D torch.long tensor of token ids (batch, T)")
        length = idx.shape[1]
        if not 1 <= length <= self.config.context:
            raise ValueError(f"idx must have 1..{self.config.context} positions, got {length}")
        x = self.tok(idx) + self.pos(torch.arange(length, device=idx.device))
        return self.run_blocks(x, subnetwork)

    def run_blocks(
        self, x: torch.Tensor, subnetwork: Subnetwork | Sequence[LayerSlice | None] | None = None
    ) -> torch.Tensor:
        """Apply the blocks of ``subnetwork`` to a residual stream ``x`` (batch, T, d_model)."""
        if not isinstance(x, torch.Tensor) or x.ndim != 3 or x.shape[-1] != self.config.d_model:
            raise ValueError(f"x must be a tensor of shape (batch, T, {self.config.d_model})")
        for block, part in zip(self.blocks, self._layers(subnetwork), strict=True):
            if part is not None:
                x = block(x, part)
        return x

    def _layers(self, subnetwork: Any) -> tuple[LayerSlice | None, ...]:
        n_layers = self.config.n_layers
        if subnetwork is None:
            return (LayerSlice(),) * n_layers
        if not isinstance(subnetwork, Subnetwork):
            subnetwork = Subnetwork(tuple(subnetwork))
        layers = subnetwork.layers
        if len(layers) != n_layers:
            raise ValueError(f"subnetwork must have {n_layers} layer entries, got {len(layers)}")
        for i, part in enumerate(layers):  # LayerSlice checked the rest when it was made
            if part is not None:
                _check_bound(part.heads, self.config.n_heads, f"subnetwork.layers[{i}].heads")
                _check_bound(part.neurons, self.config.d_mlp, f"subnetwork.layers[{i}].neurons")
        return layers

    def loss(
        self,
        idx: torch.Tensor,
        targets: torch.Tensor,
        subnetwork: Subnetwork | Sequence[LayerSlice | None] | None = None,
    ) -> torch.Tensor:
        """Mean next-token cross-entropy (nats per token) of ``targets`` given ``idx``."""
        logits = self(idx, subnetwork)
        if not isinstance(targets, torch.Tensor) or targets.shape != idx.shape:
            raise ValueError(f"targets must be a tensor of shape {tuple(idx.shape)}")
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
