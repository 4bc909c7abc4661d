"""What a custom backward pass may know about the pass that runs it."""

from __future__ import annotations

import torch


def graph_released() -> bool:
    """Whether the running backward pass frees the graph as it goes (no ``retain_graph``, no
    ``create_graph``): a tensor saved only for a node is then dead once that node has run.
    False where torch does not say (the query is a private one of ``torch._C``) and while
    ``torch.compile`` traces the pass (it cannot trace the query)."""
    if torch.compiler.is_compiling() or torch.is_grad_enabled():
        return False
    keep_graph = getattr(torch._C._autograd, "_get_current_graph_task_keep_graph", None)
    return keep_graph is not None and not keep_graph()
