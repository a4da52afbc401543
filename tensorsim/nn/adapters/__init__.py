"""Adapters on pretrained linear layers: LoRA (and PiSSA init), LoTR, SoKA, LoQT, peft style.

- :mod:`~tensorsim.nn.adapters.api`: :func:`adapt`, :func:`merge`,
  :func:`adapter_state_dict`, :func:`load_adapter`, :func:`trainable_parameters`;
- :mod:`~tensorsim.nn.adapters.lora`: LoRA, arXiv 2106.09685 (PiSSA init, arXiv 2404.02948);
- :mod:`~tensorsim.nn.adapters.lotr`: LoTR, arXiv 2402.01376;
- :mod:`~tensorsim.nn.adapters.soka`: SoKA, arXiv 2506.15251;
- :mod:`~tensorsim.nn.adapters.loqt`: LoQT and LoQT-nq, arXiv 2405.16528;
- :mod:`~tensorsim.nn.adapters.layer`: the adapter layer base class.
"""

from tensorsim.nn.adapters.api import (
    METHODS,
    TrainableParameters,
    adapt,
    adapter_state_dict,
    find_targets,
    load_adapter,
    merge,
    trainable_parameters,
)
from tensorsim.nn.adapters.layer import AdapterLinear
from tensorsim.nn.adapters.loqt import (
    LoQTConfig,
    LoQTLinear,
    refresh_loqt,
    refresh_steps,
)
from tensorsim.nn.adapters.lora import LoRAConfig, LoRALinear
from tensorsim.nn.adapters.lotr import LoTRConfig, LoTRFactors, LoTRLinear, tucker2
from tensorsim.nn.adapters.soka import SoKAConfig, SoKALinear, elbow_rank, energy_rank

__all__ = [
    "METHODS",
    "AdapterLinear",
    "LoQTConfig",
    "LoQTLinear",
    "LoRAConfig",
    "LoRALinear",
    "LoTRConfig",
    "LoTRFactors",
    "LoTRLinear",
    "SoKAConfig",
    "SoKALinear",
    "TrainableParameters",
    "adapt",
    "adapter_state_dict",
    "elbow_rank",
    "energy_rank",
    "find_targets",
    "load_adapter",
    "merge",
    "refresh_loqt",
    "refresh_steps",
    "trainable_parameters",
    "tucker2",
]
