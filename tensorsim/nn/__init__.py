"""Torch modules on the tensorsim kernels: operators, adapters, attention, completion, splats.

Importing this package imports torch (``import tensorsim`` does not).

- :mod:`~tensorsim.nn.ranks`: integer ranks from a fraction of the dense parameters;
- :mod:`~tensorsim.nn.factorized`: a complex weight in dense, Tucker, CP or TT form;
- :mod:`~tensorsim.nn.spectral`: the spectral convolution of (T)FNO layers;
- :mod:`~tensorsim.nn.patching`: multi-grid patching of periodic fields;
- :mod:`~tensorsim.nn.losses`: relative L2 and H1 losses;
- :mod:`~tensorsim.nn.state`: state dicts as arrays plus a JSON layout (checkpoints);
- :mod:`~tensorsim.nn.distributed`: torch.distributed initialized from MPI;
- :mod:`~tensorsim.nn.adapters`: LoRA, LoTR, SoKA and LoQT adapters on pretrained linear
  layers, peft style; :mod:`~tensorsim.nn.quant`: the NF4 quantizer;
- :mod:`~tensorsim.nn.rope`, :mod:`~tensorsim.nn.attention`, :mod:`~tensorsim.nn.kv_cache`:
  RoPE, MHA/GQA/MQA and Tensor Product Attention (arXiv 2501.06425) with KV caches;
- :mod:`~tensorsim.nn.models`: the models in one place (FNO/TFNO/MG-TFNO, the decoder-only
  transformer, the tensor-completion models, the small models of the optimizer comparisons);
- :mod:`~tensorsim.nn.completion`: TracIn influence and augmentation of tensor completion
  (DAIN, arXiv 2108.10248);
- :mod:`~tensorsim.nn.gaussians`, :mod:`~tensorsim.nn.splat`: multi-identity factorized
  Gaussians (MIGS, arXiv 2407.07284) and plain-torch Gaussian splatting;
- :mod:`~tensorsim.nn.fields`, :mod:`~tensorsim.nn.render`: TensoRF CP/VM and Strivec
  factorized radiance fields (arXiv 2203.09517, 2307.13226) and volume rendering.

References
----------
J. Kossaifi, N. Kovachki, K. Azizzadenesheli, A. Anandkumar, "Multi-Grid Tensorized Fourier
Neural Operator for High-Resolution PDEs", arXiv 2310.00120 (TMLR 2024).
"""

from tensorsim.nn.adapters import (
    adapt,
    adapter_state_dict,
    load_adapter,
    merge,
    trainable_parameters,
)
from tensorsim.nn.attention import MultiHeadAttention, TensorProductAttention
from tensorsim.nn.distributed import init_torch_distributed, torch_distributed
from tensorsim.nn.factorized import FactorizedWeight
from tensorsim.nn.kv_cache import (
    KVCache,
    TPAFactorCache,
    attention_parameters,
    kv_cache_bytes_per_token,
    solve_heads,
)
from tensorsim.nn.losses import relative_h1, relative_l2
from tensorsim.nn.models.decoder import (
    Decoder,
    DecoderCache,
    RMSNorm,
    SwiGLU,
    count_parameters,
    solve_d_ff,
)
from tensorsim.nn.patching import patch, stitch
from tensorsim.nn.ranks import cp_rank, factorized_size, resolve_ranks, tt_ranks, tucker_ranks
from tensorsim.nn.rope import RotaryEmbedding
from tensorsim.nn.spectral import SpectralConv, kept_modes
from tensorsim.nn.state import state_from_arrays, state_to_arrays

__all__ = [
    "Decoder",
    "DecoderCache",
    "FactorizedWeight",
    "KVCache",
    "MultiHeadAttention",
    "RMSNorm",
    "RotaryEmbedding",
    "SpectralConv",
    "SwiGLU",
    "TPAFactorCache",
    "TensorProductAttention",
    "adapt",
    "adapter_state_dict",
    "attention_parameters",
    "count_parameters",
    "cp_rank",
    "factorized_size",
    "init_torch_distributed",
    "kept_modes",
    "kv_cache_bytes_per_token",
    "load_adapter",
    "merge",
    "patch",
    "relative_h1",
    "relative_l2",
    "resolve_ranks",
    "solve_d_ff",
    "solve_heads",
    "state_from_arrays",
    "state_to_arrays",
    "stitch",
    "torch_distributed",
    "trainable_parameters",
    "tt_ranks",
    "tucker_ranks",
]
