r"""Where the prunable blocks of a model are, and how to remove them for good.

Two model families, neither edited:

* :class:`kernelapprox.lm.Decoder`: heads at each block's ``attn.context`` (an identity on the
  concatenated head outputs), neurons at ``mlp.act``, hidden dimensions at the block output;
* Hugging Face BERT-family encoders (``BertModel`` and models holding one, such as MiniLM):
  heads at the input of ``attention.output.dense``, neurons at the input of
  ``output.dense``, hidden dimensions at each layer's output (forward hooks only).

A head owns :math:`4 d\,d_h + 3 d_h` parameters (its rows of :math:`W_Q, W_K, W_V` with
biases and its columns of :math:`W_O`), a neuron :math:`2d + 1` (its row of :math:`W_1` with
bias, its column of :math:`W_2`). Hidden-dimension sites are scored only
(``params_per_group = 0``): removing a dimension changes every norm's statistics, so it is
pruned through norms over the kept dimensions
(:mod:`~kernelapprox.compression.pruning.hidden`, BERT encoders and Hugging Face GPT-2 and
Llama-style decoders) and removed by :func:`shrink_hidden`.

Shrinking (:func:`shrink_decoder`, :func:`shrink_bert`) replaces the linear layers by smaller
ones holding the kept rows and columns: the shrunk model computes exactly what the masked one
does (masks by selection, :class:`~kernelapprox.compression.pruning.schedule.MaskHooks`), with
smaller matrix products.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from kernelapprox.compression.pruning.salience import HIDDEN, Site


def _sliced_linear(
    linear: nn.Linear, rows: torch.Tensor | None, cols: torch.Tensor | None
) -> nn.Linear:
    """A new ``nn.Linear`` with the given output rows / input columns of ``linear``."""
    w = linear.weight.detach()
    b = None if linear.bias is None else linear.bias.detach()
    if rows is not None:
        w = w.index_select(0, rows.to(w.device))
        b = None if b is None else b.index_select(0, rows.to(w.device))
    if cols is not None:
        w = w.index_select(1, cols.to(w.device))
    # a 1 x 1 layer whose parameters are then replaced: no random init to overwrite (nor a
    # warning for a layer with 0 rows)
    new = nn.Linear(1, 1, bias=b is not None, device=w.device, dtype=w.dtype)
    new.in_features, new.out_features = w.shape[1], w.shape[0]
    new.weight = nn.Parameter(w.clone(), requires_grad=linear.weight.requires_grad)
    if b is not None:
        new.bias = nn.Parameter(b.clone(), requires_grad=linear.bias.requires_grad)
    return new


def _head_rows(mask: torch.Tensor, head_dim: int) -> torch.Tensor:
    return torch.nonzero(mask.repeat_interleave(head_dim)).reshape(-1)


def _check_masks(masks: Any) -> Mapping[str, torch.Tensor]:
    if not isinstance(masks, Mapping):
        raise TypeError(
            f"masks must be a mapping of site name -> bool tensor, got {type(masks).__name__}"
        )
    for name, m in masks.items():
        if not isinstance(m, torch.Tensor) or m.dtype != torch.bool or m.ndim != 1:
            raise TypeError(f"masks[{name!r}] must be a 1-D bool tensor")
    return masks


def _mask(masks: Mapping[str, torch.Tensor], name: str, n: int) -> torch.Tensor | None:
    m = masks.get(name)
    if m is not None and m.shape != (n,):
        raise ValueError(f"masks[{name!r}] must have shape ({n},), got {tuple(m.shape)}")
    return None if m is None else m.cpu()


# --------------------------------------------------------------------------------- decoder


def decoder_sites(model: nn.Module, *, hidden: bool = False) -> list[Site]:
    """Sites of a :class:`kernelapprox.lm.Decoder`: ``layers.{i}.heads``, ``layers.{i}.neurons``
    and, with ``hidden=True``, ``layers.{i}.hidden``."""
    from kernelapprox.lm import Decoder

    if not isinstance(model, Decoder):
        raise TypeError(f"model must be a kernelapprox.lm.Decoder, got {type(model).__name__}")
    d = model.config.d_model
    sites = []
    for i, block in enumerate(model.blocks):
        attn, mlp = block.attn, block.mlp
        dh = attn.head_dim
        sites.append(
            Site(
                f"layers.{i}.heads",
                attn.context,
                "output",
                "head",
                dh,
                attn.n_heads,
                4 * d * dh + 3 * dh,
                i,
            )
        )
        sites.append(
            Site(
                f"layers.{i}.neurons",
                mlp.act,
                "output",
                "neuron",
                1,
                mlp.fc.out_features,
                2 * d + 1,
                i,
            )
        )
        if hidden:
            sites.append(Site(f"layers.{i}.hidden", block, "output", "hidden", 1, d, 0, i))
    return sites


@torch.no_grad()
def shrink_decoder(model: nn.Module, masks: Mapping[str, torch.Tensor]) -> nn.Module:
    """Remove, in place, the heads and neurons whose mask entry is ``False`` (site names of
    :func:`decoder_sites`; a site without a mask is kept whole); returns ``model``.

    The shrunk model runs with the full subnetwork only (``subnetwork=None``): its layers no
    longer share the sizes of ``model.config``.
    """
    sites = {s.name: s for s in decoder_sites(model)}
    masks = _check_masks(masks)
    for name in masks:
        if name not in sites:
            raise ValueError(f"masks names an unknown or unprunable site {name!r}")
    for i, block in enumerate(model.blocks):
        attn, mlp = block.attn, block.mlp
        hm = _mask(masks, f"layers.{i}.heads", attn.n_heads)
        if hm is not None:
            rows = _head_rows(hm, attn.head_dim)
            attn.q, attn.k, attn.v = (
                _sliced_linear(m, rows, None) for m in (attn.q, attn.k, attn.v)
            )
            attn.o = _sliced_linear(attn.o, None, rows)
            attn.n_heads = int(hm.sum())
        nm = _mask(masks, f"layers.{i}.neurons", mlp.fc.out_features)
        if nm is not None:
            keep = torch.nonzero(nm).reshape(-1)
            mlp.fc = _sliced_linear(mlp.fc, keep, None)
            mlp.proj = _sliced_linear(mlp.proj, None, keep)
    return model


# ------------------------------------------------------------------------------------ BERT


def _bert_candidates(model: nn.Module) -> tuple[Any, ...]:
    """``model`` and the BERT model it may wrap (``base_model``, ``bert``), where to look for
    its parts."""
    return (model, getattr(model, "base_model", None), getattr(model, "bert", None))


def bert_layers(model: nn.Module) -> nn.ModuleList:
    """The ``encoder.layer`` list of a BERT-family model (or of the model it wraps)."""
    for candidate in _bert_candidates(model):
        encoder = getattr(candidate, "encoder", None)
        layers = getattr(encoder, "layer", None)
        if isinstance(layers, nn.ModuleList) and len(layers) and hasattr(layers[0], "attention"):
            return layers
    raise TypeError(
        f"model must be a BERT-family model with encoder.layer, got {type(model).__name__}"
    )


class _NoHeads(nn.Module):
    """Stands in for a self-attention whose heads were all removed: an empty context."""

    def __init__(self, attention_head_size: int) -> None:
        super().__init__()
        self.attention_head_size = attention_head_size
        self.num_attention_heads = 0

    def forward(self, hidden_states: torch.Tensor, *args: Any, **kwargs: Any) -> tuple:
        return hidden_states[..., :0], None


def bert_sites(model: nn.Module, *, hidden: bool = False) -> list[Site]:
    """Sites of a BERT-family encoder: ``layers.{i}.heads``, ``layers.{i}.neurons`` and, with
    ``hidden=True``, ``layers.{i}.hidden`` (see the module docstring)."""
    sites = []
    for i, layer in enumerate(bert_layers(model)):
        attn_out, ffn_out = layer.attention.output.dense, layer.output.dense
        d = attn_out.out_features
        self_attn = layer.attention.self
        dh = self_attn.attention_head_size
        n_heads = attn_out.in_features // dh
        sites.append(
            Site(
                f"layers.{i}.heads", attn_out, "input", "head", dh, n_heads, 4 * d * dh + 3 * dh, i
            )
        )
        sites.append(
            Site(
                f"layers.{i}.neurons",
                ffn_out,
                "input",
                "neuron",
                1,
                ffn_out.in_features,
                2 * d + 1,
                i,
            )
        )
        if hidden:
            sites.append(Site(f"layers.{i}.hidden", layer, "output", "hidden", 1, d, 0, i))
    return sites


@torch.no_grad()
def shrink_bert(model: nn.Module, masks: Mapping[str, torch.Tensor]) -> nn.Module:
    """Remove, in place, the heads and neurons of a BERT-family encoder whose mask entry is
    ``False`` (site names of :func:`bert_sites`), and with a ``"hidden"`` entry the hidden
    dimensions it drops (:func:`~kernelapprox.compression.pruning.hidden.shrink_hidden`: the
    last hidden state then holds only the kept ones); returns ``model``. A layer left without
    heads gets an empty self-attention (its attention block adds only the output bias)."""
    sites = {s.name: s for s in bert_sites(model)}
    masks = _check_masks(masks)
    for name in masks:
        if name not in sites and name != HIDDEN:
            raise ValueError(f"masks names an unknown or unprunable site {name!r}")
    if HIDDEN in masks:
        check_hidden_mask(masks[HIDDEN], bert_layers(model)[0].output.dense.out_features)
    for i, layer in enumerate(bert_layers(model)):
        site = sites[f"layers.{i}.heads"]
        hm = _mask(masks, site.name, site.n_groups)
        if hm is not None:
            att = layer.attention
            rows = _head_rows(hm, site.group_size)
            kept = int(hm.sum())
            att.output.dense = _sliced_linear(att.output.dense, None, rows)
            if kept == 0:
                att.self = _NoHeads(site.group_size)
            else:
                s = att.self
                s.query, s.key, s.value = (
                    _sliced_linear(m, rows, None) for m in (s.query, s.key, s.value)
                )
                s.num_attention_heads = kept
                s.all_head_size = kept * site.group_size
        site = sites[f"layers.{i}.neurons"]
        nm = _mask(masks, site.name, site.n_groups)
        if nm is not None:
            keep = torch.nonzero(nm).reshape(-1)
            layer.intermediate.dense = _sliced_linear(layer.intermediate.dense, keep, None)
            layer.output.dense = _sliced_linear(layer.output.dense, None, keep)
    if HIDDEN in masks:
        shrink_hidden(model, masks[HIDDEN])
    return model


def count_params(module: nn.Module) -> int:
    """Number of parameters of ``module`` (shared tensors once)."""
    return sum(p.numel() for p in {id(p): p for p in module.parameters()}.values())


# ------------------------------------------------------------- Hugging Face decoders


def _hf_decoder_blocks(model: nn.Module) -> tuple[str, nn.Module, nn.ModuleList]:
    """``(family, base, blocks)`` of a Hugging Face decoder: ``"gpt2"`` with ``transformer``
    and its ``h``, or ``"llama"`` with the inner ``model`` and its ``layers``."""
    base = getattr(model, "transformer", None)
    if base is not None and isinstance(getattr(base, "h", None), nn.ModuleList):
        return "gpt2", base, base.h
    inner = getattr(model, "model", model)
    layers = getattr(inner, "layers", None)
    if isinstance(layers, nn.ModuleList) and len(layers) and hasattr(layers[0], "self_attn"):
        return "llama", inner, layers
    raise TypeError(
        f"model must be a GPT-2 or Llama-style Hugging Face decoder, got {type(model).__name__}"
    )


def hf_decoder_sites(model: nn.Module, *, hidden: bool = False) -> list[Site]:
    """Head and neuron sites of a Hugging Face GPT-2 or Llama-style decoder (scoring and masks),
    and with ``hidden=True`` ``layers.{i}.hidden`` at each block's output (the residual
    stream; scored only, see :mod:`~kernelapprox.compression.pruning.hidden`).

    GPT-2 (``transformer.h``): heads at the input of ``attn.c_proj``, neurons at the input of
    ``mlp.c_proj`` (both ``Conv1D``). Llama-style (``model.layers``): heads at the input of
    ``self_attn.o_proj``, neurons at the input of ``mlp.down_proj``. A query head owns its
    :math:`W_Q` rows and :math:`W_O` columns, plus :math:`W_K, W_V` rows when it has its own
    key-value head (:math:`2 d\\,d_h` or :math:`4 d\\,d_h`, with biases where there are any);
    a Llama neuron its gate and up rows and down column (:math:`3d`), a GPT-2 neuron
    :math:`2d + 1`. Physical removal: :func:`shrink_hf_decoder`.
    """
    family, _, blocks = _hf_decoder_blocks(model)
    sites = []
    for i, block in enumerate(blocks):
        if family == "gpt2":
            attn, mlp = block.attn, block.mlp
            d, dh = attn.embed_dim, attn.head_dim
            per_head = 4 * d * dh + 3 * dh
            heads = Site(
                f"layers.{i}.heads", attn.c_proj, "input", "head", dh, attn.num_heads, per_head, i
            )
            width = mlp.c_fc.nf
            neurons = Site(
                f"layers.{i}.neurons", mlp.c_proj, "input", "neuron", 1, width, 2 * d + 1, i
            )
        else:
            attn, mlp = block.self_attn, block.mlp
            o = attn.o_proj
            dh = attn.head_dim
            n_heads, d = o.in_features // dh, o.out_features
            own_kv = attn.num_key_value_groups == 1
            per_head = (4 if own_kv else 2) * d * dh
            if o.bias is not None or attn.q_proj.bias is not None:
                per_head += (3 if own_kv else 1) * dh
            heads = Site(f"layers.{i}.heads", o, "input", "head", dh, n_heads, per_head, i)
            down = mlp.down_proj
            neurons = Site(
                f"layers.{i}.neurons", down, "input", "neuron", 1, down.in_features, 3 * d, i
            )
        sites += [heads, neurons]
        if hidden:
            sites.append(Site(f"layers.{i}.hidden", block, "output", "hidden", 1, d, 0, i))
    return sites


class _BiasOnly(nn.Module):
    """A projection of an empty input (``Conv1D`` cannot reshape one): its bias, broadcast."""

    def __init__(self, bias: torch.Tensor, requires_grad: bool) -> None:
        super().__init__()
        self.bias = nn.Parameter(bias.detach().clone(), requires_grad=requires_grad)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bias.expand(*x.shape[:-1], self.bias.shape[0])


def _sliced_conv1d(conv: nn.Module, rows: torch.Tensor | None, cols: torch.Tensor | None):
    """A new GPT-2 ``Conv1D`` (weight ``(in, out)``) with the given input rows / output columns
    (without input rows: :class:`_BiasOnly`)."""
    from transformers.pytorch_utils import Conv1D

    w, b = conv.weight.detach(), conv.bias
    if cols is not None:
        w = w.index_select(1, cols.to(w.device))
        b = b.index_select(0, cols.to(w.device))
    if rows is not None:
        if rows.numel() == 0:
            return _BiasOnly(b, conv.bias.requires_grad)
        w = w.index_select(0, rows.to(w.device))
    b = b.detach()
    new = Conv1D(1, 1).to(device=w.device, dtype=w.dtype)
    new.nx, new.nf = w.shape
    new.weight = nn.Parameter(w.clone(), requires_grad=conv.weight.requires_grad)
    new.bias = nn.Parameter(b.clone(), requires_grad=conv.bias.requires_grad)
    return new


class _EmptyAttention(nn.Module):
    """Stands in for a decoder self-attention whose heads were all removed: the output projection
    of an empty context (its bias, or zeros), then ``dropout``. It updates no key-value cache."""

    def __init__(self, out_proj: nn.Module, dropout: nn.Module | None = None) -> None:
        super().__init__()
        self.out_proj = out_proj
        self.dropout = dropout if dropout is not None else nn.Identity()

    def forward(self, hidden_states: torch.Tensor, *args: Any, **kwargs: Any) -> tuple:
        return self.dropout(self.out_proj(hidden_states[..., :0])), None


def _llama_kv_rows(hm: torch.Tensor, n_rep: int, head_dim: int) -> tuple[torch.Tensor, int]:
    """Rows of ``k_proj`` / ``v_proj`` to keep and the new number of query heads per key-value
    head; every key-value group must keep the same number of query heads, or none."""
    per_group = hm.reshape(-1, n_rep).sum(1)
    alive = per_group > 0
    counts = set(per_group[alive].tolist())
    if len(counts) > 1:
        raise ValueError(
            "masks: with shared key-value heads every group of query heads must keep the same "
            f"number of heads (or none), got {per_group.tolist()} kept per group"
        )
    return _head_rows(alive, head_dim), counts.pop() if counts else 0


@torch.no_grad()
def shrink_hf_decoder(model: nn.Module, masks: Mapping[str, torch.Tensor]) -> nn.Module:
    r"""Remove, in place, the heads and neurons of a Hugging Face GPT-2 or Llama-style decoder
    whose mask entry is ``False`` (site names of :func:`hf_decoder_sites`); returns ``model``.

    The library's code is not edited: the projections are replaced by smaller ones and the
    attention's own counts updated (GPT-2: ``num_heads`` and ``split_size``, the query, key
    and value columns of ``c_attn`` and the rows of ``c_proj``; Llama: the rows of ``q_proj``
    and of the key-value heads still used in ``k_proj`` / ``v_proj``, the columns of
    ``o_proj``, ``num_key_value_groups``; neurons: GPT-2 ``c_fc`` columns and ``c_proj`` rows,
    Llama ``gate_proj`` / ``up_proj`` rows and ``down_proj`` columns). The shapes inside the
    attention are read from the tensors (``view(..., -1, head_dim)``), so the shrunk model
    computes what the masked one does
    (:class:`~kernelapprox.compression.pruning.schedule.MaskHooks`). With shared key-value
    heads (grouped-query attention) each group must keep the same number of query heads or
    none (a ``ValueError`` otherwise). A layer left without heads gets an attention that adds
    only the output bias and keeps no key-value cache: run such a model without a cache. A
    ``"hidden"`` entry removes the hidden dimensions it drops (:func:`shrink_hidden`).
    """
    sites = {s.name: s for s in hf_decoder_sites(model)}
    masks = _check_masks(masks)
    for name in masks:
        if name not in sites and name != HIDDEN:
            raise ValueError(f"masks names an unknown or unprunable site {name!r}")
    family, _, blocks = _hf_decoder_blocks(model)
    gpt2 = family == "gpt2"
    if HIDDEN in masks:
        check_hidden_mask(masks[HIDDEN], _decoder_width(model))
    plans = []  # check every mask before changing anything
    for i, block in enumerate(blocks):
        heads, neurons = sites[f"layers.{i}.heads"], sites[f"layers.{i}.neurons"]
        hm = _mask(masks, heads.name, heads.n_groups)
        nm = _mask(masks, neurons.name, neurons.n_groups)
        kv = None
        if hm is not None and not gpt2:
            kv = _llama_kv_rows(hm, block.self_attn.num_key_value_groups, heads.group_size)
        plans.append((block, heads.group_size, hm, nm, kv))
    for block, dh, hm, nm, kv in plans:
        if gpt2:
            _shrink_gpt2_block(block, dh, hm, nm)
        else:
            _shrink_llama_layer(block, dh, hm, nm, kv)
    if HIDDEN in masks:
        shrink_hidden(model, masks[HIDDEN])
    return model


def _shrink_gpt2_block(block: nn.Module, dh: int, hm, nm) -> None:
    attn, mlp = block.attn, block.mlp
    if hm is not None:
        rows = _head_rows(hm, dh)
        kept = int(hm.sum())
        c_proj = _sliced_conv1d(attn.c_proj, rows, None)
        if kept == 0:
            block.attn = _EmptyAttention(c_proj, attn.resid_dropout)
        else:
            d = attn.split_size
            qkv = torch.cat([rows, rows + d, rows + 2 * d])
            attn.c_attn = _sliced_conv1d(attn.c_attn, None, qkv)
            attn.c_proj = c_proj
            attn.num_heads, attn.split_size = kept, kept * dh
    if nm is not None:
        keep = torch.nonzero(nm).reshape(-1)
        mlp.c_fc = _sliced_conv1d(mlp.c_fc, None, keep)
        mlp.c_proj = _sliced_conv1d(mlp.c_proj, keep, None)


def _shrink_llama_layer(layer: nn.Module, dh: int, hm, nm, kv) -> None:
    attn, mlp = layer.self_attn, layer.mlp
    if hm is not None:
        rows = _head_rows(hm, dh)
        o_proj = _sliced_linear(attn.o_proj, None, rows)
        kv_rows, per_group = kv
        if per_group == 0:
            layer.self_attn = _EmptyAttention(o_proj)
        else:
            attn.q_proj = _sliced_linear(attn.q_proj, rows, None)
            attn.k_proj = _sliced_linear(attn.k_proj, kv_rows, None)
            attn.v_proj = _sliced_linear(attn.v_proj, kv_rows, None)
            attn.o_proj = o_proj
            attn.num_key_value_groups = per_group
    if nm is not None:
        keep = torch.nonzero(nm).reshape(-1)
        mlp.gate_proj = _sliced_linear(mlp.gate_proj, keep, None)
        mlp.up_proj = _sliced_linear(mlp.up_proj, keep, None)
        mlp.down_proj = _sliced_linear(mlp.down_proj, None, keep)


# ------------------------------------------------- hidden dimensions (see .hidden)


def bert_embeddings(model: nn.Module) -> nn.Module:
    """The ``embeddings`` module of a BERT-family model (or of the model it wraps)."""
    for candidate in _bert_candidates(model):
        emb = getattr(candidate, "embeddings", None)
        if isinstance(emb, nn.Module) and hasattr(emb, "word_embeddings"):
            return emb
    raise TypeError(
        f"model must be a BERT-family model with embeddings, got {type(model).__name__}"
    )


def _is_bert(model: nn.Module) -> bool:
    try:
        bert_layers(model)
    except TypeError:
        return False
    return True


def _decoder_width(model: nn.Module) -> int:
    """The hidden size of a Hugging Face decoder: its token embedding's width."""
    family, base, _ = _hf_decoder_blocks(model)
    return (base.wte if family == "gpt2" else base.embed_tokens).embedding_dim


def _layer_norms(model: nn.Module) -> list[tuple[nn.Module, str]]:
    """``(parent, attribute)`` of every norm that reads or writes the residual stream: a BERT
    encoder's after the embeddings and after each attention and FFN block (post-LN); a
    decoder's before each attention and MLP block and the final one (pre-LN)."""
    if _is_bert(model):
        out = [(bert_embeddings(model), "LayerNorm")]
        for layer in bert_layers(model):
            out += [(layer.attention.output, "LayerNorm"), (layer.output, "LayerNorm")]
        return out
    family, base, blocks = _hf_decoder_blocks(model)
    if family == "gpt2":
        return [(b, a) for b in blocks for a in ("ln_1", "ln_2")] + [(base, "ln_f")]
    pairs = [(b, a) for b in blocks for a in ("input_layernorm", "post_attention_layernorm")]
    return [*pairs, (base, "norm")]


def check_hidden_mask(keep: Any, width: int) -> torch.Tensor:
    """``keep`` checked: a bool tensor of shape ``(width,)`` keeping at least one dimension."""
    if not isinstance(keep, torch.Tensor) or keep.dtype != torch.bool:
        raise TypeError(f"masks[{HIDDEN!r}] must be a bool tensor")
    if keep.shape != (width,):
        raise ValueError(f"masks[{HIDDEN!r}] must have shape ({width},), got {tuple(keep.shape)}")
    if not bool(keep.any()):
        raise ValueError(f"masks[{HIDDEN!r}] must keep at least one hidden dimension")
    return keep.cpu()


def _sliced_embedding(emb: nn.Embedding, cols: torch.Tensor) -> nn.Embedding:
    w = emb.weight.detach().index_select(1, cols.to(emb.weight.device))
    new = nn.Embedding(1, 1, padding_idx=None, device=w.device, dtype=w.dtype)
    new.num_embeddings, new.embedding_dim = w.shape
    new.padding_idx = emb.padding_idx
    new.weight = nn.Parameter(w.clone(), requires_grad=emb.weight.requires_grad)
    return new


def _sliced_norm(norm: nn.Module, cols: torch.Tensor) -> nn.Module:
    """A norm over the ``cols`` entries of ``norm``: an ``nn.LayerNorm``, or a copy of a
    Llama-style RMS norm's own module (a kept norm's original) with those weights."""
    w = norm.weight.detach()
    if getattr(norm, "bias", None) is not None:  # a layer norm, or one over kept dimensions
        b = norm.bias.detach()
        new = nn.LayerNorm(cols.numel(), eps=norm.eps, device=w.device, dtype=w.dtype)
        new.weight = nn.Parameter(w[cols].clone(), requires_grad=norm.weight.requires_grad)
        new.bias = nn.Parameter(b[cols].clone(), requires_grad=norm.bias.requires_grad)
        return new
    base = getattr(norm, "original", norm)  # a Llama-style norm, or the one a kept norm replaced
    new = copy.deepcopy(base)  # the module's class and settings, with new weights
    new.weight = nn.Parameter(w[cols].clone(), requires_grad=norm.weight.requires_grad)
    return new


@torch.no_grad()
def shrink_hidden(model: nn.Module, keep: torch.Tensor) -> torch.Tensor:
    """Remove, in place, the hidden dimensions where ``keep`` is ``False`` from a BERT-family
    encoder or a Hugging Face GPT-2 or Llama-style decoder
    (:mod:`~kernelapprox.compression.pruning.hidden`); returns the kept indices. The last
    hidden state then has ``keep.sum()`` dimensions, those indices of the original ones."""
    if not _is_bert(model):
        return _shrink_decoder_hidden(model, keep)
    emb = bert_embeddings(model)
    width = emb.word_embeddings.embedding_dim
    cols = torch.nonzero(check_hidden_mask(keep, width)).reshape(-1)
    for name in ("word_embeddings", "position_embeddings", "token_type_embeddings"):
        table = getattr(emb, name, None)
        if isinstance(table, nn.Embedding):
            setattr(emb, name, _sliced_embedding(table, cols))
    for parent, attr in _layer_norms(model):
        setattr(parent, attr, _sliced_norm(getattr(parent, attr), cols))
    for layer in bert_layers(model):
        s = layer.attention.self
        if hasattr(s, "query"):  # not an attention whose heads were all removed
            s.query, s.key, s.value = (
                _sliced_linear(m, None, cols) for m in (s.query, s.key, s.value)
            )
        out = layer.attention.output
        out.dense = _sliced_linear(out.dense, cols, None)
        layer.intermediate.dense = _sliced_linear(layer.intermediate.dense, None, cols)
        layer.output.dense = _sliced_linear(layer.output.dense, cols, None)
    for candidate in _bert_candidates(model):
        pooler = getattr(candidate, "pooler", None)
        if pooler is not None and hasattr(pooler, "dense"):
            pooler.dense = _sliced_linear(pooler.dense, cols, cols)
            break
    return cols


def _sliced_output(proj: nn.Module, cols: torch.Tensor) -> nn.Module:
    """An output projection (``Linear``, GPT-2 ``Conv1D`` or a bias-only stand-in) writing only
    the hidden dimensions ``cols``."""
    if isinstance(proj, _BiasOnly):
        return _BiasOnly(proj.bias[cols.to(proj.bias.device)], proj.bias.requires_grad)
    if isinstance(proj, nn.Linear):
        return _sliced_linear(proj, cols, None)
    return _sliced_conv1d(proj, None, cols)


def _shrink_decoder_hidden(model: nn.Module, keep: torch.Tensor) -> torch.Tensor:
    """:func:`shrink_hidden` of a GPT-2 or Llama-style decoder: the embeddings' columns, the
    norms' entries, the columns every block reads (query, key, value and up projections) and
    the rows it writes (attention and MLP output projections), and the LM head's columns (a
    head tied to the token embedding stays tied)."""
    family, base, blocks = _hf_decoder_blocks(model)
    cols = torch.nonzero(check_hidden_mask(keep, _decoder_width(model))).reshape(-1)
    tables = ("wte", "wpe") if family == "gpt2" else ("embed_tokens",)
    old_tok = getattr(base, tables[0]).weight
    for name in tables:
        setattr(base, name, _sliced_embedding(getattr(base, name), cols))
    for parent, attr in _layer_norms(model):
        setattr(parent, attr, _sliced_norm(getattr(parent, attr), cols))
    for block in blocks:
        if family == "gpt2":
            attn, mlp = block.attn, block.mlp
            if isinstance(attn, _EmptyAttention):
                attn.out_proj = _sliced_output(attn.out_proj, cols)
            else:
                attn.c_attn = _sliced_conv1d(attn.c_attn, cols, None)
                attn.c_proj = _sliced_output(attn.c_proj, cols)
            mlp.c_fc = _sliced_conv1d(mlp.c_fc, cols, None)
            mlp.c_proj = _sliced_output(mlp.c_proj, cols)
        else:
            attn, mlp = block.self_attn, block.mlp
            if isinstance(attn, _EmptyAttention):
                attn.out_proj = _sliced_output(attn.out_proj, cols)
            else:
                attn.q_proj, attn.k_proj, attn.v_proj = (
                    _sliced_linear(m, None, cols) for m in (attn.q_proj, attn.k_proj, attn.v_proj)
                )
                attn.o_proj = _sliced_output(attn.o_proj, cols)
            mlp.gate_proj = _sliced_linear(mlp.gate_proj, None, cols)
            mlp.up_proj = _sliced_linear(mlp.up_proj, None, cols)
            mlp.down_proj = _sliced_output(mlp.down_proj, cols)
    head = getattr(model, "lm_head", None)
    if isinstance(head, nn.Linear):
        if head.weight is old_tok:
            head.weight = getattr(base, tables[0]).weight
            head.in_features = cols.numel()
        else:
            model.lm_head = _sliced_linear(head, None, cols)
    return cols
