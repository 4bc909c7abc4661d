r"""EST subnetworks on Hugging Face decoders (GPT-2, Llama-style, GPT-NeoX), their code unedited.

:class:`HFSubnetworks` runs a ``transformers`` decoder on a
:class:`~kernelapprox.lm.model.Subnetwork` drawn by
:class:`~kernelapprox.dynamics.est.SubnetworkSampler` (evolving subnetwork training, Li, Chen,
Ma, Wu, Zhu & Yu, ICML 2024, arXiv 2406.06962, Sec. 3): the same computation as the package's
own :class:`~kernelapprox.lm.model.Decoder`,

.. math::

    \mathrm{MHA}_{I_H}(x) = s_\ell\Big(c_H \sum_{i \in I_H} \mathrm{head}_i(x)\,W_O^i + b_O\Big),
    \qquad
    \mathrm{MLP}_{I_M}(x) = s_\ell\Big(c_M \sum_{j \in I_M} a_j(x)\,W_2[j, :] + b_2\Big),

with :math:`a_j` the :math:`j`-th activation (``act(x W_1 + b_1)`` for GPT-2 and GPT-NeoX,
``act(x W_g) * (x W_u)`` for Llama), :math:`c_H, c_M` the head and neuron scales and
:math:`s_\ell` the layer scale of the :class:`~kernelapprox.lm.model.LayerSlice`; a layer whose
entry is ``None`` is not run and its input passes through.

How, without editing the model's code:

* **Heads and neurons** -- the model runs through :func:`torch.func.functional_call` with, for
  every kept layer, its projection weights replaced by their kept slices (``index_select`` of
  the rows of :math:`W_Q, W_K, W_V` and :math:`W_1` (and :math:`W_g, W_u`), of the columns of
  :math:`W_O` and :math:`W_2`), so the matrix products are those of the smaller layer and the
  gradient reaches only the kept slices of the parameters (exactly zero elsewhere). The scales
  are folded into the output projections: :math:`W_O \to s_\ell c_H W_O[I_H]`,
  :math:`b_O \to s_\ell b_O`, likewise for :math:`W_2, b_2`. The models' attention code infers
  the number of heads from the width (``view(..., -1, head_dim)``) except GPT-2's fused
  ``c_attn``, whose split width (``split_size``) and ``Conv1D`` output widths (``nf``) are set
  for the call and restored after it.
* **Layers** -- the model's layer list (``transformer.h``, ``model.layers``,
  ``gpt_neox.layers``) is replaced for the call by the list of kept layers (each layer keeps its
  own ``layer_idx``), then restored; parameters of skipped layers get no gradient (``None``).
* **Grouped-query attention** (Llama-style with ``num_key_value_heads < num_attention_heads``):
  the sampled unit is a key-value group (its key and value heads and the
  ``num_key_value_groups`` query heads that read them), so ``n_heads`` counts key-value heads.
  The attention output is a sum over groups, so the :math:`N/k` scaling stays unbiased; with
  one query head per key-value head this is plain head sampling.

With every entry a full unscaled :class:`~kernelapprox.lm.model.LayerSlice` (rates
``(1, 1, 1)``) nothing is replaced and the call is the model's own forward, bit for bit.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import nn

from kernelapprox.dynamics.est import SubnetworkSampler
from kernelapprox.lm.model import LayerSlice, Subnetwork, _check_index, _rows_of_heads

#: Supported families and the attribute paths of their layer lists (causal-LM or base model).
FAMILIES = ("gpt2", "llama", "gpt_neox")
_LAYER_LISTS = ("transformer.h", "h", "model.layers", "gpt_neox.layers", "layers")


def _get(module: nn.Module, path: str) -> Any:
    for part in path.split("."):
        module = getattr(module, part, None)
        if module is None:
            return None
    return module


def _family_of_layer(layer: nn.Module) -> str | None:
    if hasattr(_get(layer, "attn"), "c_attn") and hasattr(_get(layer, "mlp"), "c_fc"):
        return "gpt2"
    attn, mlp = _get(layer, "self_attn"), _get(layer, "mlp")
    if all(hasattr(attn, n) for n in ("q_proj", "k_proj", "v_proj", "o_proj")) and all(
        hasattr(mlp, n) for n in ("gate_proj", "up_proj", "down_proj")
    ):
        return "llama"
    if hasattr(_get(layer, "attention"), "query_key_value") and hasattr(
        _get(layer, "mlp"), "dense_h_to_4h"
    ):
        return "gpt_neox"
    return None


class HFSubnetworks:
    """Runs a Hugging Face decoder on EST subnetworks (see the module docstring).

    Parameters
    ----------
    model : torch.nn.Module
        A ``transformers`` GPT-2, Llama-style (Llama, Mistral, Qwen2: ``q/k/v/o_proj`` and
        ``gate/up/down_proj``) or GPT-NeoX model, causal-LM or base. It is used as it is (no
        copy) and left unchanged between calls.

    Attributes
    ----------
    family : str
        One of :data:`FAMILIES`.
    n_layers, n_heads, n_neurons : int
        :math:`N_L`, the sampled attention units per layer (heads, key-value groups under
        grouped-query attention) and the MLP width: the sizes of :meth:`sampler`.

    Examples
    --------
    >>> import transformers
    >>> config = transformers.GPT2Config(n_embd=16, n_layer=2, n_head=4, n_positions=8,
    ...                                  vocab_size=32)
    >>> model = transformers.GPT2LMHeadModel(config)
    >>> est = HFSubnetworks(model)
    >>> (est.family, est.n_layers, est.n_heads, est.n_neurons)
    ('gpt2', 2, 4, 64)
    >>> sub = est.sampler(seed=0).sample(0, (0.5, 0.5, 0.5))
    >>> est(sub, torch.zeros(1, 8, dtype=torch.long)).logits.shape
    torch.Size([1, 8, 32])
    """

    def __init__(self, model: nn.Module) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        for path in _LAYER_LISTS:
            layers = _get(model, path)
            if isinstance(layers, nn.ModuleList) and len(layers):
                family = _family_of_layer(layers[0])
                if family is not None:
                    break
        else:
            raise TypeError(
                "model must be a Hugging Face GPT-2, Llama-style or GPT-NeoX decoder, got "
                f"{type(model).__name__}"
            )
        self.model = model
        self.family = family
        self._path = path
        parent, _, attr = path.rpartition(".")
        self._parent = _get(model, parent) if parent else model
        self._attr = attr
        self._layers: tuple[nn.Module, ...] = tuple(layers)
        self.n_layers = len(layers)
        self.n_heads, self.n_neurons = self._unit_counts(layers[0])

    def _unit_counts(self, layer: nn.Module) -> tuple[int, int]:
        if self.family == "gpt2":
            return layer.attn.num_heads, layer.mlp.c_fc.nf
        if self.family == "llama":
            attn = layer.self_attn
            return attn.k_proj.out_features // attn.head_dim, layer.mlp.down_proj.in_features
        attn = layer.attention
        return (
            attn.query_key_value.out_features // (3 * attn.head_size),
            layer.mlp.dense_4h_to_h.in_features,
        )

    def sampler(self, *, seed: Any = None, layer_scale: str = "inverse") -> SubnetworkSampler:
        """A :class:`~kernelapprox.dynamics.est.SubnetworkSampler` of this model's sizes
        (``seed=None``: fresh entropy, shared by the ranks of a process group)."""
        return SubnetworkSampler(
            self.n_layers, self.n_heads, self.n_neurons, seed=seed, layer_scale=layer_scale
        )

    def _check(self, subnetwork: Any) -> tuple[LayerSlice | None, ...]:
        if not isinstance(subnetwork, Subnetwork):
            if isinstance(subnetwork, (str, bytes)) or not isinstance(subnetwork, Sequence):
                raise TypeError(
                    "subnetwork must be a Subnetwork or a sequence of LayerSlice/None, got "
                    f"{type(subnetwork).__name__}"
                )
            subnetwork = Subnetwork(tuple(subnetwork))
        layers = subnetwork.layers
        if len(layers) != self.n_layers:
            raise ValueError(
                f"subnetwork must have {self.n_layers} layer entries, got {len(layers)}"
            )
        for i, part in enumerate(layers):
            if part is not None:
                _check_index(part.heads, self.n_heads, f"subnetwork.layers[{i}].heads")
                _check_index(part.neurons, self.n_neurons, f"subnetwork.layers[{i}].neurons")
        return layers

    def __call__(
        self, subnetwork: Subnetwork | Sequence[LayerSlice | None] | None, *args: Any, **kwargs: Any
    ) -> Any:
        """``model(*args, **kwargs)`` computed on ``subnetwork`` (``None``: the full model)."""
        if subnetwork is None:
            return self.model(*args, **kwargs)
        layers = self._check(subnetwork)
        kept = [(i, part) for i, part in enumerate(layers) if part is not None]
        params: dict[str, torch.Tensor] = {}
        overrides: list[tuple[Any, str, Any]] = []
        for j, (i, part) in enumerate(kept):
            slices, attrs = self._slice_layer(self._layers[i], part)
            params.update({f"{self._path}.{j}.{name}": t for name, t in slices.items()})
            overrides.extend(attrs)
        with self._kept_layers([self._layers[i] for i, _ in kept]), _set_attrs(overrides):
            if not params:
                return self.model(*args, **kwargs)
            return torch.func.functional_call(self.model, params, args, kwargs, strict=False)

    @contextlib.contextmanager
    def _kept_layers(self, kept: list[nn.Module]) -> Iterator[None]:
        if len(kept) == self.n_layers:
            yield
            return
        full = getattr(self._parent, self._attr)
        setattr(self._parent, self._attr, nn.ModuleList(kept))
        try:
            yield
        finally:
            setattr(self._parent, self._attr, full)

    def _slice_layer(self, layer: nn.Module, part: LayerSlice) -> tuple[dict, list]:
        """The replaced tensors of one kept layer (names relative to the layer) and the
        attributes to set for the call."""
        slices: dict[str, torch.Tensor] = {}
        attrs: list[tuple[Any, str, Any]] = []
        _SLICERS[self.family](layer, part, slices, attrs)
        return slices, attrs


# --- per family: the kept slices of one layer's weights ------------------------------------------


def _slice_gpt2(layer: nn.Module, part: LayerSlice, slices: dict, attrs: list) -> None:
    """GPT-2: fused ``c_attn`` (``Conv1D``, weight ``(d, 3d)``: query, key, value columns)."""
    attn, mlp = layer.attn, layer.mlp
    w_o = attn.c_proj.weight
    if part.heads is not None:
        d = attn.embed_dim
        rows = _rows_of_heads(part.heads, attn.head_dim, w_o.device)
        cols = torch.cat((rows, rows + d, rows + 2 * d))
        slices["attn.c_attn.weight"] = attn.c_attn.weight.index_select(1, cols)
        slices["attn.c_attn.bias"] = attn.c_attn.bias.index_select(0, cols)
        attrs += [(attn, "split_size", rows.numel()), (attn.c_attn, "nf", cols.numel())]
        w_o = w_o.index_select(0, rows)
    _output(slices, "attn.c_proj", w_o, attn.c_proj.bias, part, part.heads, part.head_scale)
    w_2 = mlp.c_proj.weight
    if part.neurons is not None:
        idx = part.neurons.to(w_2.device)
        slices["mlp.c_fc.weight"] = mlp.c_fc.weight.index_select(1, idx)
        slices["mlp.c_fc.bias"] = mlp.c_fc.bias.index_select(0, idx)
        attrs.append((mlp.c_fc, "nf", idx.numel()))
        w_2 = w_2.index_select(0, idx)
    _output(slices, "mlp.c_proj", w_2, mlp.c_proj.bias, part, part.neurons, part.neuron_scale)


def _slice_llama(layer: nn.Module, part: LayerSlice, slices: dict, attrs: list) -> None:
    """Llama-style: ``q/k/v/o_proj`` (a unit is a key-value group), ``gate/up/down_proj``."""
    attn, mlp = layer.self_attn, layer.mlp
    w_o = attn.o_proj.weight
    if part.heads is not None:
        dh = attn.head_dim
        q_rows = _rows_of_heads(part.heads, attn.num_key_value_groups * dh, w_o.device)
        kv_rows = _rows_of_heads(part.heads, dh, w_o.device)
        for name, rows in (("q_proj", q_rows), ("k_proj", kv_rows), ("v_proj", kv_rows)):
            _rows_of(slices, f"self_attn.{name}", getattr(attn, name), rows)
        w_o = w_o.index_select(1, q_rows)
    _output(slices, "self_attn.o_proj", w_o, attn.o_proj.bias, part, part.heads, part.head_scale)
    w_2 = mlp.down_proj.weight
    if part.neurons is not None:
        idx = part.neurons.to(w_2.device)
        for name in ("gate_proj", "up_proj"):
            _rows_of(slices, f"mlp.{name}", getattr(mlp, name), idx)
        w_2 = w_2.index_select(1, idx)
    _output(slices, "mlp.down_proj", w_2, mlp.down_proj.bias, part, part.neurons, part.neuron_scale)


def _slice_gpt_neox(layer: nn.Module, part: LayerSlice, slices: dict, attrs: list) -> None:
    """GPT-NeoX: fused ``query_key_value`` with rows ``[q_h, k_h, v_h]`` per head."""
    attn, mlp = layer.attention, layer.mlp
    w_o = attn.dense.weight
    if part.heads is not None:
        dh = attn.head_size
        rows = _rows_of_heads(part.heads, 3 * dh, w_o.device)
        _rows_of(slices, "attention.query_key_value", attn.query_key_value, rows)
        w_o = w_o.index_select(1, _rows_of_heads(part.heads, dh, w_o.device))
    _output(slices, "attention.dense", w_o, attn.dense.bias, part, part.heads, part.head_scale)
    w_2 = mlp.dense_4h_to_h.weight
    if part.neurons is not None:
        idx = part.neurons.to(w_2.device)
        _rows_of(slices, "mlp.dense_h_to_4h", mlp.dense_h_to_4h, idx)
        w_2 = w_2.index_select(1, idx)
    _output(
        slices,
        "mlp.dense_4h_to_h",
        w_2,
        mlp.dense_4h_to_h.bias,
        part,
        part.neurons,
        part.neuron_scale,
    )


_SLICERS = {"gpt2": _slice_gpt2, "llama": _slice_llama, "gpt_neox": _slice_gpt_neox}


def _rows_of(
    slices: dict[str, torch.Tensor], name: str, linear: nn.Linear, rows: torch.Tensor
) -> None:
    """The kept output rows of an ``nn.Linear`` (weight and bias, if any)."""
    slices[f"{name}.weight"] = linear.weight.index_select(0, rows)
    if linear.bias is not None:
        slices[f"{name}.bias"] = linear.bias.index_select(0, rows)


def _output(
    slices: dict[str, torch.Tensor],
    name: str,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    part: LayerSlice,
    kept: torch.Tensor | None,
    unit_scale: float,
) -> None:
    """The output projection of a sublayer: its kept inputs times :math:`s_\\ell c`, its bias
    times :math:`s_\\ell`; nothing replaced when it is neither sliced nor scaled."""
    scale = unit_scale * part.layer_scale
    if kept is not None or scale != 1.0:
        slices[f"{name}.weight"] = weight if scale == 1.0 else weight * scale
    if bias is not None and part.layer_scale != 1.0:
        slices[f"{name}.bias"] = bias * part.layer_scale


@contextlib.contextmanager
def _set_attrs(overrides: list[tuple[Any, str, Any]]) -> Iterator[None]:
    saved = [(obj, name, getattr(obj, name)) for obj, name, _ in overrides]
    try:
        for obj, name, value in overrides:
            setattr(obj, name, value)
        yield
    finally:
        for obj, name, value in reversed(saved):
            setattr(obj, name, value)
