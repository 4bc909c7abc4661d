"""Tiny offline Hugging Face decoders and a BERT encoder (random weights, float64) for the
compression tests."""

from __future__ import annotations

import torch


def tiny_gpt2(transformers):
    """GPT-2, 2 layers of width 16, 4 heads, MLP 24, no dropout; its projections are
    ``Conv1D`` (weight ``(in, out)``) and ``lm_head`` shares the token embedding."""
    config = transformers.GPT2Config(
        vocab_size=40,
        n_positions=8,
        n_embd=16,
        n_layer=2,
        n_head=4,
        n_inner=24,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
    )
    torch.manual_seed(0)
    return transformers.GPT2LMHeadModel(config).double().eval()


def tiny_llama(transformers, kv_heads: int = 2, seed: int = 0):
    """A Llama-style decoder, 2 layers of width 16, 4 query and ``kv_heads`` key-value heads,
    MLP 24, every matrix redrawn from N(0, 0.3^2) (the default init is tiny: near-identity
    layers)."""
    config = transformers.LlamaConfig(
        vocab_size=40,
        hidden_size=16,
        intermediate_size=24,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=kv_heads,
        max_position_embeddings=8,
    )
    torch.manual_seed(seed)
    model = transformers.LlamaForCausalLM(config).double().eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim == 2:
                p.normal_(0, 0.3)
    return model


def tiny_bert(transformers, seed: int = 0, pooler: bool = False):
    """``(model, ids, attention)``: BERT, 2 layers of width 16, 4 heads, FFN 24, no dropout,
    in eval mode, with a batch of 3 sequences of 7 tokens, the second padded after 5."""
    config = transformers.BertConfig(
        vocab_size=50,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=24,
        max_position_embeddings=16,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    torch.manual_seed(seed)
    model = transformers.BertModel(config, add_pooling_layer=pooler).double().eval()
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, 50, (3, 7), generator=gen)
    attention = torch.ones(3, 7, dtype=torch.long)
    attention[1, 5:] = 0  # padding
    return model, ids, attention
