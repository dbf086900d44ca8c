"""VALOR (Lai et al., NeurIPS 2023): HAN trained with segment-level pseudo labels of
modality-independent teachers, and its VALOR+ / VALOR++ variants.

* :mod:`avvp.core.valor.model`: the model (sequential cross-modal encoder, configurable size, the CLAP
  token-map and CLIP input branches chosen by declared feature roles).
* :mod:`avvp.core.valor.checkpoint`: VALOR's released ``checkpoint_best.pt`` files.
* :mod:`avvp.core.valor.training`: the loss, the warm-up + cosine schedule, the pseudo-label targets.
"""
