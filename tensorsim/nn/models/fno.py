"""Fourier neural operators with factorized weights: FNO, TFNO and MG-TFNO (arXiv 2310.00120).

The model maps input fields ``(samples, C_in, n_1, ..., n_d)`` on a periodic grid to output
fields ``(samples, C_out, n_1, ..., n_d)``, at any resolution that supports its modes:

1. the grid coordinates ``x_k = i / n_k`` are appended as ``d`` input channels
   (``positional_grid``);
2. lifting: a pointwise two-layer MLP ``C_in + d -> lifting_ratio * width -> width``;
3. ``n_layers`` FNO blocks; block ``l`` computes
   ``y = K_l x + W_l x`` (spectral convolution :class:`tensorsim.nn.SpectralConv` plus a
   pointwise linear skip), GELU, ``y = MLP_l(y) + g_l * x`` (channel MLP of expansion
   ``channel_mlp_expansion`` plus a soft-gating skip, a learned scale per channel), GELU (the
   GELUs are left out in the last block);
4. projection: a pointwise two-layer MLP ``width -> projection_ratio * width -> C_out``.

This is neuraloperator's FNO layout (its defaults), so that the parameter count of a
configuration equals neuraloperator's (complex weights counted as two reals). *TFNO* is the
same model with the spectral weights in Tucker, CP or TT form, with the rank given as the
fraction of the dense spectral parameters (:mod:`tensorsim.nn.ranks`); with ``joint=True``
all layers share one factorized tensor of shape ``(L, width, width, modes...)``, the paper's
global latent subspace. *MG-TFNO* wraps the model in multi-grid patching
(:mod:`tensorsim.nn.patching`): ``mg_levels = L`` splits every sample into ``2^L`` patches per
axis with ``mg_padding`` (fraction of the grid) of periodic context, feeds the fine patch and
``L`` coarser, wider views as ``C_in (L + 1)`` channels, and stitches the outputs back.

:class:`TFNOParams` configures a model and :func:`build_model` makes it;
:func:`factorize_model` factorizes the spectral weights of a trained model and
:func:`count_parameters` counts real parameters as neuraloperator does. The models are plain
``torch.nn.Module`` objects with ``in_channels`` and ``out_channels``; no training here.

References
----------
J. Kossaifi, N. Kovachki, K. Azizzadenesheli, A. Anandkumar, "Multi-Grid Tensorized Fourier
Neural Operator for High-Resolution PDEs", arXiv 2310.00120 (TMLR 2024).
Z. Li et al., "Fourier Neural Operator for Parametric Partial Differential Equations",
arXiv 2010.08895 (ICLR 2021).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from tensorsim.config import Params, param
from tensorsim.nn.factorized import FactorizedWeight
from tensorsim.nn.patching import check_levels, padding_widths, patch, stitch
from tensorsim.nn.spectral import SpectralConv, kept_modes

__all__ = [
    "FNO",
    "FNOBlock",
    "MultigridModel",
    "TFNOParams",
    "build_model",
    "count_parameters",
    "factorize_model",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TFNOParams(Params):
    """Configuration of an FNO / TFNO / MG-TFNO model (module docstring).

    Attributes
    ----------
    in_channels, out_channels
        Channels of the input and output fields.
    n_modes
        Fourier modes per spatial axis, counted as for a full FFT; its length is the
        spatial dimension. The grid (or, with patching, the patch with its context) must
        have at least that many points per axis.
    hidden_channels
        Width of the FNO blocks.
    n_layers
        Number of FNO blocks.
    lifting_ratio, projection_ratio
        Hidden width of the lifting and projection MLPs, in units of ``hidden_channels``.
    channel_mlp_expansion
        Hidden width of each block's channel MLP, in units of ``hidden_channels``.
    factorization
        Format of the spectral weights: ``"dense"`` (FNO), ``"tucker"``, ``"cp"``, ``"tt"``.
    rank
        Fraction in ``(0, 1]`` of the dense spectral parameters that a factorized weight
        keeps (tensorly's rule); ignored for ``"dense"``.
    joint
        One factorized tensor for the spectral weights of all layers.
    mg_levels
        Multi-grid patching levels ``L`` (``0``: no patching).
    mg_padding
        Periodic context of each patch, as a fraction of the grid size per axis.
    positional_grid
        Append the grid coordinates as input channels.
    seed
        Seed of the initialization.
    """

    in_channels: int = param(1, "channels of the input fields", ge=1)
    out_channels: int = param(1, "channels of the output fields", ge=1)
    n_modes: tuple[int, ...] = param((16, 16), "Fourier modes per axis (full-FFT count)", ge=1)
    hidden_channels: int = param(32, "width of the FNO blocks", ge=1)
    n_layers: int = param(4, "number of FNO blocks", ge=1)
    lifting_ratio: float = param(2.0, "lifting MLP width / hidden_channels", gt=0)
    projection_ratio: float = param(2.0, "projection MLP width / hidden_channels", gt=0)
    channel_mlp_expansion: float = param(0.5, "channel MLP width / hidden_channels", gt=0)
    factorization: Literal["dense", "tucker", "cp", "tt"] = param(
        "tucker", "spectral weight format (dense = FNO)"
    )
    rank: float = param(0.1, "fraction of the dense spectral parameters kept", gt=0, le=1)
    joint: bool = param(False, "factorize all layers' spectral weights as one tensor")
    mg_levels: int = param(0, "multi-grid patching levels (0: none)", ge=0)
    mg_padding: float = param(0.0, "patch context, fraction of the grid per axis", ge=0)
    positional_grid: bool = param(True, "append grid coordinates as input channels")
    seed: int = param(0, "seed of the initialization")

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.n_modes:
            raise ValueError("n_modes: expected at least one spatial axis")
        kept_modes(self.n_modes)


def _uniform(shape: tuple[int, ...], bound: float, generator, dtype, device) -> torch.Tensor:
    values = torch.rand(shape, generator=generator, dtype=dtype, device=device)
    return (2 * values - 1) * bound


class _Pointwise(torch.nn.Module):
    """A 1x1 convolution: the same linear map of the channels at every grid point."""

    def __init__(self, cin: int, cout: int, *, bias: bool, generator, dtype, device) -> None:
        super().__init__()
        bound = 1.0 / math.sqrt(cin)  # torch's default for linear layers
        self.weight = torch.nn.Parameter(_uniform((cout, cin), bound, generator, dtype, device))
        if bias:
            self.bias = torch.nn.Parameter(_uniform((cout,), bound, generator, dtype, device))
        else:
            self.register_parameter("bias", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the layer to ``(samples, cin, n_1, ..., n_d)``."""
        flat = x.flatten(2)
        # one batched product with the weight broadcast over the samples (no copies)
        weight = self.weight.expand(x.shape[0], *self.weight.shape)
        if self.bias is None:
            out = torch.bmm(weight, flat)
        else:
            out = torch.baddbmm(self.bias[None, :, None].expand(x.shape[0], -1, 1), weight, flat)
        return out.unflatten(2, x.shape[2:])


class _ChannelMLP(torch.nn.Module):
    """Pointwise ``cin -> hidden -> cout`` with a GELU in between."""

    def __init__(self, cin: int, cout: int, hidden: int, **init) -> None:
        super().__init__()
        self.fc1 = _Pointwise(cin, hidden, bias=True, **init)
        self.fc2 = _Pointwise(hidden, cout, bias=True, **init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class FNOBlock(torch.nn.Module):
    """One FNO block: spectral conv + linear skip, GELU, channel MLP + soft gating, GELU.

    Parameters
    ----------
    conv
        The spectral convolution (``width -> width``).
    expansion
        Hidden width of the channel MLP in units of the width.
    last
        Leave out the two GELUs (the last block of a model).
    init
        ``generator``, ``dtype`` and ``device`` of the pointwise layers.
    """

    def __init__(self, conv: SpectralConv, expansion: float, last: bool, **init) -> None:
        super().__init__()
        width = conv.out_channels
        self.conv = conv
        self.skip = _Pointwise(width, width, bias=False, **init)
        self.mlp = _ChannelMLP(width, width, max(round(width * expansion), 1), **init)
        self.gate = torch.nn.Parameter(
            torch.ones(width, dtype=init["dtype"], device=init["device"])
        )
        self.last = last

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block to ``(samples, width, n_1, ..., n_d)``."""
        gated = x * self.gate.view(-1, *([1] * (x.ndim - 2)))
        y = self.conv(x) + self.skip(x)
        if not self.last:
            y = F.gelu(y)
        y = self.mlp(y) + gated
        return y if self.last else F.gelu(y)


class FNO(torch.nn.Module):
    """The FNO / TFNO of :class:`TFNOParams` without patching (see :func:`build_model`).

    Parameters
    ----------
    params
        The configuration; ``mg_levels`` is not used here.
    in_channels
        Channels of the input fields if not ``params.in_channels`` (the patched input of
        :class:`MultigridModel` has more).
    dtype, device
        Real dtype (``torch.float32`` or ``torch.float64``) and device of the parameters.

    Attributes
    ----------
    in_channels, out_channels : int
        Channels of the input and output fields.
    joint_weight : FactorizedWeight or None
        The shared spectral weight when ``params.joint``.
    """

    def __init__(
        self,
        params: TFNOParams,
        *,
        in_channels: int | None = None,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        self.params = params
        self.in_channels = params.in_channels if in_channels is None else in_channels
        self.out_channels = params.out_channels
        generator = torch.Generator(device=device or "cpu").manual_seed(params.seed)
        init = {"generator": generator, "dtype": dtype, "device": device}
        width, d = params.hidden_channels, len(params.n_modes)
        lifted_in = self.in_channels + (d if params.positional_grid else 0)
        self.lifting = _ChannelMLP(
            lifted_in, width, max(round(params.lifting_ratio * width), 1), **init
        )
        std = math.sqrt(1.0 / width)  # neuraloperator's sqrt(2 / (C_in + C_out))
        self.joint_weight: FactorizedWeight | None = None
        if params.joint:
            self.joint_weight = FactorizedWeight(
                (params.n_layers, width, width, *kept_modes(params.n_modes)),
                params.factorization,
                params.rank,
                std=std,
                **init,
            )
        blocks = []
        for layer in range(params.n_layers):
            conv = SpectralConv(
                width,
                width,
                params.n_modes,
                factorization=params.factorization,
                rank=params.rank,
                shared=None if self.joint_weight is None else (self.joint_weight, layer),
                init_std=std,
                **init,
            )
            last = layer == params.n_layers - 1
            blocks.append(FNOBlock(conv, params.channel_mlp_expansion, last, **init))
        self.blocks = torch.nn.ModuleList(blocks)
        self.projection = _ChannelMLP(
            width, self.out_channels, max(round(params.projection_ratio * width), 1), **init
        )

    def check_input(self, x: torch.Tensor, name: str = "x") -> None:
        """Raise ``ValueError`` unless ``x`` is ``(samples, in_channels, n_1, ..., n_d)``.

        It must also have the parameters' dtype.
        """
        d = len(self.params.n_modes)
        if not isinstance(x, torch.Tensor) or x.ndim != d + 2 or x.shape[1] != self.in_channels:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(
                f"{name}: expected shape (samples, {self.in_channels}, n_1, ..., n_{d}), got {got}"
            )
        dtype = self.lifting.fc1.weight.dtype
        if x.dtype != dtype:
            raise ValueError(f"{name}: expected dtype {dtype} (the model's), got {x.dtype}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(samples, in_channels, n_1, ..., n_d)`` to ``(samples, out_channels, ...)``."""
        self.check_input(x)
        if self.params.positional_grid:
            x = torch.cat([x, _grid_channels(x)], dim=1)
        x = self.lifting(x)
        for block in self.blocks:
            x = block(x)
        return self.projection(x)


def _grid_channels(x: torch.Tensor) -> torch.Tensor:
    """Coordinates ``i / n_k`` of the periodic grid of ``x``, one channel per axis."""
    sizes = x.shape[2:]
    axes = [torch.arange(n, dtype=x.dtype, device=x.device) / n for n in sizes]
    mesh = torch.meshgrid(*axes, indexing="ij")
    return torch.stack(mesh).unsqueeze(0).expand(x.shape[0], -1, *sizes)


class MultigridModel(torch.nn.Module):
    """MG-TFNO: multi-grid patching around an :class:`FNO` (patch, apply, stitch).

    Parameters
    ----------
    model
        The FNO acting on the patches; its input channels are ``C_in (levels + 1)``.
    levels
        Patching levels ``L >= 1``.
    padding_fraction
        Periodic context of each patch, as a fraction of the grid size per axis.

    Notes
    -----
    The loss is taken on the stitched output (training and evaluation alike), and the
    context widths follow the input's resolution, so the model can be evaluated on finer
    grids than it was trained on.
    """

    def __init__(self, model: FNO, levels: int, padding_fraction: float) -> None:
        super().__init__()
        check_levels(levels, ())
        if levels < 1 or model.in_channels % (levels + 1):
            raise ValueError(
                f"levels: expected >= 1 with the inner model's {model.in_channels} input "
                f"channels a multiple of levels + 1, got levels={levels!r}"
            )
        padding_widths((1,), padding_fraction)  # validates the fraction
        self.model = model
        self.levels = levels
        self.padding_fraction = padding_fraction
        self.in_channels = model.in_channels // (levels + 1)
        self.out_channels = model.out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(samples, in_channels, n_1, ..., n_d)`` to ``(samples, out_channels, ...)``."""
        d = len(self.model.params.n_modes)
        if not isinstance(x, torch.Tensor) or x.ndim != d + 2 or x.shape[1] != self.in_channels:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(
                f"x: expected shape (samples, {self.in_channels}, n_1, ..., n_{d}), got {got}"
            )
        pads = padding_widths(x.shape[2:], self.padding_fraction)
        out = self.model(patch(x, self.levels, pads))
        return stitch(out, self.levels, pads)


def build_model(
    params: TFNOParams,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> FNO | MultigridModel:
    """Make the model of a configuration.

    Parameters
    ----------
    params
        The configuration.
    dtype
        Real dtype of the parameters and of the fields (``torch.float32`` or
        ``torch.float64``).
    device
        Device of the parameters.

    Returns
    -------
    FNO or MultigridModel
        An :class:`FNO` (TFNO when factorized), wrapped in a :class:`MultigridModel` when
        ``params.mg_levels > 0``. Both have ``in_channels`` and ``out_channels``.

    Examples
    --------
    >>> model = build_model(TFNOParams(n_modes=(8, 8), hidden_channels=8, rank=0.2))
    >>> model(torch.zeros(2, 1, 16, 16)).shape
    torch.Size([2, 1, 16, 16])
    """
    if not isinstance(params, TFNOParams):
        raise TypeError(f"params: expected TFNOParams, got {type(params).__name__}")
    if params.mg_levels == 0:
        return FNO(params, dtype=dtype, device=device)
    inner = FNO(
        params, in_channels=params.in_channels * (params.mg_levels + 1), dtype=dtype, device=device
    )
    return MultigridModel(inner, params.mg_levels, params.mg_padding)


def count_parameters(model: torch.nn.Module) -> int:
    """Number of real parameters (a complex parameter counts as two).

    Shared parameters are counted once, so counts of this project's models and of
    neuraloperator's (which keeps complex parameters) compare directly.
    """
    return sum(p.numel() * (2 if p.is_complex() else 1) for p in model.parameters())


def factorize_model(
    model: FNO | MultigridModel,
    factorization: str,
    rank: float,
    *,
    joint: bool = False,
) -> FNO | MultigridModel:
    """A TFNO initialised from a trained model: its spectral weights factorized.

    Everything but the spectral weights is copied. Each layer's weight (multiplied out) is
    decomposed by HOSVD (Tucker), CP-ALS (CP) or TT-SVD (TT) at the ranks of ``rank``; with
    ``joint=True`` the stacked weights of all layers are decomposed as one tensor.

    Parameters
    ----------
    model
        A model of :func:`build_model`.
    factorization
        ``"dense"``, ``"tucker"``, ``"cp"`` or ``"tt"``.
    rank
        Fraction in ``(0, 1]`` of the dense spectral parameters.
    joint
        Factorize all layers jointly.

    Returns
    -------
    FNO or MultigridModel
        A new model with configuration ``factorization``, ``rank``, ``joint``; equal to
        ``model`` when the factorization is exact.
    """
    fno = model.model if isinstance(model, MultigridModel) else model
    params = dataclasses.replace(fno.params, factorization=factorization, rank=rank, joint=joint)
    template = next(fno.parameters())
    new = build_model(params, dtype=template.dtype, device=template.device)
    new_fno = new.model if isinstance(new, MultigridModel) else new
    dense = [block.conv.dense_weight().detach() for block in fno.blocks]
    if joint:
        new_fno.joint_weight = FactorizedWeight.from_dense(torch.stack(dense), factorization, rank)
        for layer, block in enumerate(new_fno.blocks):
            block.conv._shared = (new_fno.joint_weight, layer)
    else:
        for block, weight in zip(new_fno.blocks, dense, strict=True):
            block.conv.weight = FactorizedWeight.from_dense(weight, factorization, rank)

    def spectral(key: str) -> bool:
        return key.startswith("joint_weight.") or ".conv.weight." in key

    kept = {k: v for k, v in fno.state_dict().items() if not spectral(k)}
    with torch.no_grad():
        missing = new_fno.load_state_dict(kept, strict=False).missing_keys
    if not all(spectral(k) for k in missing):
        raise RuntimeError(f"factorize_model: parameters not copied: {sorted(missing)}")
    return new
