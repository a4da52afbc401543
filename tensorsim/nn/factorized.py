"""A complex weight tensor in dense, Tucker, CP or tensor-train form, as a torch module.

:class:`FactorizedWeight` holds a complex tensor of a given shape as its factors, each one a
real ``torch.nn.Parameter`` with a trailing axis of size 2 (real, imaginary) that is viewed
as complex when used (``torch.view_as_complex``): real parameters keep data-parallel
gradient reduction and optimizers simple. The factors never have to be multiplied out:
:meth:`FactorizedWeight.terms` hands them to a caller's einsum, which contracts its data with
the factors directly. :meth:`FactorizedWeight.to_dense` (through the ``tensorsim.decomp``
kernels) exists for tests and diagnostics. :meth:`FactorizedWeight.from_dense` initialises a
factorized weight from a dense one by HOSVD (Tucker), TT-SVD (TT) or CP-ALS (CP).

References
----------
J. Kossaifi, N. Kovachki, K. Azizzadenesheli, A. Anandkumar, "Multi-Grid Tensorized Fourier
Neural Operator for High-Resolution PDEs", arXiv 2310.00120 (TMLR 2024).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import torch

from tensorsim.decomp import CP, TT, Tucker, cp_als, hosvd, tt_svd
from tensorsim.linalg import Truncation
from tensorsim.nn.ranks import check_factorization, factorized_size, resolve_ranks

__all__ = ["RANK_LETTERS", "FactorizedWeight"]

logger = logging.getLogger(__name__)

#: Index letters that :meth:`FactorizedWeight.terms` uses for ranks; callers name the modes
#: of the weight with other letters (lower case).
RANK_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _complex_normal(shape: Sequence[int], std: float, generator, dtype, device) -> torch.Tensor:
    """Real pairs of a complex Gaussian with ``E|z|^2 = std^2`` (shape ``(*shape, 2)``)."""
    pairs = torch.randn((*shape, 2), generator=generator, dtype=dtype, device=device)
    return pairs * (std / math.sqrt(2.0))


class FactorizedWeight(torch.nn.Module):
    """A complex tensor of shape ``shape`` stored densely or as Tucker, CP or TT factors.

    Parameters
    ----------
    shape
        Shape ``(I_0, ..., I_{d-1})`` of the (complex) tensor, ``d >= 2`` (``>= 3`` for TT).
    factorization
        ``"dense"`` (or ``None``), ``"tucker"``, ``"cp"`` or ``"tt"``.
    rank
        Fraction in ``(0, 1]`` of the dense entry count to keep, turned into integer ranks by
        :func:`tensorsim.nn.ranks.resolve_ranks` (tensorly's rule), or explicit integer
        ranks. Ignored for ``"dense"``.
    std
        Standard deviation ``sqrt(E|w|^2)`` of the entries of the represented tensor at
        initialization. The factors are drawn so that the product has it: Tucker core
        ``E|g|^2 = std^2`` and factors ``E|u|^2 = 1 / r_k``; CP factors ``E|a|^2 = 1`` and
        weights ``E|l|^2 = std^2 / R``; TT cores ``E|g|^2 = 1 / r_k`` (right bond) except
        the last, ``std^2``.
    generator
        Random generator of the initialization (``None``: torch's global one).
    dtype
        Real dtype of the parameters (``torch.float32`` or ``torch.float64``); the tensor is
        complex64 or complex128.
    device
        Device of the parameters.

    Attributes
    ----------
    shape : tuple of int
        The shape of the represented tensor.
    factorization : str
        The format.
    ranks : tuple of int
        Tucker: one per mode; CP: ``(R,)``; TT: the ``d - 1`` bond ranks; dense: ``()``.

    Notes
    -----
    Parameters (real pairs): dense ``weight`` ``(*shape, 2)``; Tucker ``core``
    ``(*ranks, 2)`` and ``factors[k]`` ``(I_k, r_k, 2)``; CP ``weights`` ``(R, 2)`` and
    ``factors[k]`` ``(I_k, R, 2)``; TT ``factors[k]`` ``(r_{k-1}, I_k, r_k, 2)``.
    """

    def __init__(
        self,
        shape: Sequence[int],
        factorization: str | None = "dense",
        rank: float | int | Sequence[int] = 1.0,
        *,
        std: float = 1.0,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        self.factorization = check_factorization(factorization)
        self.shape = tuple(int(s) for s in shape)
        self.ranks = resolve_ranks(self.shape, self.factorization, rank)
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"dtype: expected torch.float32 or torch.float64, got {dtype}")
        if not std > 0:
            raise ValueError(f"std: expected a positive number, got {std!r}")

        def make(shp: Sequence[int], s: float) -> torch.nn.Parameter:
            return torch.nn.Parameter(_complex_normal(shp, s, generator, dtype, device))

        kind, dims, ranks = self.factorization, self.shape, self.ranks
        if kind == "dense":
            self.weight = make(dims, std)
        elif kind == "tucker":
            self.core = make(ranks, std)
            self.factors = torch.nn.ParameterList(
                make((s, r), 1.0 / math.sqrt(r)) for s, r in zip(dims, ranks, strict=True)
            )
        elif kind == "cp":
            (r,) = ranks
            self.weights = make((r,), std / math.sqrt(r))
            self.factors = torch.nn.ParameterList(make((s, r), 1.0) for s in dims)
        else:
            bonds = (1, *ranks, 1)
            last = len(dims) - 1
            self.factors = torch.nn.ParameterList(
                make(
                    (bonds[k], s, bonds[k + 1]), std if k == last else 1 / math.sqrt(bonds[k + 1])
                )
                for k, s in enumerate(dims)
            )

    def extra_repr(self) -> str:
        """Shape, format and ranks (shown by ``print(module)``)."""
        return f"shape={self.shape}, factorization={self.factorization!r}, ranks={self.ranks}"

    @property
    def size(self) -> int:
        """Number of complex entries stored (:func:`tensorsim.nn.ranks.factorized_size`)."""
        return factorized_size(self.shape, self.factorization, self.ranks)

    # ------------------------------------------------------------------ views

    def _complex_factors(self) -> list[torch.Tensor]:
        return [torch.view_as_complex(f) for f in self.factors]

    def decomposition(self) -> Tucker | CP | TT | torch.Tensor:
        """The complex tensor as a ``tensorsim.decomp`` result (or the dense tensor).

        Returns
        -------
        Tucker, CP, TT or torch.Tensor
            Views of the parameters (autograd flows through them).
        """
        if self.factorization == "dense":
            return torch.view_as_complex(self.weight)
        if self.factorization == "tucker":
            return Tucker(torch.view_as_complex(self.core), tuple(self._complex_factors()))
        if self.factorization == "cp":
            return CP(torch.view_as_complex(self.weights), tuple(self._complex_factors()))
        return TT(tuple(self._complex_factors()))

    def to_dense(self) -> torch.Tensor:
        """Multiply the factors out (for tests and diagnostics; the forward pass never does).

        Returns
        -------
        torch.Tensor
            The complex tensor of shape :attr:`shape`.
        """
        dec = self.decomposition()
        return dec if isinstance(dec, torch.Tensor) else dec.to_dense()

    def terms(
        self, letters: str, *, index: int | None = None
    ) -> tuple[list[str], list[torch.Tensor]]:
        """Einsum terms and complex operands whose contraction is the tensor.

        Parameters
        ----------
        letters
            One lower-case index letter per mode of the tensor. Rank indices use
            :data:`RANK_LETTERS`.
        index
            If given, mode 0 is fixed at this index (a slice ``W[index]`` of a stacked, e.g.
            joint, weight): ``letters[0]`` is then not used in any term.

        Returns
        -------
        subscripts : list of str
            One subscript string per operand.
        operands : list of torch.Tensor
            Complex views of the parameters (or slices of them), same order.

        Raises
        ------
        ValueError
            If ``letters`` has the wrong length or uses a rank letter, or ``index`` is out of
            range.
        """
        d = len(self.shape)
        if len(letters) != d or len(set(letters)) != d or set(letters) & set(RANK_LETTERS):
            raise ValueError(f"letters: expected {d} distinct lower-case letters, got {letters!r}")
        if index is not None and not 0 <= index < self.shape[0]:
            raise ValueError(f"index: expected 0 <= index < {self.shape[0]}, got {index!r}")
        kind = self.factorization
        if kind == "dense":
            w = torch.view_as_complex(self.weight)
            if index is None:
                return [letters], [w]
            return [letters[1:]], [w[index]]
        factors = self._complex_factors()
        if kind == "tucker":
            ranks = RANK_LETTERS[:d]
            subs = [ranks] + [letters[k] + ranks[k] for k in range(d)]
            ops = [torch.view_as_complex(self.core), *factors]
            if index is not None:
                subs[1], ops[1] = ranks[0], factors[0][index]
            return subs, ops
        if kind == "cp":
            r = RANK_LETTERS[0]
            subs = [r] + [letters[k] + r for k in range(d)]
            ops = [torch.view_as_complex(self.weights), *factors]
            if index is not None:
                # fold the fixed row of the first factor into the weights
                return [r, *subs[2:]], [ops[0] * factors[0][index], *ops[2:]]
            return subs, ops
        bonds = RANK_LETTERS[: d + 1]
        subs = [bonds[k] + letters[k] + bonds[k + 1] for k in range(d)]
        ops = list(factors)
        # drop the border ranks (size 1) from the first and the last core
        subs[0], ops[0] = letters[0] + bonds[1], factors[0][0]
        subs[-1], ops[-1] = bonds[d - 1] + letters[d - 1], factors[-1][..., 0]
        if index is not None:
            subs[0], ops[0] = bonds[1], factors[0][0, index]
        return subs, ops

    # ------------------------------------------------------------ from dense

    @classmethod
    def from_dense(
        cls,
        tensor: torch.Tensor,
        factorization: str | None,
        rank: float | int | Sequence[int] = 1.0,
        *,
        cp_max_iter: int = 200,
        cp_tol: float = 1e-10,
    ) -> FactorizedWeight:
        """Factorize a dense complex tensor: HOSVD (Tucker), TT-SVD (TT) or CP-ALS (CP).

        Parameters
        ----------
        tensor
            Complex tensor (complex64 or complex128); the parameters get the matching real
            dtype and its device.
        factorization
            ``"dense"``, ``"tucker"``, ``"cp"`` or ``"tt"``.
        rank
            As for :class:`FactorizedWeight`.
        cp_max_iter, cp_tol
            Sweeps and tolerance of :func:`tensorsim.cp_als`.

        Returns
        -------
        FactorizedWeight
            With the ranks of ``rank``. Tucker and TT come from the truncated HOSVD and
            TT-SVD (exact when the ranks are full); factors that the SVDs cannot fill (a rank
            above the rank of an unfolding) are padded with zeros. CP is fitted by ALS to the
            real tensor ``[Re W, Im W]`` (an extra mode of size 2), which gives real factors
            for the modes of ``W`` and complex weights ``l_r (a_r0 + i a_r1)``: exact when
            ``W`` is a CP tensor of that rank with real factors, the best ALS fit otherwise.

        Raises
        ------
        ValueError
            If ``tensor`` is not complex or the rank is invalid.
        """
        if not isinstance(tensor, torch.Tensor) or not tensor.is_complex():
            raise ValueError("tensor: expected a complex torch tensor")
        real = torch.float64 if tensor.dtype == torch.complex128 else torch.float32
        tensor = tensor.detach()
        out = cls(tensor.shape, factorization, rank, dtype=real, device=tensor.device)
        kind, ranks = out.factorization, out.ranks
        with torch.no_grad():
            if kind == "dense":
                out.weight.copy_(torch.view_as_real(tensor))
            elif kind == "tucker":
                dec = hosvd(tensor, [Truncation(max_rank=r) for r in ranks])
                _copy_padded(out.core, dec.core)
                for p, f in zip(out.factors, dec.factors, strict=True):
                    _copy_padded(p, f)
            elif kind == "tt":
                dec = tt_svd(tensor, [Truncation(max_rank=r) for r in ranks])
                for p, g in zip(out.factors, dec.cores, strict=True):
                    _copy_padded(p, g)
            else:
                fit = cp_als(
                    torch.view_as_real(tensor), ranks[0], max_iter=cp_max_iter, tol=cp_tol, rng=0
                )
                parts = fit.factors[-1]  # (2, R): real and imaginary parts
                weights = fit.weights * torch.complex(parts[0], parts[1])
                out.weights.copy_(torch.view_as_real(weights))
                for p, f in zip(out.factors, fit.factors[:-1], strict=True):
                    _copy_padded(p, f.to(tensor.dtype))
        return out


def _copy_padded(param: torch.nn.Parameter, value: torch.Tensor) -> None:
    """Copy complex ``value`` into the real pairs ``param``; axes that it lacks are zero."""
    target = torch.zeros(param.shape[:-1], dtype=value.dtype, device=value.device)
    target[tuple(slice(0, s) for s in value.shape)] = value
    param.copy_(torch.view_as_real(target))
