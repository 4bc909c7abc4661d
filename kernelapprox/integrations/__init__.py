"""Third-party model code: Hugging Face ``transformers`` models with feature-map attention.

* :mod:`kernelapprox.integrations.convert`: :func:`~kernelapprox.integrations.convert.convert`
  a pretrained model to :class:`~kernelapprox.attention.FeatureAttention` and
  :func:`~kernelapprox.integrations.convert.distill` it towards the original;
* :mod:`kernelapprox.integrations.cache`: the decoding state cache of a converted decoder;
* :mod:`kernelapprox.integrations.minilm_experiment`: the MiniLM conversion experiment that
  ``kernelapprox convert`` runs.

This package may import :mod:`kernelapprox.attention`, the feature maps, the estimators and
:mod:`kernelapprox.lm`; none of those imports it. ``transformers`` is optional (the
``convert`` extra) and loaded only when a submodule is imported.
"""
