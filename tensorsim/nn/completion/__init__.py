"""Tensor completion on torch: influence-guided augmentation (DAIN).

Importing this package imports torch (``import tensorsim`` does not).

:mod:`~tensorsim.nn.completion._influence`: TracIn-style cell importance accumulated over
epochs in bounded memory, entity importance per mode, weighted sampling of new cells that
never hits observed or held-out cells, and the baselines' entity weights. The completion
models (each ending in one linear layer on a feature vector, the layer whose per-example
gradients measure influence) are in :mod:`tensorsim.nn.models.completion`.

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

__all__ = [
    "AUGMENTATIONS",
    "TracInAccumulator",
    "cell_key_tensor",
    "entity_importance",
    "entity_weights",
    "last_layer_gradients",
    "normalize_importance",
    "sample_cells",
    "tracin_scores",
]
