r"""Hidden dimensions of a BERT-family encoder or a pre-LN decoder as prunable blocks.

A hidden dimension :math:`j` is one coordinate of the residual stream, shared by every layer:
removing it removes column :math:`j` of the embeddings, of :math:`W_Q, W_K, W_V` and of the
FFN's up projection, row :math:`j` (with its bias) of the attention output projection and of
the FFN's down projection, and entry :math:`j` of every layer norm (APT prunes one hidden mask
for the whole model; Zhao, Hajishirzi & Cao, ICML 2024, Sec. 4.2).

Every write to the stream goes through a layer norm (post-LN BERT: after the embeddings, and
:math:`\mathrm{LN}(x + f(x))` after each attention and FFN block). So the stream keeps only the
dimensions :math:`K` if each layer norm is taken over :math:`K` alone and writes zeros
elsewhere, by selection:

.. math::

    \mathrm{LN}_K(x)_j = \begin{cases}
        \gamma_j \dfrac{x_j - \mu_K}{\sqrt{\sigma_K^2 + \epsilon}} + \beta_j & j \in K \\
        0 & j \notin K
    \end{cases}, \qquad
    \mu_K = \frac{1}{|K|}\sum_{i \in K} x_i, \quad
    \sigma_K^2 = \frac{1}{|K|}\sum_{i \in K} (x_i - \mu_K)^2

(:class:`KeptLayerNorm`; CoFi's and APT's masked layer norm). Nothing of a dropped dimension
reaches a kept one -- not even a nan or inf there -- so the model shrunk to :math:`|K|`
dimensions (:func:`shrink_hidden`, an ordinary ``nn.LayerNorm`` of width :math:`|K|`)
computes exactly what the masked one does. A layer norm over all :math:`d` dimensions with
zeros in the dropped ones would not: its statistics would count the zeros.

Parameters, for a layer with :math:`h` heads of width :math:`d_h`, :math:`n` neurons and
:math:`d'` kept hidden dimensions (:meth:`HiddenDims.count`):

.. math::

    P = h\,d_h (4 d' + 3) + n (2 d' + 1) + 6 d',

the heads' :math:`W_Q, W_K, W_V` rows with biases and :math:`W_O` columns, the neurons' up rows
with biases and down columns, and per dimension the two output biases and the two layer
norms' scale and shift. At full size this is every parameter of the layer. The embeddings
shrink too but are not counted in the budget (like APT's, which covers the encoder layers).

Pre-LN decoders (Hugging Face GPT-2 and Llama-style): the blocks add to the stream without a
norm after them, but the norms before each attention and MLP block and the final one are the
only readers of the stream. With each of them over :math:`K` alone (:class:`KeptLayerNorm`,
or :class:`KeptRMSNorm` for Llama's RMS norms) the dropped dimensions of the stream reach
nothing, although the blocks still write to them, and the shrunk decoder (embeddings, the
blocks' input columns and output rows, the norms and the LM head cut to :math:`K`; a tied head
stays tied) computes what the masked one does. GPT-2's count is the formula above; a Llama
layer's is :math:`h\,d_h (4 d') + 3 n d' + 2 d'` with its own key-value heads (with shared
ones a query head owns :math:`2 d_h d'`: its :math:`W_Q` rows and :math:`W_O` columns), plus
the biases where there are any. One exception to "reaches nothing": an LM head multiplies the
final norm's zeros by its dropped columns, so a non-finite weight there (GPT-2's head is its
token embedding) would reach the masked model's logits, not the shrunk model's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from kernelapprox.compression.pruning.models import (
    _hf_decoder_blocks,
    _is_bert,
    _layer_norms,
    bert_layers,
    bert_sites,
    check_hidden_mask,
    hf_decoder_sites,
    shrink_hidden,
)
from kernelapprox.compression.pruning.salience import HIDDEN, Site
from kernelapprox.compression.pruning.schedule import check_fading_mask

__all__ = [
    "HIDDEN",
    "HiddenDims",
    "KeptLayerNorm",
    "KeptRMSNorm",
    "check_hidden_mask",
    "shrink_hidden",
]


class _KeptNorm(nn.Module):
    """A norm over the kept dimensions only, zero elsewhere by selection; the kept ones
    optionally multiplied by a fading mask. Subclasses normalize the gathered dimensions."""

    def __init__(self, width: int, device: torch.device) -> None:
        super().__init__()
        self.register_buffer("keep", torch.ones(width, dtype=torch.bool, device=device))
        self.scale: torch.Tensor | None = None

    def set_keep(self, keep: torch.Tensor, scale: torch.Tensor | None = None) -> None:
        """Keep the dimensions where ``keep`` is ``True``, the kept ones multiplied by
        ``scale`` (a fading mask, values in (0, 1]; none: by 1)."""
        self.keep.copy_(keep.to(self.keep.device))
        self.scale = None if scale is None else scale.to(self.keep.device)

    def normalize(self, x: torch.Tensor, idx: torch.Tensor | None) -> torch.Tensor:
        """The norm of ``x``, the dimensions ``idx`` (none: all) of the input."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = self.keep.numel()
        idx = torch.nonzero(self.keep).reshape(-1)
        if idx.numel() == d and self.scale is None:
            return self.normalize(x, None)
        y = self.normalize(x.index_select(-1, idx), idx)
        if self.scale is not None:
            y = y * self.scale[idx].to(y.dtype)
        return x.new_zeros(x.shape).index_copy(-1, idx, y)


class KeptLayerNorm(_KeptNorm):
    r"""A layer norm over the kept dimensions only, zero elsewhere (:math:`\mathrm{LN}_K` of the
    module docstring).

    It holds the very ``weight`` and ``bias`` parameters of the layer norm it replaces (so an
    optimizer or a frozen state carries over). With every dimension kept it is that layer norm.
    """

    def __init__(self, norm: nn.LayerNorm) -> None:
        if not isinstance(norm, nn.LayerNorm) or len(norm.normalized_shape) != 1:
            raise TypeError(f"norm must be a 1-D nn.LayerNorm, got {type(norm).__name__}")
        if norm.weight is None or norm.bias is None:
            raise TypeError("norm must have an elementwise scale and shift")
        super().__init__(norm.normalized_shape[0], norm.weight.device)
        self.weight, self.bias, self.eps = norm.weight, norm.bias, norm.eps

    def normalize(self, x: torch.Tensor, idx: torch.Tensor | None) -> torch.Tensor:
        w, b = (self.weight, self.bias) if idx is None else (self.weight[idx], self.bias[idx])
        return F.layer_norm(x, (x.shape[-1],), w, b, self.eps)


class KeptRMSNorm(_KeptNorm):
    r"""A Llama-style RMS norm over the kept dimensions only, zero elsewhere:

    .. math::

        \mathrm{RMS}_K(x)_j = w_j\, \frac{x_j}{\sqrt{\frac{1}{|K|}\sum_{i \in K} x_i^2
            + \epsilon}} \quad (j \in K), \qquad 0 \quad (j \notin K),

    computed as the replaced module does (in float32, the result cast back, then scaled by
    ``weight``; Llama, Mistral and Qwen2 norms: a ``weight`` and a ``variance_epsilon``). It
    holds that module's ``weight``; with every dimension kept it computes what the module does.
    """

    def __init__(self, norm: nn.Module) -> None:
        weight = getattr(norm, "weight", None)
        eps = getattr(norm, "variance_epsilon", None)
        if not isinstance(weight, nn.Parameter) or weight.ndim != 1 or not isinstance(eps, float):
            raise TypeError(
                "norm must be a Llama-style RMS norm (a 1-D weight and a float "
                f"variance_epsilon), got {type(norm).__name__}"
            )
        if getattr(norm, "bias", None) is not None:
            raise TypeError(f"norm must have no bias, got {type(norm).__name__} with one")
        super().__init__(weight.numel(), weight.device)
        self.weight, self.eps = weight, eps
        self._original = (norm,)  # a tuple: not a submodule, its weight is ours

    @property
    def original(self) -> nn.Module:
        """The replaced module (for :func:`shrink_hidden`, which makes a smaller copy of it)."""
        return self._original[0]

    def normalize(self, x: torch.Tensor, idx: torch.Tensor | None) -> torch.Tensor:
        dtype = x.dtype
        h = x.to(torch.float32)
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return (self.weight if idx is None else self.weight[idx]) * h.to(dtype)


def _kept(norm: nn.Module) -> _KeptNorm:
    """``norm`` as a kept norm (itself if it is one already)."""
    if isinstance(norm, _KeptNorm):
        return norm
    return KeptLayerNorm(norm) if isinstance(norm, nn.LayerNorm) else KeptRMSNorm(norm)


class HiddenDims:
    """The hidden dimensions of a BERT-family encoder or of a Hugging Face GPT-2 or
    Llama-style decoder, installed for pruning.

    Creating one replaces, in place, every norm on the residual stream by a
    :class:`KeptLayerNorm` or :class:`KeptRMSNorm` sharing its parameters (the outputs do
    not change while every dimension is kept). :meth:`apply` then drops dimensions by
    selection. In a pre-LN decoder the norms are the only readers of the stream, so a dropped
    dimension reaches nothing even though the blocks still write to it.

    Attributes
    ----------
    width : int
        :math:`d`, the hidden size.
    sites : list of Site
        ``layers.{i}.hidden`` at each layer's output (scored only, ``params_per_group = 0``):
        the salience of dimension :math:`j` is the sum over the layers of its salience there.
    """

    def __init__(self, model: nn.Module) -> None:
        self.norms: list[_KeptNorm] = []
        for parent, attr in _layer_norms(model):
            norm = _kept(getattr(parent, attr))
            setattr(parent, attr, norm)
            self.norms.append(norm)
        self.width = self.norms[0].keep.numel()
        if any(n.keep.numel() != self.width for n in self.norms):
            raise ValueError("model: the norms of the residual stream differ in width")
        if _is_bert(model):
            family, every = "bert", bert_sites(model, hidden=True)
            blocks = bert_layers(model)
            outputs = [(b.attention.output.dense, b.output.dense) for b in blocks]
        else:
            family, _, blocks = _hf_decoder_blocks(model)
            every = hf_decoder_sites(model, hidden=True)
            outputs = [
                (b.attn.c_proj, b.mlp.c_proj)
                if family == "gpt2"
                else (b.self_attn.o_proj, b.mlp.down_proj)
                for b in blocks
            ]
        self.sites = [s for s in every if s.kind == "hidden"]
        self.n_layers = len(self.sites)
        #: per head or neuron site ``(a, b)``: one of its groups owns ``a d' + b`` parameters
        #: with ``d'`` hidden dimensions kept
        self.coefficients: dict[str, tuple[int, int]] = {}
        for site in every:
            if site.kind == "head":
                own_kv = family != "llama" or blocks[site.layer].self_attn.num_key_value_groups == 1
                a = (4 if own_kv else 2) * site.group_size
            elif site.kind == "neuron":
                a = 3 if family == "llama" else 2
            else:
                continue
            self.coefficients[site.name] = (a, site.params_per_group - a * self.width)
        #: parameters per kept dimension besides heads and neurons, all layers together: the
        #: layers' norms (scale, and shift where there is one) and output biases
        layer_norms = self.norms[1:] if family == "bert" else self.norms[:-1]  # not the
        # embeddings' (BERT) or the final one (decoders): outside the layers
        self.per_dim = sum(1 + (getattr(n, "bias", None) is not None) for n in layer_norms)
        self.per_dim += sum(
            getattr(proj, "bias", None) is not None for pair in outputs for proj in pair
        )

    def apply(self, keep: torch.Tensor) -> None:
        """Keep the dimensions where ``keep`` (shape ``(width,)``) is ``True``; a floating
        ``keep`` is a fading mask (values in [0, 1]): dimensions at 0 are dropped, the others
        multiplied by their value after the layer norm."""
        if keep.is_floating_point():
            check_fading_mask(keep, (self.width,), "keep")
            kept = check_hidden_mask(keep > 0, self.width)
            for norm in self.norms:
                norm.set_keep(kept, keep)
            return
        keep = check_hidden_mask(keep, self.width)
        for norm in self.norms:
            norm.set_keep(keep)

    def scores(self, site_scores: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Salience of each dimension: the sum over :attr:`sites` of ``site_scores``."""
        total = torch.zeros(self.width, dtype=torch.float64)
        for s in self.sites:
            if s.name not in site_scores:
                raise ValueError(f"scores has no entry for site {s.name!r}")
            score = site_scores[s.name]
            if score.shape != (self.width,):
                raise ValueError(
                    f"scores[{s.name!r}] must have shape ({self.width},), got {tuple(score.shape)}"
                )
            total += score.detach().cpu().to(torch.float64)
        return total

    def count(self, sites: Sequence[Site], kept: Mapping[str, int], dims: int) -> int:
        """Parameters of the encoder layers (module docstring) with ``kept[name]`` groups of
        each head and neuron site of ``sites`` (all of a site's groups where it is missing)
        and ``dims`` hidden dimensions."""
        total = self.per_dim * dims
        for s in sites:
            if s.kind in ("head", "neuron"):
                if s.name not in self.coefficients:
                    raise ValueError(f"sites: {s.name!r} is not a site of this model")
                a, b = self.coefficients[s.name]
                total += kept.get(s.name, s.n_groups) * (a * dims + b)
        return total

    def params_per_dim(self, sites: Sequence[Site]) -> int:
        """Parameters one hidden dimension owns at full size (the density's denominator)."""
        return self.count(sites, {}, 1) - self.count(sites, {}, 0)
