"""Convert a pretrained Hugging Face ``transformers`` model to feature-map attention, and
distill it back towards the original (DiJiang, Chen et al., ICML 2024, Algorithm 1).

:func:`convert` replaces ``softmax(s Q K^T) V`` in every self-attention module by
:class:`~kernelapprox.attention.FeatureAttention` (``phi(Q) phi(K)^T V`` with the row
normalizer), keeping every pretrained weight: the query/key/value/output projections, rotary
embeddings, layer norms and MLPs are the model's own and run unchanged. Only the attention
*function* changes. The conversion goes through ``transformers``' ``AttentionInterface``
(transformers >= 4.53): the copy's config names a registered attention implementation
(:data:`ATTN_IMPLEMENTATION`) that finds a ``FeatureAttention`` child on each converted
module (attribute :data:`ATTENTION_ATTR`). Since the pretrained modules stay where they are,
the state-dict keys of the pretrained weights are unchanged; the map's tensors are added as
``<module>.kernelapprox_attention.map_*``. Supported: every architecture whose self-attention
calls ``ALL_ATTENTION_FUNCTIONS`` (BERT-family encoders, GPT-2, GPT-NeoX, Llama-style
decoders with grouped-query attention). Cross-attention modules are left on exact SDPA.

Masks: the model's 4-d attention mask (``sdpa`` format) is reduced to a key-padding mask; a
mask that is not "causal and/or key padding" (packed sequences, sliding windows) raises a
``ValueError`` instead of being approximated silently. Attention dropout is not applied
(feature attention never forms the attention probabilities).

:func:`distill` is Algorithm 1 as a training loop: the student (converted model) is fitted
to the teacher (original) by layer-wise attention-output matching plus final-output
matching, training the map's parameters (frequencies ``W``, weights ``sqrt_xi``, DCT radii:
DiJiang's learnable ``D``) and optionally every weight.
"""

from __future__ import annotations

import copy
import inspect
import json
import os
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from kernelapprox._io import atomic_write
from kernelapprox._validation import (
    SeedLike,
    as_seed_sequence,
    check_choice,
    check_positive_float,
    check_positive_int,
    spawn,
)
from kernelapprox.attention.functional import DEFAULT_CHUNK
from kernelapprox.attention.modules import FeatureAttention
from kernelapprox.integrations._transformers import require_transformers
from kernelapprox.lm.pretrained import mean_pool

#: Name of the attention implementation registered with ``transformers``.
ATTN_IMPLEMENTATION = "kernelapprox_feature"
#: Attribute under which each converted module holds its :class:`FeatureAttention`.
ATTENTION_ATTR = "kernelapprox_attention"
_STATE_CACHE_ATTR = "_kernelapprox_state_cache"


# --------------------------------------------------------------------------- masks
def _keep_mask(mask: torch.Tensor) -> torch.Tensor:
    """``True`` where attention is allowed, from a bool (keep) or additive float mask."""
    if mask.dtype == torch.bool:
        return mask
    return mask > torch.finfo(mask.dtype).min / 2


def key_padding_from_mask(
    mask: torch.Tensor | None, *, causal: bool, q_len: int, k_len: int
) -> torch.Tensor | None:
    """The key-padding mask (``True`` = padding, ``(B, T_k)``) that ``mask`` encodes.

    ``mask`` is a ``transformers`` 4-d attention mask ``(B, 1 or H, T_q, T_k)`` (bool keep or
    additive float) or ``None``. The last query row sees every non-padding key (it is the
    last position, so causality hides no key from it). The whole mask is then checked to be
    exactly ``keep[i, j] = not pad[j] and (j <= i + T_k - T_q if causal)`` on every query row
    that is not itself padding; anything else raises ``ValueError``.
    """
    if mask is None:
        return None
    if mask.ndim != 4 or mask.shape[-2:] != (q_len, k_len):
        raise ValueError(
            f"attention mask must have shape (B, heads, {q_len}, {k_len}), got {tuple(mask.shape)}"
        )
    keep = _keep_mask(mask)
    pad = ~keep[:, 0, -1, :]
    expected = (~pad)[:, None, None, :].expand(-1, keep.shape[1], q_len, -1)
    if causal:
        offset = k_len - q_len
        rows = torch.arange(q_len, device=mask.device)[:, None] + offset
        cols = torch.arange(k_len, device=mask.device)[None, :]
        expected = expected & (cols <= rows)
        query_rows = ~pad[:, offset:]
    else:
        query_rows = torch.ones(pad.shape[0], q_len, dtype=torch.bool, device=mask.device)
        if q_len == k_len:
            query_rows = ~pad
    mismatch = (keep != expected) & query_rows[:, None, :, None]
    if bool(mismatch.any()):
        raise ValueError(
            "the attention mask is not a (causal) key-padding mask (packed sequences or "
            "sliding windows are not supported by converted attention)"
        )
    return pad if bool(pad.any()) else None


# --------------------------------------------------------------------------- interface
def _feature_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """``transformers`` attention function: ``(B, H, T, D)`` inputs, ``(B, T, H, D)`` output.

    Causal modules with fewer queries than keys (decoding with a key/value cache) run the
    causal algorithm over all keys with zero queries in front; row ``i`` of causal attention
    depends only on ``q_i`` and keys ``<= i``, so the last rows are exact (memory and time
    per step grow with the prefix). With a
    :class:`~kernelapprox.integrations.cache.FeatureStateCache` the new tokens attend from the
    layer's recurrent state instead (constant memory).
    """
    attention = getattr(module, ATTENTION_ATTR, None)
    if attention is None:  # e.g. cross-attention: keep exact attention
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        return sdpa_attention_forward(
            module, query, key, value, attention_mask, scaling=scaling, dropout=dropout, **kwargs
        )
    B, H, Tq, D = query.shape
    Tk = key.shape[2]
    causal = bool(getattr(module, "is_causal", False))
    state_cache = module.__dict__.get(_STATE_CACHE_ATTR)
    if state_cache is not None:
        return _attend_from_state(
            module, attention, state_cache, query, key, value, attention_mask, scaling, causal
        )
    pad = key_padding_from_mask(attention_mask, causal=causal, q_len=Tq, k_len=Tk)
    if causal and Tq < Tk:
        query = torch.cat((query.new_zeros(B, H, Tk - Tq, D), query), dim=2)
    out = attention(query, key, value, is_causal=causal, scale=scaling, key_padding_mask=pad)
    out = out[:, :, -Tq:] if causal else out
    return out.transpose(1, 2).contiguous(), None


def _attend_from_state(
    module: nn.Module,
    attention: FeatureAttention,
    cache: Any,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None,
    causal: bool,
) -> tuple[torch.Tensor, None]:
    """Causal feature attention of the new tokens from the layer's state in a
    :class:`~kernelapprox.integrations.cache.FeatureStateCache`; stores the new state."""
    if not causal:
        raise ValueError(
            "FeatureStateCache decodes causal self-attention; this module is not causal"
        )
    layer_idx = getattr(module, "layer_idx", None)
    if not isinstance(layer_idx, int) or layer_idx >= len(cache.layers):
        raise ValueError(f"{type(module).__name__} has no layer_idx matching the cache's layers")
    layer = cache.layers[layer_idx]
    Tk = key.shape[2]
    if attention_mask is not None and attention_mask.shape[-1] > Tk:
        # a mask built over past + new keys: entry (i, past + j) is "j <= i" plus padding
        attention_mask = attention_mask[..., -Tk:]
    pad = key_padding_from_mask(attention_mask, causal=True, q_len=query.shape[2], k_len=Tk)
    out, state = attention(
        query,
        key,
        value,
        is_causal=True,
        scale=scaling,
        key_padding_mask=pad,
        initial_state=layer.state,
        output_final_state=True,
    )
    layer.consume(state)
    return out.transpose(1, 2).contiguous(), None


def _record_state_cache(module: nn.Module, args: tuple, kwargs: dict) -> None:
    """Forward pre-hook: remember the call's ``FeatureStateCache`` (or ``None``) on the module."""
    from kernelapprox.integrations.cache import find_state_cache

    module.__dict__[_STATE_CACHE_ATTR] = find_state_cache(args, kwargs)


def _register() -> None:
    transformers = require_transformers()
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    transformers.AttentionInterface.register(ATTN_IMPLEMENTATION, _feature_attention_forward)
    AttentionMaskInterface.register(ATTN_IMPLEMENTATION, sdpa_mask)


def _routes_through_interface(module: nn.Module) -> bool:
    try:
        source = inspect.getsource(type(module).forward)
    except (OSError, TypeError):
        return False
    return "ALL_ATTENTION_FUNCTIONS" in source


def self_attention_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The self-attention modules of ``model`` that call ``transformers``' attention interface.

    A module qualifies when its class's ``forward`` dispatches through
    ``ALL_ATTENTION_FUNCTIONS`` and it is not cross-attention (``is_cross_attention`` or a
    class name containing ``"Cross"``).
    """
    found = []
    for name, module in model.named_modules():
        if not hasattr(module, "config") or not _routes_through_interface(module):
            continue
        if getattr(module, "is_cross_attention", False) or "Cross" in type(module).__name__:
            continue
        found.append((name, module))
    return found


def _head_dim(module: nn.Module) -> int:
    for attr in ("head_dim", "attention_head_size", "head_size"):
        value = getattr(module, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    config = module.config
    value = getattr(config, "head_dim", None)
    if isinstance(value, int) and value > 0:
        return value
    return int(config.hidden_size // config.num_attention_heads)


def convert(
    model: nn.Module,
    *,
    feature_map: str = "positive",
    n_features: int | None = None,
    sampler: Any = None,
    weights: Any = "uniform",
    seed: SeedLike = None,
    learnable: bool = True,
    chunk_size: int = DEFAULT_CHUNK,
    **map_options: Any,
) -> nn.Module:
    """A copy of ``model`` whose self-attention is feature-map attention.

    Step 1-3 of DiJiang's Algorithm 1 (Chen et al., ICML 2024): every
    ``softmax(s q.k) v`` becomes ``phi(q)^T sum_j phi(k_j) v_j / phi(q)^T sum_j phi(k_j)``
    with ``phi`` a :mod:`kernelapprox.features` map for the softmax kernel. ``model`` itself
    is not modified (the copy is a ``copy.deepcopy``).

    Parameters
    ----------
    model : transformers.PreTrainedModel
        A model whose self-attention calls ``transformers``' ``AttentionInterface``.
    feature_map : str
        ``"positive"`` (FAVOR+), ``"dct"`` (DiJiang paper), ``"dct_released"`` (DiJiang code),
        ``"hyperbolic"``, or a baseline ``"elu"``/``"identity"`` (see
        :func:`kernelapprox.attention.make_map`).
    n_features : int, optional
        Frequencies ``m`` per layer (default: the head dimension, as DiJiang).
    sampler : str, optional
        Frequency sampler (default ``"orthogonal"``; ``"mc"`` for the DCT maps).
    weights : "uniform", "box" or array
        Per-frequency weights ``xi`` (DiJiang's ``D``; see ``FeatureMap.set_weights``).
    seed : SeedLike, default None
        Layer ``l`` draws its map from the ``l``-th child of ``seed``; ``None`` draws fresh
        maps (the converted model is the random object the caller asked for: the rule of
        :data:`~kernelapprox._validation.SeedLike`). Pass a seed to reproduce a conversion.
    learnable : bool
        Make the map's frequencies, weights and radii trainable (for :func:`distill`).
    chunk_size : int
        Chunk length of the causal algorithm.
    **map_options
        Passed to the map (e.g. ``radial="normal"`` for ``"dct"``).

    Returns
    -------
    The converted copy, in the mode (train/eval) of ``model``.
    """
    _register()
    targets = self_attention_modules(model)
    if not targets:
        raise ValueError(
            f"{type(model).__name__} has no self-attention module that calls transformers' "
            "AttentionInterface (ALL_ATTENTION_FUNCTIONS); it cannot be converted"
        )
    check_positive_int(chunk_size, "chunk_size")
    if n_features is not None:
        check_positive_int(n_features, "n_features")
    options = dict(map_options)
    if feature_map not in ("elu", "identity"):
        options["weights"] = weights
    student = copy.deepcopy(model)
    names = {name for name, _ in targets}
    children = spawn(as_seed_sequence(seed), len(targets))
    device_of = {n: p.device for n, p in student.named_parameters()}
    for (name, module), child in zip(
        ((n, m) for n, m in student.named_modules() if n in names), children, strict=True
    ):
        attention = FeatureAttention(
            _head_dim(module),
            n_features,
            feature_map=feature_map,
            sampler=sampler,
            seed=child,
            layout="bhtd",
            learnable=learnable,
            chunk_size=chunk_size,
            **options,
        )
        device = next((d for n, d in device_of.items() if n.startswith(name + ".")), None)
        if device is not None:
            attention.to(device)
        attention.train(module.training)
        module.add_module(ATTENTION_ATTR, attention)
        module.register_forward_pre_hook(_record_state_cache, with_kwargs=True)
    student.config._attn_implementation = ATTN_IMPLEMENTATION
    return student


def feature_attentions(model: nn.Module) -> list[FeatureAttention]:
    """The :class:`FeatureAttention` modules that :func:`convert` added, in layer order."""
    return [m for n, m in model.named_modules() if n.endswith(ATTENTION_ATTR)]


# --------------------------------------------------------------------------- distillation
@dataclass
class DistillResult:
    """What :func:`distill` did: per-step losses (of the steps run now and before a resume)."""

    steps: int
    losses: list[float] = field(default_factory=list)
    attention_losses: list[float] = field(default_factory=list)
    output_losses: list[float] = field(default_factory=list)
    seconds: float = 0.0
    stopped_by_budget: bool = False


class _AttentionRecorder:
    """Forward hooks that keep the output of each self-attention module (before ``W_o``)."""

    def __init__(self, modules: Sequence[nn.Module]) -> None:
        self.outputs: list[torch.Tensor] = []
        self._handles = [m.register_forward_hook(self._hook) for m in modules]

    def _hook(self, module: nn.Module, args: Any, output: Any) -> None:
        self.outputs.append(output[0] if isinstance(output, tuple) else output)

    def pop(self) -> list[torch.Tensor]:
        out, self.outputs = self.outputs, []
        return out

    def remove(self) -> None:
        for h in self._handles:
            h.remove()


def _batch_indices(n: int, batch_size: int, seed: np.random.SeedSequence, step: int) -> np.ndarray:
    """Step ``step``'s batch: a function of ``(seed, step)`` only, so resuming is exact."""
    rng = np.random.default_rng([*seed.generate_state(2), step])
    return rng.choice(n, size=min(batch_size, n), replace=False)


def distillation_loss(
    teacher_attn: Sequence[torch.Tensor],
    student_attn: Sequence[torch.Tensor],
    teacher_hidden: torch.Tensor,
    student_hidden: torch.Tensor,
    attention_mask: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(attention loss, output loss)``.

    Attention loss: mean over layers of ``sum_tokens |o_s - o_t|^2 / sum_tokens |o_t|^2``
    over non-padding tokens (relative, so layers of different scale weigh alike). Output
    loss: ``1 - cos`` between the mean-pooled final hidden states, averaged over the batch.
    """
    w = attention_mask.to(teacher_hidden.dtype)[..., None]
    terms = []
    for t, s in zip(teacher_attn, student_attn, strict=True):
        num = (((s - t) ** 2) * w).sum()
        den = ((t**2) * w).sum().clamp_min(torch.finfo(t.dtype).tiny)
        terms.append(num / den)
    attn = torch.stack(terms).mean()
    pooled_t = mean_pool(teacher_hidden, attention_mask)
    pooled_s = mean_pool(student_hidden, attention_mask)
    out = 1.0 - torch.nn.functional.cosine_similarity(pooled_s, pooled_t, dim=-1).mean()
    return attn, out


def _distill_config(
    maps: Sequence[FeatureAttention], texts: Sequence[str], **options: Any
) -> dict[str, Any]:
    """What decides a distillation besides its length: stored in the checkpoint, and a resumed
    run must match it (the maps, the options, the training texts' count and CRC-32)."""
    crc = 0
    for text in texts:
        crc = zlib.crc32(text.encode() + b"\n", crc)
    seed = options["seed"]
    return {
        **{k: v for k, v in options.items() if k != "seed"},
        "seed": seed if isinstance(seed, int) else repr(seed),
        "maps": [repr(m.feature_map) for m in maps],
        "texts": f"{len(texts)} texts, crc32 {crc:08x}",
    }


def _save_checkpoint(
    folder: Path,
    student: nn.Module,
    optimizer: torch.optim.Optimizer,
    result: DistillResult,
    config: dict[str, Any],
) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    trainable = {n: p.detach().cpu() for n, p in student.named_parameters() if p.requires_grad}
    payload = {
        "config": config,
        "step": result.steps,
        "params": trainable,
        "optimizer": optimizer.state_dict(),
        "losses": result.losses,
        "attention_losses": result.attention_losses,
        "output_losses": result.output_losses,
    }
    tmp = folder / "checkpoint.pt.tmp"
    torch.save(payload, tmp)
    os.replace(tmp, folder / "checkpoint.pt")
    progress = {"step": result.steps, "last_loss": result.losses[-1:]}
    atomic_write(folder / "progress.json", json.dumps(progress))


def _load_checkpoint(
    folder: Path,
    student: nn.Module,
    optimizer: torch.optim.Optimizer,
    result: DistillResult,
    config: dict[str, Any],
) -> None:
    path = folder / "checkpoint.pt"
    if not path.exists():
        return
    payload = torch.load(path, map_location="cpu", weights_only=True)
    stored = payload.get("config")
    if stored is not None and stored != config:
        differing = ", ".join(
            f"{key} {stored.get(key)!r} (now {config.get(key)!r})"
            for key in sorted(set(stored) | set(config))
            if stored.get(key) != config.get(key)
        )
        raise ValueError(
            f"resume: the checkpoint in {str(folder)!r} was made with other options: {differing}; "
            "use the same options or another checkpoint_dir"
        )
    params = dict(student.named_parameters())
    missing = set(payload["params"]) ^ {n for n, p in params.items() if p.requires_grad}
    if missing:
        raise ValueError(
            f"checkpoint in {folder} does not match the student's trainable parameters "
            f"(differences: {sorted(missing)[:5]}...); was it made with another 'train' setting?"
        )
    with torch.no_grad():
        for name, value in payload["params"].items():
            params[name].copy_(value)
    optimizer.load_state_dict(payload["optimizer"])
    result.steps = int(payload["step"])
    result.losses = list(payload["losses"])
    result.attention_losses = list(payload["attention_losses"])
    result.output_losses = list(payload["output_losses"])


def distill(
    teacher: nn.Module,
    student: nn.Module,
    texts: Sequence[str],
    *,
    tokenizer: Callable[..., Any],
    steps: int = 200,
    batch_size: int = 16,
    lr: float = 1e-3,
    map_lr: float | None = None,
    train: str = "map",
    attention_weight: float = 1.0,
    output_weight: float = 1.0,
    max_length: int = 128,
    seed: Any = 0,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    checkpoint_every: int = 50,
    resume: bool = False,
    time_budget: float | None = None,
    progress: bool = True,
) -> DistillResult:
    """Fit ``student`` (from :func:`convert`) to ``teacher``: DiJiang's Algorithm 1, step 4.

    Each step samples a minibatch of ``texts``, runs both models and takes an Adam step on
    ``attention_weight * L_attn + output_weight * L_out`` (:func:`distillation_loss`):
    layer-wise matching of the self-attention outputs (the only part that changed) and
    matching of the final mean-pooled output. Both models run in evaluation mode (no
    dropout), and batch ``s`` depends only on ``(seed, s)``, so a resumed run reproduces an
    uninterrupted one.

    Parameters
    ----------
    teacher, student : nn.Module
        The original and the converted model (``student`` is trained in place).
    texts : sequence of str
        Training corpus.
    tokenizer : callable
        A ``transformers`` tokenizer (called with ``padding``, ``truncation``,
        ``max_length``, ``return_tensors="pt"``).
    steps : int
        Total optimizer steps (including those of a resumed checkpoint).
    lr, map_lr : float
        Adam learning rates of the pretrained weights and of the maps' parameters
        (``map_lr`` defaults to ``lr``).
    train : {"map", "all"}
        ``"map"``: only the feature maps' parameters (DiJiang's ``D``, frequencies, radii;
        convert with ``learnable=True``); ``"all"``: every weight of the student (the
        released recipe's full fine-tuning).
    checkpoint_dir : path, optional
        Folder for ``checkpoint.pt`` (trainable parameters, optimizer state, step, losses),
        written every ``checkpoint_every`` steps and at the end.
    resume : bool
        Continue from ``checkpoint_dir/checkpoint.pt`` if it exists.
    time_budget : float, optional
        Stop (and checkpoint) after this many seconds of training.
    progress : bool
        Show a ``tqdm`` progress bar.
    """
    from tqdm.auto import tqdm

    check_choice(train, "train", ("map", "all"))
    steps = check_positive_int(steps, "steps")
    batch_size = check_positive_int(batch_size, "batch_size")
    lr = check_positive_float(lr, "lr")
    map_lr = lr if map_lr is None else check_positive_float(map_lr, "map_lr")
    max_length = check_positive_int(max_length, "max_length")
    checkpoint_every = check_positive_int(checkpoint_every, "checkpoint_every")
    if time_budget is not None:
        time_budget = check_positive_float(time_budget, "time_budget")
    if len(texts) == 0:
        raise ValueError("texts must contain at least one text")
    if resume and checkpoint_dir is None:
        raise ValueError("resume=True needs a checkpoint_dir")
    maps = feature_attentions(student)
    if not maps:
        raise ValueError("student has no feature attention: convert it with convert() first")
    student_modules = [m for _, m in self_attention_modules(student)]
    teacher_modules = [m for _, m in self_attention_modules(teacher)]
    if len(student_modules) != len(teacher_modules):
        raise ValueError(
            f"teacher has {len(teacher_modules)} self-attention modules, student "
            f"{len(student_modules)}: the student must be convert(teacher)"
        )
    teacher_grad = [p.requires_grad for p in teacher.parameters()]
    for p in teacher.parameters():
        p.requires_grad_(False)
    for name, p in student.named_parameters():
        p.requires_grad_(train == "all" or ATTENTION_ATTR in name)
    groups = [
        {
            "params": [
                p for n, p in student.named_parameters() if p.requires_grad and ATTENTION_ATTR in n
            ],
            "lr": map_lr,
        },
        {
            "params": [
                p
                for n, p in student.named_parameters()
                if p.requires_grad and ATTENTION_ATTR not in n
            ],
            "lr": lr,
        },
    ]
    groups = [g for g in groups if g["params"]]
    if not groups:
        raise ValueError(
            "nothing to train: convert with learnable=True (map parameters) or use train='all'"
        )
    teacher_mode, student_mode = teacher.training, student.training
    teacher.eval()
    student.eval()
    optimizer = torch.optim.Adam(groups)
    result = DistillResult(steps=0)
    config = _distill_config(
        maps,
        texts,
        train=train,
        lr=lr,
        map_lr=map_lr,
        attention_weight=attention_weight,
        output_weight=output_weight,
        batch_size=batch_size,
        max_length=max_length,
        seed=seed,
    )
    folder = Path(checkpoint_dir) if checkpoint_dir is not None else None
    if resume and folder is not None:
        _load_checkpoint(folder, student, optimizer, result, config)
    batch_seed = spawn(as_seed_sequence(seed), 1)[0]
    device = next(student.parameters()).device
    t_rec, s_rec = _AttentionRecorder(teacher_modules), _AttentionRecorder(student_modules)
    start = time.perf_counter()
    bar = tqdm(
        range(result.steps, steps),
        initial=result.steps,
        total=steps,
        disable=not progress,
        desc="distill",
    )
    try:
        for step in bar:
            idx = _batch_indices(len(texts), batch_size, batch_seed, step)
            enc = tokenizer(
                [texts[i] for i in idx],
                padding=True,
                truncation=True,
                max_length=max_length,
                return_tensors="pt",
            ).to(device)
            with torch.no_grad():
                t_out = teacher(**enc, output_hidden_states=True)
            t_attn = t_rec.pop()
            s_out = student(**enc, output_hidden_states=True)
            s_attn = s_rec.pop()
            l_attn, l_out = distillation_loss(
                t_attn,
                s_attn,
                t_out.hidden_states[-1],
                s_out.hidden_states[-1],
                enc["attention_mask"],
            )
            loss = attention_weight * l_attn + output_weight * l_out
            if not torch.isfinite(loss):
                raise FloatingPointError(f"distillation loss is not finite at step {step}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            result.steps = step + 1
            result.losses.append(loss.item())
            result.attention_losses.append(l_attn.item())
            result.output_losses.append(l_out.item())
            bar.set_postfix(loss=f"{result.losses[-1]:.4f}")
            if folder is not None and result.steps % checkpoint_every == 0:
                _save_checkpoint(folder, student, optimizer, result, config)
            if time_budget is not None and time.perf_counter() - start > time_budget:
                result.stopped_by_budget = result.steps < steps
                break
    finally:
        bar.close()
        t_rec.remove()
        s_rec.remove()
        teacher.train(teacher_mode)
        for p, flag in zip(teacher.parameters(), teacher_grad, strict=True):
            p.requires_grad_(flag)
        student.train(student_mode)
    if folder is not None and result.steps > 0:
        _save_checkpoint(folder, student, optimizer, result, config)
    result.seconds = time.perf_counter() - start
    return result
