"""Completion models: cell multi-indices ``(B, d)`` in, predicted values ``(B,)`` out.

Every model is a :class:`CompletionModel`: a ``features(indices) -> (B, k)`` map followed by
one linear layer ``head`` (``k -> 1``, with bias). The head is the "last layer" of
TracIn-style influence (:mod:`tensorsim.nn.completion`): its per-example gradient
of the squared error is ``(prediction - value) * [features, 1]``, the same formula for every
model, which keeps the augmentation model-agnostic.

- :class:`DAINMLP`: one embedding table per mode, concatenated, an MLP with ReLU after every
  hidden layer (the model of the DAIN reference code, arXiv 2108.10248);
- :class:`CoSTCo`: embeddings stacked into a ``d x R`` image, a convolution over the modes, one
  over the rank axis, a dense layer (Liu et al., KDD 2019);
- :class:`CPCompletion`: ``sum_r w_r prod_m A_m[i_m, r] + b``; the features are the Hadamard
  product of the gathered factor rows (the shared CP kernel
  :func:`tensorsim.decomp._cpkernels.hadamard`), the head holds the CP weights. Trained on the
  observed cells only, it minimises the CP-WOPT objective (Acar et al., arXiv 1005.2197) by
  stochastic gradients;
- :class:`TuckerCompletion`: ``core x_m U_m`` at the cell plus a bias; the features are the
  Kronecker product of the factor rows, the head holds the (flattened) core.

:func:`build_model` makes one by name (:data:`MODELS`) from a seeded ``torch.Generator``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import torch

from tensorsim.decomp._cpkernels import hadamard

__all__ = [
    "DAINMLP",
    "MODELS",
    "CPCompletion",
    "CoSTCo",
    "CompletionModel",
    "TuckerCompletion",
    "build_model",
]

logger = logging.getLogger(__name__)


def _check_shape(shape: Sequence[int]) -> tuple[int, ...]:
    try:
        out = tuple(int(s) for s in shape)
    except (TypeError, ValueError) as err:
        raise TypeError(f"shape: expected a sequence of integers, got {shape!r}") from err
    if not out:
        raise ValueError("shape: expected at least one mode, got ()")
    empty = [m for m, s in enumerate(out) if s < 1]
    if empty:
        raise ValueError(f"shape: mode {empty[0]} is empty (size {out[empty[0]]})")
    return out


def _positive(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}: expected a positive integer, got {value!r}")
    return value


def _normal(shape: tuple[int, ...], std: float, generator: torch.Generator | None) -> torch.Tensor:
    return torch.randn(shape, generator=generator) * std


def _init_linear(layer: torch.nn.Module, generator: torch.Generator | None) -> None:
    """Kaiming-uniform weights (as torch's default) drawn from ``generator``; zero bias."""
    w = layer.weight
    fan_in = math.prod(w.shape[1:])
    bound = 1.0 / math.sqrt(fan_in)
    with torch.no_grad():
        w.copy_((torch.rand(w.shape, generator=generator) * 2 - 1) * bound)
        if layer.bias is not None:
            layer.bias.zero_()


class CompletionModel(torch.nn.Module):
    """Base class: ``forward(indices) = head(features(indices))``, values of shape ``(B,)``.

    Subclasses set ``self.shape`` and ``self.head`` (a ``torch.nn.Linear(k, 1)``) and define
    :meth:`features`.
    """

    shape: tuple[int, ...]
    head: torch.nn.Linear

    def features(self, indices: torch.Tensor) -> torch.Tensor:
        """The input of the head at each cell, ``(B, k)``."""
        raise NotImplementedError

    def check_indices(self, indices: Any) -> torch.Tensor:
        """Return ``indices`` as int64 ``(B, d)`` inside :attr:`shape`, or raise ValueError."""
        if not isinstance(indices, torch.Tensor):
            raise TypeError(f"indices: expected a torch.Tensor, got {type(indices).__name__}")
        if indices.ndim != 2 or indices.shape[1] != len(self.shape):
            raise ValueError(
                f"indices: expected shape (B, {len(self.shape)}), got {tuple(indices.shape)}"
            )
        if indices.dtype.is_floating_point or indices.dtype == torch.bool:
            raise TypeError(f"indices: expected integers, got {indices.dtype}")
        indices = indices.long()
        if indices.numel():
            lo = indices.min(dim=0).values
            hi = indices.max(dim=0).values
            size = torch.tensor(self.shape)
            bad = torch.nonzero((lo < 0) | (hi >= size)).flatten()
            if bad.numel():
                m = int(bad[0])
                raise ValueError(
                    f"indices: mode {m} holds indices in [{int(lo[m])}, {int(hi[m])}], "
                    f"expected [0, {self.shape[m] - 1}]"
                )
        return indices

    def forward(self, indices: torch.Tensor) -> torch.Tensor:
        """Predicted values at the cells ``indices`` (``(B, d)`` integers)."""
        return self.head(self.features(indices)).squeeze(-1)

    def forward_with_features(self, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Predictions ``(B,)`` and the head's input ``(B, k)`` from one pass."""
        h = self.features(indices)
        return self.head(h).squeeze(-1), h

    @property
    def feature_size(self) -> int:
        """``k``, the width of the head's input."""
        return int(self.head.in_features)


class DAINMLP(CompletionModel):
    """The DAIN completion model: per-mode embeddings, concatenated, then an MLP.

    Parameters
    ----------
    shape
        Size of each mode.
    embed_dim
        Embedding size per mode (the reference code uses ``layers[0] / d``, 50 for 3 modes).
    hidden
        Widths of the hidden layers (ReLU after each); the last one is the head's input.
    generator
        Seeds the initial weights.

    References
    ----------
    arXiv 2108.10248 (DAIN), reference code ``srijankr/DAIN`` ``src/model.py``.
    """

    def __init__(
        self,
        shape: Sequence[int],
        *,
        embed_dim: int = 16,
        hidden: Sequence[int] = (256, 64),
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.shape = _check_shape(shape)
        _positive("embed_dim", embed_dim)
        hidden = tuple(hidden)
        if not hidden:
            raise ValueError("hidden: expected at least one hidden layer width")
        for w in hidden:
            _positive("hidden", w)
        self.embeddings = torch.nn.ModuleList(torch.nn.Embedding(n, embed_dim) for n in self.shape)
        for emb in self.embeddings:
            with torch.no_grad():
                emb.weight.copy_(_normal(tuple(emb.weight.shape), 1.0, generator))
        widths = (embed_dim * len(self.shape), *hidden)
        self.layers = torch.nn.ModuleList(
            torch.nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:], strict=True)
        )
        self.head = torch.nn.Linear(hidden[-1], 1)
        for layer in (*self.layers, self.head):
            _init_linear(layer, generator)

    def features(self, indices: torch.Tensor) -> torch.Tensor:
        """Last hidden activation of the MLP, ``(B, hidden[-1])``."""
        h = torch.cat([emb(indices[:, m]) for m, emb in enumerate(self.embeddings)], dim=1)
        for layer in self.layers:
            h = torch.relu(layer(h))
        return h


class CoSTCo(CompletionModel):
    """CoSTCo: convolutions over the ``d x rank`` stack of the cell's mode embeddings.

    The embeddings ``E_m[i_m]`` (each of size ``rank``) form a ``1 x d x rank`` image; a
    convolution with ``channels`` kernels of size ``d x 1`` mixes the modes, one of size
    ``1 x rank`` (``channels -> channels``) the rank axis, each followed by ReLU; a dense
    layer ``channels -> channels`` with ReLU gives the features.

    Parameters
    ----------
    shape
        Size of each mode.
    rank
        Embedding size per mode.
    channels
        Convolution channels (and dense width).
    generator
        Seeds the initial weights.

    References
    ----------
    H. Liu, Y. Li, M. Tsang, Y. Liu, "CoSTCo: A Neural Tensor Completion Model for Sparse
    Tensors", KDD 2019 (no arXiv version).
    """

    def __init__(
        self,
        shape: Sequence[int],
        *,
        rank: int = 16,
        channels: int = 32,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.shape = _check_shape(shape)
        _positive("rank", rank)
        _positive("channels", channels)
        d = len(self.shape)
        self.embeddings = torch.nn.ModuleList(torch.nn.Embedding(n, rank) for n in self.shape)
        for emb in self.embeddings:
            with torch.no_grad():
                emb.weight.copy_(_normal(tuple(emb.weight.shape), 1.0, generator))
        self.mode_conv = torch.nn.Conv2d(1, channels, kernel_size=(d, 1))
        self.rank_conv = torch.nn.Conv2d(channels, channels, kernel_size=(1, rank))
        self.dense = torch.nn.Linear(channels, channels)
        self.head = torch.nn.Linear(channels, 1)
        for layer in (self.mode_conv, self.rank_conv, self.dense, self.head):
            _init_linear(layer, generator)

    def features(self, indices: torch.Tensor) -> torch.Tensor:
        """Dense-layer activation after the two convolutions, ``(B, channels)``."""
        x = torch.stack([emb(indices[:, m]) for m, emb in enumerate(self.embeddings)], dim=1)
        x = torch.relu(self.mode_conv(x[:, None]))  # (B, c, 1, rank)
        x = torch.relu(self.rank_conv(x)).flatten(1)  # (B, c)
        return torch.relu(self.dense(x))


class CPCompletion(CompletionModel):
    """CP model of the tensor, ``x[i] = sum_r w_r prod_m A_m[i_m, r] + b``.

    Parameters
    ----------
    shape
        Size of each mode.
    rank
        CP rank ``R``.
    generator
        Seeds the factors (normal, scaled so that the initial values have variance about
        ``init_scale**2``).
    init_scale
        Standard deviation of the initial predictions.

    Notes
    -----
    Trained with squared error on the observed cells alone this is CP-WOPT (weighted
    optimisation with a 0/1 mask), by mini-batch Adam instead of nonlinear CG.
    :meth:`to_cp` returns the fitted :class:`tensorsim.decomp.CP` (without the bias).

    References
    ----------
    E. Acar, D. M. Dunlavy, T. G. Kolda, M. Morup, "Scalable tensor factorizations for
    incomplete data", Chemometr. Intell. Lab. Syst. 106 (2011) 41, arXiv 1005.2197.
    """

    def __init__(
        self,
        shape: Sequence[int],
        *,
        rank: int = 8,
        generator: torch.Generator | None = None,
        init_scale: float = 0.3,
    ) -> None:
        super().__init__()
        self.shape = _check_shape(shape)
        _positive("rank", rank)
        d = len(self.shape)
        std = (init_scale**2 / rank) ** (1.0 / (2 * d))
        self.factors = torch.nn.ParameterList(
            torch.nn.Parameter(_normal((n, rank), std, generator)) for n in self.shape
        )
        self.head = torch.nn.Linear(rank, 1)
        with torch.no_grad():
            self.head.weight.fill_(1.0)
            self.head.bias.zero_()

    def features(self, indices: torch.Tensor) -> torch.Tensor:
        """Hadamard product of the factor rows of each cell, ``(B, R)``."""
        return hadamard([a[indices[:, m]] for m, a in enumerate(self.factors)])

    def to_cp(self) -> Any:
        """The fitted CP tensor (detached copies): ``tensorsim.decomp.CP(weights, factors)``."""
        from tensorsim.decomp import CP

        return CP(
            self.head.weight.detach()[0].clone(),
            tuple(a.detach().clone() for a in self.factors),
        )


class TuckerCompletion(CompletionModel):
    """Tucker model of the tensor, ``x[i] = sum_r G[r] prod_m U_m[i_m, r_m] + b``.

    The features of a cell are the Kronecker product of its factor rows
    (``prod_m r_m`` values); the head's weight is the core, flattened row-major.

    Parameters
    ----------
    shape
        Size of each mode.
    ranks
        Tucker ranks, one per mode (an int: the same for every mode).
    generator
        Seeds factors and core.
    init_scale
        Standard deviation of the initial predictions (about).
    """

    def __init__(
        self,
        shape: Sequence[int],
        *,
        ranks: int | Sequence[int] = 4,
        generator: torch.Generator | None = None,
        init_scale: float = 0.3,
    ) -> None:
        super().__init__()
        self.shape = _check_shape(shape)
        d = len(self.shape)
        ranks = (ranks,) * d if isinstance(ranks, int) else tuple(ranks)
        if len(ranks) != d:
            raise ValueError(f"ranks: expected {d} ranks (one per mode), got {ranks}")
        for r in ranks:
            _positive("ranks", r)
        self.ranks = ranks
        size = math.prod(ranks)
        self.factors = torch.nn.ParameterList(
            torch.nn.Parameter(_normal((n, r), 1.0, generator))
            for n, r in zip(self.shape, ranks, strict=True)
        )
        self.head = torch.nn.Linear(size, 1)
        with torch.no_grad():
            self.head.weight.copy_(_normal((1, size), init_scale / math.sqrt(size), generator))
            self.head.bias.zero_()

    def features(self, indices: torch.Tensor) -> torch.Tensor:
        """Row-wise Kronecker product of the factor rows, ``(B, prod ranks)``."""
        rows = self.factors[0][indices[:, 0]]
        for m in range(1, len(self.shape)):
            nxt = self.factors[m][indices[:, m]]
            rows = (rows[:, :, None] * nxt[:, None, :]).flatten(1)
        return rows

    def to_tucker(self) -> Any:
        """The fitted Tucker tensor (detached copies), without the bias."""
        from tensorsim.decomp import Tucker

        core = self.head.weight.detach()[0].reshape(self.ranks).clone()
        return Tucker(core, tuple(a.detach().clone() for a in self.factors))


#: Model name -> class, for :func:`build_model` and the drivers.
MODELS: dict[str, type[CompletionModel]] = {
    "dain_mlp": DAINMLP,
    "costco": CoSTCo,
    "cp": CPCompletion,
    "tucker": TuckerCompletion,
}


def build_model(
    name: str, shape: Sequence[int], *, seed: int = 0, **options: Any
) -> CompletionModel:
    """A fresh completion model by name (a key of :data:`MODELS`), seeded.

    Parameters
    ----------
    name
        ``"dain_mlp"``, ``"costco"``, ``"cp"`` or ``"tucker"``.
    shape
        Size of each mode.
    seed
        Seed of the initial weights (a ``torch.Generator``), so equal seeds give equal models.
    **options
        Keyword options of the model class (``embed_dim``, ``hidden``, ``rank``, ...).

    Raises
    ------
    ValueError
        If ``name`` is unknown (or an option value is bad).
    TypeError
        If an option is not one of the model's.
    """
    if name not in MODELS:
        raise ValueError(f"name: expected one of {sorted(MODELS)}, got {name!r}")
    generator = torch.Generator().manual_seed(int(seed))
    return MODELS[name](shape, generator=generator, **options)
