"""APT: adaptive pruning and tuning (Zhao, Hajishirzi & Cao, ICML 2024).

Structured pruning of a pretrained transformer while it is fine-tuned, measured as an
approximation of the unpruned model:

* :mod:`.salience` -- scores of heads, neurons and hidden dimensions from forward/backward
  hooks (APT's compressed form, the per-sample form, the signed Taylor estimate; EMA; kurtosis);
* :mod:`.selection` -- the densest blocks under a parameter budget (APT's prefix search);
* :mod:`.schedule` -- the cubic schedule of the kept fraction and masks applied by selection;
* :mod:`.models` -- the sites of :class:`kernelapprox.lm.Decoder` and of BERT-family encoders,
  and the physical shrinking of both (and of Hugging Face GPT-2 / Llama decoders);
* :mod:`.adapters` -- low-rank adapters whose rank grows without changing the output, APT's
  top-half allocation rule, and the self-distillation loss.
"""

from kernelapprox.compression.pruning.adapters import (
    GrowingLoRALinear,
    adapter_sites,
    add_adapters,
    allocate_ranks,
    distillation_loss,
    distillation_weight,
    kl_divergence,
    snapshot,
)
from kernelapprox.compression.pruning.models import (
    bert_layers,
    bert_sites,
    count_params,
    decoder_sites,
    hf_decoder_sites,
    shrink_bert,
    shrink_decoder,
    shrink_hf_decoder,
)
from kernelapprox.compression.pruning.salience import (
    FORMS,
    SalienceTracker,
    Site,
    excess_kurtosis,
    group_salience,
)
from kernelapprox.compression.pruning.schedule import (
    MaskHooks,
    Pruner,
    cubic_keep_fraction,
    pruning_steps,
)
from kernelapprox.compression.pruning.selection import (
    Selection,
    prunable_params,
    select_blocks,
    select_masks,
)

__all__ = [
    "FORMS",
    "GrowingLoRALinear",
    "MaskHooks",
    "Pruner",
    "SalienceTracker",
    "Selection",
    "Site",
    "adapter_sites",
    "add_adapters",
    "allocate_ranks",
    "bert_layers",
    "bert_sites",
    "count_params",
    "cubic_keep_fraction",
    "decoder_sites",
    "distillation_loss",
    "distillation_weight",
    "excess_kurtosis",
    "group_salience",
    "hf_decoder_sites",
    "kl_divergence",
    "prunable_params",
    "pruning_steps",
    "select_blocks",
    "select_masks",
    "shrink_bert",
    "shrink_decoder",
    "shrink_hf_decoder",
    "snapshot",
]
