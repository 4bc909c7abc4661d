"""SavedActivations must not keep a model alive through autograd's saved outputs.

Autograd saves some nodes' own outputs (tanh, layer norm). A pack hook that returns the saved
tensor itself makes the cycle output -> grad_fn -> saved output, held in C++ where Python's
collector cannot break it; a graph never consumed by backward (MiniLM's unused pooler output in
the classify loss) then kept every trained model alive: 100 MB a seed in ``compress apt``.
"""

import gc
import weakref

import torch

from kernelapprox.compression.pruning.memory import SavedActivations


def _unconsumed_graph_keeps_weight() -> bool:
    lin = torch.nn.Linear(8, 4)
    weight = weakref.ref(lin.weight)
    with SavedActivations(lin) as saved:
        out = torch.tanh(lin(torch.ones(16, 8)))  # tanh saves its output
    assert saved.bytes > 0
    del out, lin, saved
    gc.collect()
    return weight() is not None


def test_unconsumed_graph_frees_the_model():
    assert not _unconsumed_graph_keeps_weight()


def test_the_check_detects_the_cycle():
    # the same graph under a pack hook that returns its argument (the old code) leaks
    lin = torch.nn.Linear(8, 4)
    weight = weakref.ref(lin.weight)
    with torch.autograd.graph.saved_tensors_hooks(lambda t: t, lambda t: t):
        out = torch.tanh(lin(torch.ones(16, 8)))
    del out, lin
    gc.collect()
    assert weight() is not None


def test_gradients_unchanged_by_the_detached_alias():
    torch.manual_seed(0)
    lin = torch.nn.Linear(8, 4).double()
    x = torch.randn(16, 8, dtype=torch.float64)
    with SavedActivations(lin):
        loss = torch.nn.functional.layer_norm(torch.tanh(lin(x)), (4,)).pow(2).sum()
    loss.backward()
    hooked = [p.grad.clone() for p in lin.parameters()]
    lin.zero_grad(set_to_none=True)
    torch.nn.functional.layer_norm(torch.tanh(lin(x)), (4,)).pow(2).sum().backward()
    for a, p in zip(hooked, lin.parameters(), strict=True):
        assert torch.equal(a, p.grad)


def test_bert_with_unused_pooler_is_freed():
    # the case of compress apt: the loss reads the last hidden state, never the pooler's tanh
    from transformers import BertConfig, BertModel

    config = BertConfig(
        vocab_size=50,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=8,
    )
    model = BertModel(config, add_pooling_layer=True).train()
    params = [weakref.ref(p) for p in model.parameters()]
    ids = torch.randint(0, 50, (4, 8), generator=torch.Generator().manual_seed(0))
    with SavedActivations(model):
        out = model(input_ids=ids)
        loss = out.last_hidden_state.pow(2).mean()
    loss.backward()
    del out, loss, model
    gc.collect()
    assert sum(p() is not None for p in params) == 0
