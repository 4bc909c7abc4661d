r"""Quantize every linear layer of a model with Fisher sensitivities from calibration data.

Sensitivity (Park et al., ICML 2024, after SqueezeLLM): the diagonal empirical Fisher

.. math:: F_{rj} = \sum_{b} \Big(\frac{\partial L_b}{\partial W_{rj}}\Big)^2

over calibration batches :math:`b` of a loss :math:`L_b` (:func:`fisher_diagonal`). By a
second-order expansion the loss change of a perturbation :math:`\delta W` is about
:math:`\tfrac12 \sum_{rj} F_{rj}\,\delta W_{rj}^2` when the Fisher approximates the Hessian,
which is why the weighted error :math:`\sum F (W - \hat W)^2` is the quantity minimized and
reported. The loss is the caller's: next-token cross-entropy for a decoder; for a sentence
encoder :mod:`.experiment` uses a random projection of the embedding (see there).

:func:`quantize_linears` replaces every :class:`torch.nn.Linear` of a model in place by a
:class:`~.layer.QuantizedLinear` (layer :math:`i` seeded by child :math:`i` of ``seed``) and
:func:`set_bits` switches all of them at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import nn

from kernelapprox._validation import SeedLike, spawn
from kernelapprox.compression.quantization.layer import QuantizedLinear
from kernelapprox.compression.quantization.nested import (
    NestedQuantization,
    check_widths,
    nested_quantize,
)

__all__ = ["fisher_diagonal", "linear_modules", "quantize_linears", "set_bits"]


def linear_modules(model: nn.Module, skip: Sequence[str] = ()) -> list[tuple[str, nn.Linear]]:
    """The ``(name, module)`` of every :class:`torch.nn.Linear` in ``model``, in module order,
    except those whose name is in ``skip``."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    skip = set(skip)
    return [
        (name, m)
        for name, m in model.named_modules()
        if isinstance(m, nn.Linear) and name not in skip
    ]


def fisher_diagonal(
    model: nn.Module,
    loss_fn: Callable[[nn.Module, Any], torch.Tensor],
    batches: Iterable[Any],
    *,
    modules: Sequence[tuple[str, nn.Linear]] | None = None,
) -> dict[str, torch.Tensor]:
    r"""Sum over ``batches`` of the squared gradients of ``loss_fn(model, batch)``.

    Parameters
    ----------
    model : torch.nn.Module
    loss_fn : callable
        ``loss_fn(model, batch) -> scalar tensor``.
    batches : iterable
        The calibration batches (at least one).
    modules : list of (name, Linear), optional
        Whose weights to measure (default: :func:`linear_modules`).

    Returns
    -------
    dict
        ``{name: float64 tensor of the weight's shape}``.
    """
    if not callable(loss_fn):
        raise TypeError("loss_fn must be callable as loss_fn(model, batch)")
    modules = linear_modules(model) if modules is None else list(modules)
    if not modules:
        raise ValueError("model has no torch.nn.Linear layer to measure")
    fisher = {name: torch.zeros(m.weight.shape, dtype=torch.float64) for name, m in modules}
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
            loss = loss_fn(model, batch)
            if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
                raise ValueError("loss_fn must return a scalar tensor")
            loss.backward()
            for name, m in modules:
                if m.weight.grad is not None:
                    fisher[name] += m.weight.grad.detach().to(torch.float64) ** 2
            count += 1
    finally:
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
        if not isinstance(linear, nn.Linear):
            raise ValueError(f"fisher: {name!r} is not a torch.nn.Linear of the model")
        with torch.no_grad():
            q = nested_quantize(
                linear.weight.detach(),
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
