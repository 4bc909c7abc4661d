"""A small decoder-only language model, its byte tokenizer and an offline corpus.

Shared by the model-approximation work: evolving subnetwork training
(:mod:`kernelapprox.dynamics.est`), pruning and quantization. Everything works offline: the
tokenizer is byte-level (no vocabulary file) and the corpus is built from the docstrings of
installed packages with a fixed train/validation split. Depends only on torch, numpy and
:mod:`kernelapprox._validation`.
"""

from kernelapprox.lm.corpus import (
    DEFAULT_MODULES,
    Corpus,
    docstring_corpus,
    docstring_documents,
    evenly_spaced_windows,
    is_validation,
    random_windows,
)
from kernelapprox.lm.model import (
    MLP,
    Block,
    CausalSelfAttention,
    Decoder,
    DecoderConfig,
    LayerSlice,
    Subnetwork,
)
from kernelapprox.lm.tokenizer import VOCAB_SIZE, ByteTokenizer

__all__ = [
    "DEFAULT_MODULES",
    "MLP",
    "VOCAB_SIZE",
    "Block",
    "ByteTokenizer",
    "CausalSelfAttention",
    "Corpus",
    "Decoder",
    "DecoderConfig",
    "LayerSlice",
    "Subnetwork",
    "docstring_corpus",
    "docstring_documents",
    "evenly_spaced_windows",
    "is_validation",
    "random_windows",
]
