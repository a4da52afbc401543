"""Tensor completion on torch: completion models and influence-guided augmentation (DAIN).

Importing this package imports torch (``import tensorsim`` does not).

- :mod:`~tensorsim.nn.completion._models`: completion models that map a batch of cell
  multi-indices to values, each ending in one linear layer on a feature vector (the layer
  whose per-example gradients measure influence): the DAIN MLP over per-mode embeddings,
  CoSTCo, and CP / Tucker models trained on the observed cells only (CP-WOPT-style);
- :mod:`~tensorsim.nn.completion._influence`: TracIn-style cell importance accumulated over
  epochs in bounded memory, entity importance per mode, weighted sampling of new cells that
  never hits observed or held-out cells, and the baselines' entity weights.

References
----------
H. Oh, S. Kim, R. A. Rossi, S. Kumar, "Influence-guided Data Augmentation for Neural Tensor
Completion", CIKM 2021, arXiv 2108.10248.
G. Pruthi, F. Liu, M. Sundararajan, S. Kale, "Estimating Training Data Influence by Tracing
Gradient Descent", NeurIPS 2020, arXiv 2002.08484.
"""

from tensorsim.nn.completion._influence import (
    AUGMENTATIONS,
    TracInAccumulator,
    cell_key_tensor,
    entity_importance,
    entity_weights,
    last_layer_gradients,
    normalize_importance,
    sample_cells,
    tracin_scores,
)
from tensorsim.nn.completion._models import (
    DAINMLP,
    MODELS,
    CompletionModel,
    CoSTCo,
    CPCompletion,
    TuckerCompletion,
    build_model,
)

__all__ = [
    "AUGMENTATIONS",
    "DAINMLP",
    "MODELS",
    "CPCompletion",
    "CoSTCo",
    "CompletionModel",
    "TracInAccumulator",
    "TuckerCompletion",
    "build_model",
    "cell_key_tensor",
    "entity_importance",
    "entity_weights",
    "last_layer_gradients",
    "normalize_importance",
    "sample_cells",
    "tracin_scores",
]
