r"""Training memory measured from the tensors a step really keeps, on any device.

CPU allocators keep no peak statistic, so the peak of one training step is measured from
its tensors: the parameters, their gradients and the optimizer state (counted from the
objects) and the *activations autograd saves for the backward pass*, counted as they are
saved, through :func:`torch.autograd.graph.saved_tensors_hooks`. Each storage is counted
once (views of one storage and tensors saved twice are not double counted) and storages
that belong to parameters are left out (they are counted as parameters). Since the
gradients are written while the saved activations are released, the sum

.. math:: M = P + G + S + \max_t A_t

(parameters, gradients, optimizer state, the largest saved-activation total of a step) is an
upper bound of the live tensor bytes of the training loop that misses only the temporaries
of a single operation.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = ["SavedActivations", "parameter_bytes"]


def parameter_bytes(model: nn.Module) -> tuple[int, int]:
    """``(parameter bytes, gradient bytes)`` of ``model``, each storage once."""
    params = {id(p): p for p in model.parameters()}.values()
    weights = sum(p.numel() * p.element_size() for p in params)
    grads = sum(p.grad.numel() * p.grad.element_size() for p in params if p.grad is not None)
    return weights, grads


class SavedActivations:
    """Bytes of the tensors autograd saves inside the ``with`` block (one step's forward).

    >>> lin = torch.nn.Linear(8, 4)
    >>> with SavedActivations(lin) as saved:
    ...     y = torch.relu(lin(torch.ones(16, 8))).sum()
    >>> saved.bytes  # the input of the matmul (16x8) and relu's output (16x4), float32
    768
    """

    def __init__(self, model: nn.Module | None = None) -> None:
        self._params = (
            {p.untyped_storage().data_ptr() for p in model.parameters()} if model else set()
        )
        self._seen: set[int] = set()
        self.bytes = 0
        self._hooks: Any = None

    def _pack(self, tensor: torch.Tensor) -> torch.Tensor:
        if tensor.layout == torch.strided and tensor.device.type != "meta":
            storage = tensor.untyped_storage()
            key = storage.data_ptr()
            if key not in self._seen and key not in self._params:
                self._seen.add(key)
                self.bytes += storage.nbytes()
        # A detached alias (same storage and version counter), not ``tensor`` itself: when
        # autograd saves a node's own output (tanh, layer norm), returning the output makes a
        # cycle output -> grad_fn -> saved output that Python's collector cannot see, so a
        # graph never consumed by backward (an unused pooler output) kept the whole model alive
        # after training: one model per fit, 100 MB per seed for MiniLM.
        return tensor.detach()

    def __enter__(self) -> SavedActivations:
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t)
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._hooks.__exit__(*exc)
