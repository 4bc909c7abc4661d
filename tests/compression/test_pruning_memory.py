"""Training memory measured from saved tensors (kernelapprox.compression.pruning.memory)."""

from __future__ import annotations

import torch
from torch import nn

from kernelapprox.compression.pruning.memory import SavedActivations, parameter_bytes


def test_saved_bytes_are_the_tensors_autograd_keeps() -> None:
    """An MLP saves, per layer, its input (for the weight gradient) and the ReLU output."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 20), nn.ReLU(), nn.Linear(20, 3))
    x = torch.randn(7, 10)
    with SavedActivations(model) as saved:
        model(x).sum().backward()
    # first matmul saves x (7x10); ReLU saves its output (7x20); the second matmul saves
    # that same output (one storage, counted once); float32
    assert saved.bytes == (7 * 10 + 7 * 20) * 4


def test_frozen_weights_save_nothing_for_their_gradient() -> None:
    model = nn.Linear(10, 20)
    for p in model.parameters():
        p.requires_grad_(False)
    with SavedActivations(model) as saved:
        model(torch.randn(7, 10, requires_grad=True)).sum().backward()
    assert saved.bytes == 0  # only dL/dx is needed: the weight itself, a parameter


def test_views_of_one_storage_count_once_and_parameters_never() -> None:
    w = nn.Parameter(torch.randn(4, 4))
    x = torch.randn(4, 4, requires_grad=True)
    with SavedActivations(nn.ParameterList([w])) as saved:
        (x[:2] * w[:2]).sum().backward()  # mul saves both operands: a view of x and of w
    assert saved.bytes == 4 * 4 * 4  # x's whole storage, once; w is a parameter


def test_parameter_bytes_counts_weights_and_grads() -> None:
    model = nn.Linear(3, 2)
    assert parameter_bytes(model) == ((3 * 2 + 2) * 4, 0)
    model(torch.ones(1, 3)).sum().backward()
    assert parameter_bytes(model) == ((3 * 2 + 2) * 4, (3 * 2 + 2) * 4)
