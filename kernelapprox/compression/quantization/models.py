r"""Quantize every linear layer of a model with Fisher sensitivities from calibration data.

Sensitivity (Park et al., ICML 2024, after SqueezeLLM): the diagonal empirical Fisher

.. math:: F_{rj} = \sum_{b} \Big(\frac{\partial L_b}{\partial W_{rj}}\Big)^2

over calibration batches :math:`b` of a loss :math:`L_b` (:func:`fisher_diagonal`). By a
second-order expansion the loss change of a perturbation :math:`\delta W` is about
:math:`\tfrac12 \sum_{rj} F_{rj}\,\delta W_{rj}^2` when the Fisher approximates the Hessian,
which is why the weighted error :math:`\sum F (W - \hat W)^2` is the quantity minimized and
reported. The loss is the caller's: next-token cross-entropy for a decoder; for a sentence
encoder :mod:`.experiment` uses a random projection of the embedding (see there).

Linear layers are :class:`torch.nn.Linear` and Hugging Face GPT-2's ``Conv1D``
(:func:`~.layer.is_linear`); weights and Fisher tensors are handled as ``(out, in)`` rows
(:func:`~.layer.output_rows`; a ``Conv1D``'s is its weight transposed). A weight tied to
another module (GPT-2's ``lm_head`` shares ``transformer.wte.weight``) has a gradient that
sums both uses, while quantizing the layer perturbs only its own; its Fisher is therefore
that of the layer's use alone, :math:`\partial L/\partial W = \sum_t g_t x_t^\top` over
the tokens :math:`t` of every call, with :math:`x_t` the layer's input and :math:`g_t` the
gradient of its output (by hooks).

:func:`quantize_linears` replaces every linear layer of a model in place by a
:class:`~.layer.QuantizedLinear` (layer :math:`i` seeded by child :math:`i` of ``seed``) and
:func:`set_bits` switches all of them at once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import nn

from kernelapprox._validation import SeedLike, spawn
from kernelapprox.compression.quantization.layer import QuantizedLinear, is_linear, output_rows
from kernelapprox.compression.quantization.nested import (
    NestedQuantization,
    check_widths,
    nested_quantize,
)

__all__ = ["fisher_diagonal", "linear_modules", "quantize_linears", "set_bits"]


def linear_modules(model: nn.Module, skip: Sequence[str] = ()) -> list[tuple[str, nn.Module]]:
    """The ``(name, module)`` of every linear layer in ``model`` (:class:`torch.nn.Linear`
    or GPT-2 ``Conv1D``, :func:`~.layer.is_linear`), in module order, except those whose name
    is in ``skip``."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    skip = set(skip)
    return [(name, m) for name, m in model.named_modules() if is_linear(m) and name not in skip]


def _tied(model: nn.Module, modules: Sequence[tuple[str, nn.Module]]) -> set[str]:
    """Names of the ``modules`` whose weight is also a direct parameter of another module."""
    owners = Counter(id(p) for m in model.modules() for p in m.parameters(recurse=False))
    return {name for name, m in modules if owners[id(m.weight)] > 1}


def _local_gradient_hooks(
    modules: Sequence[tuple[str, nn.Module]], local: dict[str, torch.Tensor]
) -> list[Any]:
    """Forward hooks adding ``g^T x`` (float64, ``(out, in)``) of every call of each module
    to ``local[name]`` once the gradient ``g`` of its output is known."""

    def hook_for(name: str) -> Callable[..., None]:
        def forward_hook(module: nn.Module, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
            x = inputs[0].detach().reshape(-1, inputs[0].shape[-1]).to(torch.float64)

            def gradient_hook(g: torch.Tensor) -> None:
                g = g.detach().reshape(-1, g.shape[-1]).to(torch.float64)
                local[name] += g.T @ x

            if output.requires_grad:
                output.register_hook(gradient_hook)

        return forward_hook

    return [m.register_forward_hook(hook_for(name)) for name, m in modules]


def fisher_diagonal(
    model: nn.Module,
    loss_fn: Callable[[nn.Module, Any], torch.Tensor],
    batches: Iterable[Any],
    *,
    modules: Sequence[tuple[str, nn.Module]] | None = None,
) -> dict[str, torch.Tensor]:
    r"""Sum over ``batches`` of the squared gradients of ``loss_fn(model, batch)``.

    Parameters
    ----------
    model : torch.nn.Module
    loss_fn : callable
        ``loss_fn(model, batch) -> scalar tensor``.
    batches : iterable
        The calibration batches (at least one).
    modules : list of (name, module), optional
        Whose weights to measure (default: :func:`linear_modules`).

    Returns
    -------
    dict
        ``{name: float64 tensor (out, in)}``, the layout of :func:`~.layer.output_rows` (an
        ``nn.Linear``'s weight; a ``Conv1D``'s transposed). A weight tied to another module
        gets the gradient of this layer's use alone (see the module docstring).
    """
    if not callable(loss_fn):
        raise TypeError("loss_fn must be callable as loss_fn(model, batch)")
    modules = linear_modules(model) if modules is None else list(modules)
    if not modules:
        raise ValueError("model has no linear layer (torch.nn.Linear or Conv1D) to measure")
    for name, m in modules:
        if not is_linear(m):
            raise TypeError(f"modules: {name!r} is not a torch.nn.Linear or a Conv1D")
    fisher = {name: torch.zeros(output_rows(m).shape, dtype=torch.float64) for name, m in modules}
    tied = _tied(model, modules)
    local = {name: torch.zeros_like(fisher[name]) for name in tied}
    hooks = _local_gradient_hooks([(n, m) for n, m in modules if n in tied], local)
    flags = {p: p.requires_grad for p in model.parameters()}
    for p in model.parameters():
        p.requires_grad_(False)
    for _, m in modules:
        m.weight.requires_grad_(True)
    count = 0
    try:
        for batch in batches:
            for _, m in modules:
                m.weight.grad = None
            for g in local.values():
                g.zero_()
            loss = loss_fn(model, batch)
            if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
                raise ValueError("loss_fn must return a scalar tensor")
            loss.backward()
            for name, m in modules:
                if name in tied:
                    fisher[name] += local[name] ** 2
                elif m.weight.grad is not None:
                    grad = m.weight.grad.detach()
                    grad = grad if isinstance(m, nn.Linear) else grad.T  # Conv1D: (in, out)
                    fisher[name] += grad.to(torch.float64) ** 2
            count += 1
    finally:
        for h in hooks:
            h.remove()
        for _, m in modules:
            m.weight.grad = None
        for p, flag in flags.items():
            p.requires_grad_(flag)
    if count == 0:
        raise ValueError("batches must hold at least one calibration batch")
    return fisher


def _parent(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    path = name.split(".")
    parent = model
    for part in path[:-1]:
        parent = getattr(parent, part)
    return parent, path[-1]


def quantize_linears(
    model: nn.Module,
    fisher: dict[str, torch.Tensor],
    *,
    seed_bits: int = 3,
    max_bits: int = 8,
    iterations: int = 50,
    seed: SeedLike = None,
    method: str = "upscale",
    cache: bool = True,
    progress: Callable[[str], None] | None = None,
) -> dict[str, NestedQuantization]:
    """Replace every linear layer named in ``fisher`` by a :class:`~.layer.QuantizedLinear`.

    ``fisher[name]`` is ``(out, in)`` (:func:`fisher_diagonal`'s layout) for an ``nn.Linear``
    and a ``Conv1D`` alike.

    Layers are quantized in the order of ``fisher``'s keys, layer ``i`` with child ``i`` of
    ``seed`` (:func:`kernelapprox._validation.spawn`; ``None``, the default, draws fresh
    entropy), by :func:`~.nested.nested_quantize`
    with ``method`` (``"upscale"``, the paper's, or ``"tree"``). Returns the quantizations by
    name (the codes and float64 tables, for measuring errors).
    """
    seed_bits, max_bits = check_widths(seed_bits, max_bits)
    if not isinstance(fisher, dict) or not fisher:
        raise ValueError("fisher must be a non-empty dict {linear layer name: tensor}")
    named = dict(model.named_modules())
    seeds = spawn(seed, len(fisher))
    out: dict[str, NestedQuantization] = {}
    for (name, f), child in zip(fisher.items(), seeds, strict=True):
        linear = named.get(name)
        if linear is None or not is_linear(linear):
            raise ValueError(f"fisher: {name!r} is not a torch.nn.Linear or Conv1D of the model")
        with torch.no_grad():
            q = nested_quantize(
                output_rows(linear).detach().contiguous(),
                f,
                seed_bits=seed_bits,
                max_bits=max_bits,
                iterations=iterations,
                seed=child,
                method=method,
            )
        parent, attr = _parent(model, name)
        setattr(parent, attr, QuantizedLinear.from_linear(linear, q, cache=cache))
        out[name] = q
        if progress is not None:
            progress(name)
    return out


def set_bits(model: nn.Module, bits: int) -> int:
    """Switch every :class:`~.layer.QuantizedLinear` of ``model`` to ``bits``; return how many."""
    layers = [m for m in model.modules() if isinstance(m, QuantizedLinear)]
    for m in layers:
        m.bits = bits
    return len(layers)
