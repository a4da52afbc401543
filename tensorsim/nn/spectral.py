"""Spectral convolution of Fourier neural operators with dense or factorized weights.

:class:`SpectralConv` is the integral operator of an FNO layer on a periodic grid in ``d``
dimensions: a real FFT (``rfftn``, ``norm="forward"``), the low modes multiplied channel-wise
by a complex weight, ``out[b, o, k] = sum_i x[b, i, k] W[i, o, k]``, the other modes set to
zero, an inverse FFT and a bias. The conventions are neuraloperator's, so that weights and
parameter counts can be compared one to one:

- ``n_modes = (m_1, ..., m_d)`` counts modes as a full FFT would. On every axis but the last
  the kept frequencies are ``-(m // 2), ..., m - m // 2 - 1`` (the centred low band, negative
  frequencies included), stored in that order along the weight's axis; on the last axis the
  half spectrum keeps ``m_d // 2 + 1`` frequencies ``0, ..., m_d // 2``.
- The FFTs are pruned (:func:`low_modes`, :func:`from_low_modes`): an axis is transformed
  only at the modes kept on the axes transformed before it, which equals ``rfftn``/``irfftn``
  on the full grid followed/preceded by the mode selection.
- The weight has shape ``(C_in, C_out, m_1, ..., m_{d-1}, m_d // 2 + 1)``, complex, in any
  format of :class:`tensorsim.nn.factorized.FactorizedWeight`; the bias has one entry per
  output channel.

The forward pass contracts the selected modes with the weight's factors directly
(:func:`tensorsim.einsum`, opt_einsum paths): first the data with the input-channel factor,
then the result with the other factors, so the dense weight is never formed. A *joint*
weight, one factorized tensor of shape ``(L, C_in, C_out, ...)`` shared by ``L`` layers, is
used by passing ``shared=(weight, l)``.

References
----------
J. Kossaifi, N. Kovachki, K. Azizzadenesheli, A. Anandkumar, "Multi-Grid Tensorized Fourier
Neural Operator for High-Resolution PDEs", arXiv 2310.00120 (TMLR 2024).
Z. Li et al., "Fourier Neural Operator for Parametric Partial Differential Equations",
arXiv 2010.08895 (ICLR 2021).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import torch

from tensorsim.einsum import einsum
from tensorsim.nn.factorized import FactorizedWeight

__all__ = ["SpectralConv", "from_low_modes", "kept_modes", "low_modes"]

logger = logging.getLogger(__name__)

# index letters of the forward contraction: batch, in, out, then one per spatial axis
_BATCH, _IN, _OUT = "z", "i", "o"
_SPACE = "abcdefgh"


def kept_modes(n_modes: Sequence[int]) -> tuple[int, ...]:
    """Sizes of the weight's mode axes: ``(m_1, ..., m_{d-1}, m_d // 2 + 1)``.

    Raises
    ------
    ValueError
        If ``n_modes`` is not a non-empty sequence of positive integers.
    """
    if isinstance(n_modes, int):
        n_modes = (n_modes,)
    modes = tuple(n_modes)
    if (
        not modes
        or len(modes) > len(_SPACE)
        or any(isinstance(m, bool) or not isinstance(m, int) or m < 1 for m in modes)
    ):
        raise ValueError(
            f"n_modes: expected 1 to {len(_SPACE)} positive integers, got {n_modes!r}"
        )
    return (*modes[:-1], modes[-1] // 2 + 1)


def low_modes(x: torch.Tensor, n_modes: Sequence[int]) -> torch.Tensor:
    """The kept Fourier coefficients of real fields (``norm="forward"``), centred order.

    A pruned ``rfftn``: the real FFT of the last axis is cut to its first ``m_d // 2 + 1``
    entries before the other axes are transformed, and each of those is cut to its band
    ``-(m // 2), ..., m - m // 2 - 1`` (negative frequencies first) right after its FFT, so
    no axis is transformed at more points than the modes that survive on the axes before.

    Parameters
    ----------
    x
        Real tensor ``(batch, channels, n_1, ..., n_d)``.
    n_modes
        ``(m_1, ..., m_d)`` as for :class:`SpectralConv`.

    Returns
    -------
    torch.Tensor
        Complex ``(batch, channels, m_1, ..., m_{d-1}, m_d // 2 + 1)``.
    """
    d = len(n_modes)
    spec = torch.fft.rfft(x, dim=-1, norm="forward")[..., : n_modes[-1] // 2 + 1]
    for k in range(d - 1):
        axis, m, n = 2 + k, n_modes[k], x.shape[2 + k]
        spec = torch.fft.fft(spec, dim=axis, norm="forward")
        neg = m // 2
        spec = torch.cat([spec.narrow(axis, n - neg, neg), spec.narrow(axis, 0, m - neg)], axis)
    return spec


def from_low_modes(low: torch.Tensor, sizes: Sequence[int]) -> torch.Tensor:
    """Real fields on a grid of shape ``sizes`` from their kept coefficients (inverse).

    The adjoint pruning of :func:`low_modes`: each axis but the last is zero-filled to its
    full length and inverse transformed (at the kept width of the last axis only), then the
    last axis by ``irfft`` (which zero-fills the rest of the half spectrum).

    Parameters
    ----------
    low
        Complex ``(batch, channels, m_1, ..., m_{d-1}, k_d)`` in the order of
        :func:`low_modes`.
    sizes
        The grid ``(n_1, ..., n_d)``.

    Returns
    -------
    torch.Tensor
        Real ``(batch, channels, n_1, ..., n_d)``.
    """
    spec = low
    for k in range(len(sizes) - 1):
        axis, m, n = 2 + k, low.shape[2 + k], sizes[k]
        neg = m // 2
        shape = list(spec.shape)
        shape[axis] = n - m
        parts = [spec.narrow(axis, neg, m - neg), spec.new_zeros(shape), spec.narrow(axis, 0, neg)]
        spec = torch.fft.ifft(torch.cat(parts, axis), dim=axis, norm="forward")
    return torch.fft.irfft(spec, n=sizes[-1], dim=-1, norm="forward")


class SpectralConv(torch.nn.Module):
    """Fourier integral operator ``x -> irfftn(W . rfftn(x)) + b`` on the low modes.

    Parameters
    ----------
    in_channels, out_channels
        Channel counts ``C_in`` and ``C_out``.
    n_modes
        Modes kept per spatial axis, counted as for a full FFT (module docstring); the
        number of entries is the spatial dimension ``d``.
    factorization
        ``"dense"`` (or ``None``), ``"tucker"``, ``"cp"`` or ``"tt"``; ignored with
        ``shared``.
    rank
        Fraction in ``(0, 1]`` of the dense parameters (tensorly's rule, see
        :mod:`tensorsim.nn.ranks`) or explicit ranks; ignored with ``shared``.
    bias
        Whether to add a learned bias per output channel.
    shared
        ``(weight, layer)``: use slice ``layer`` of a joint :class:`FactorizedWeight` of
        shape ``(L, C_in, C_out, *kept_modes(n_modes))`` instead of an own weight. The joint
        weight is *not* registered in this module: the model that owns it registers it once.
    init_std
        Standard deviation of the weight entries at initialization (and of the bias);
        default ``sqrt(2 / (C_in + C_out))``, as in neuraloperator.
    generator
        Random generator of the initialization.
    dtype
        Real dtype of the parameters (``torch.float32`` or ``torch.float64``); inputs must
        have it.
    device
        Device of the parameters.

    Raises
    ------
    ValueError
        If a channel count, ``n_modes``, ``rank`` or ``shared`` is invalid.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        n_modes: Sequence[int],
        *,
        factorization: str | None = "dense",
        rank: float | int | Sequence[int] = 1.0,
        bias: bool = True,
        shared: tuple[FactorizedWeight, int] | None = None,
        init_std: float | None = None,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: expected a positive integer, got {value!r}")
        self.in_channels, self.out_channels = in_channels, out_channels
        kept = kept_modes(n_modes)
        self.n_modes = tuple(n_modes) if not isinstance(n_modes, int) else (n_modes,)
        self.weight_shape = (in_channels, out_channels, *kept)
        std = math.sqrt(2.0 / (in_channels + out_channels)) if init_std is None else init_std
        if shared is None:
            self.weight = FactorizedWeight(
                self.weight_shape,
                factorization,
                rank,
                std=std,
                generator=generator,
                dtype=dtype,
                device=device,
            )
            self._shared: tuple[FactorizedWeight, int] | None = None
        else:
            joint, layer = shared
            if not isinstance(joint, FactorizedWeight) or joint.shape[1:] != self.weight_shape:
                raise ValueError(
                    f"shared: expected a FactorizedWeight of shape (L, {self.weight_shape}), "
                    f"got {getattr(joint, 'shape', joint)!r}"
                )
            if isinstance(layer, bool) or not isinstance(layer, int):
                raise ValueError(f"shared: expected an integer layer index, got {layer!r}")
            if not 0 <= layer < joint.shape[0]:
                raise ValueError(f"shared: layer {layer} outside 0..{joint.shape[0] - 1}")
            self._shared = (joint, layer)
        if bias:
            values = torch.randn(out_channels, generator=generator, dtype=dtype, device=device)
            self.bias = torch.nn.Parameter(std * values)
        else:
            self.register_parameter("bias", None)

    def extra_repr(self) -> str:
        """Channels, modes, bias and joint layer (shown by ``print(module)``)."""
        joint = "" if self._shared is None else f", joint layer {self._shared[1]}"
        return (
            f"{self.in_channels}, {self.out_channels}, n_modes={self.n_modes}"
            f", bias={self.bias is not None}{joint}"
        )

    @property
    def factorization(self) -> str:
        """The format of the weight (of the joint weight, if shared)."""
        return self._weight_and_index()[0].factorization

    def _weight_and_index(self) -> tuple[FactorizedWeight, int | None]:
        if self._shared is not None:
            return self._shared
        return self.weight, None

    def dense_weight(self) -> torch.Tensor:
        """The weight multiplied out, shape ``(C_in, C_out, *kept_modes)`` (diagnostics only).

        Returns
        -------
        torch.Tensor
            Complex tensor.
        """
        weight, index = self._weight_and_index()
        full = weight.to_dense()
        return full if index is None else full[index]

    def check_input(self, x: torch.Tensor, name: str = "x") -> None:
        """Raise ``ValueError`` unless ``x`` fits the layer.

        ``x`` must be ``(batch, C_in, n_1, ..., n_d)`` of the parameters' real dtype, on a
        grid that supports :attr:`n_modes`: ``m_k <= n_k``, and on the last axis
        ``m_d // 2 <= n_d // 2``.
        """
        d = len(self.n_modes)
        if not isinstance(x, torch.Tensor) or x.ndim != d + 2 or x.shape[1] != self.in_channels:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(
                f"{name}: expected shape (batch, {self.in_channels}, n_1, ..., n_{d}) with "
                f"{d} spatial axes, got {got}"
            )
        dtype = next(iter(self._weight_and_index()[0].parameters())).dtype
        if x.dtype != dtype:
            raise ValueError(f"{name}: expected dtype {dtype} (the layer's), got {x.dtype}")
        sizes = tuple(x.shape[2:])
        too_many = any(m > n for m, n in zip(self.n_modes[:-1], sizes[:-1], strict=True))
        if too_many or self.n_modes[-1] // 2 > sizes[-1] // 2:
            raise ValueError(
                f"n_modes: {self.n_modes} modes need a grid of at least {self.n_modes} points, "
                f"but {name} has spatial shape {sizes}"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the layer.

        Parameters
        ----------
        x
            Real tensor ``(batch, C_in, n_1, ..., n_d)`` on a periodic grid.

        Returns
        -------
        torch.Tensor
            ``(batch, C_out, n_1, ..., n_d)``.

        Raises
        ------
        ValueError
            If ``x`` has the wrong shape or too few grid points for the modes.
        """
        self.check_input(x)
        y = from_low_modes(self._contract(low_modes(x, self.n_modes)), x.shape[2:])
        if self.bias is not None:
            y = y + self.bias.view(-1, *([1] * len(self.n_modes)))
        return y

    def _contract(self, low: torch.Tensor) -> torch.Tensor:
        """``out[z, o, k] = sum_i low[z, i, k] W[i, o, k]`` with the factors of ``W``.

        Two einsums: the data with the weight's input-channel factor first (the only term
        holding the input index), then the result with the other factors (opt_einsum path).
        Every intermediate that holds the output index and all mode indices then holds the
        batch index too, so the dense weight is never formed, whatever the batch size.
        """
        weight, index = self._weight_and_index()
        space = _SPACE[: len(self.n_modes)]
        data, out = _BATCH + _IN + space, _BATCH + _OUT + space
        subs, operands = weight.terms(
            ("l" if index is not None else "") + _IN + _OUT + space, index=index
        )
        first = next(k for k, sub in enumerate(subs) if _IN in sub)
        rest = [
            (sub, op) for k, (sub, op) in enumerate(zip(subs, operands, strict=True)) if k != first
        ]
        if not rest:
            return einsum(f"{data},{subs[first]}->{out}", low, operands[first])
        needed = set(out).union(*(sub for sub, _ in rest))
        inner = "".join(c for c in dict.fromkeys(data + subs[first]) if c in needed)
        partial = einsum(f"{data},{subs[first]}->{inner}", low, operands[first])
        expr = ",".join([inner, *(sub for sub, _ in rest)]) + "->" + out
        return einsum(expr, partial, *(op for _, op in rest))

    @classmethod
    def from_dense(
        cls,
        conv: SpectralConv,
        factorization: str | None,
        rank: float | int | Sequence[int] = 1.0,
    ) -> SpectralConv:
        """A copy of ``conv`` whose weight is factorized from ``conv``'s (by HOSVD/CP/TT-SVD).

        Parameters
        ----------
        conv
            A spectral convolution (its weight in any format is multiplied out first).
        factorization, rank
            Format and rank of the new weight (see
            :meth:`tensorsim.nn.factorized.FactorizedWeight.from_dense`).

        Returns
        -------
        SpectralConv
            Same channels, modes and bias; equal to ``conv`` when the ranks are full.
        """
        dense = conv.dense_weight().detach()
        real = torch.float64 if dense.dtype == torch.complex128 else torch.float32
        new = cls(
            conv.in_channels,
            conv.out_channels,
            conv.n_modes,
            bias=conv.bias is not None,
            dtype=real,
            device=dense.device,
        )
        new.weight = FactorizedWeight.from_dense(dense, factorization, rank)
        if conv.bias is not None:
            with torch.no_grad():
                new.bias.copy_(conv.bias)
        return new
