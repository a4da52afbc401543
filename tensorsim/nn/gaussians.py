"""Multi-identity Gaussians (MIGS): identities x Gaussians x parameters in CP or Tucker form.

A set of ``N_g`` Gaussians is described by ``M`` raw numbers each, stacked in named blocks
(:data:`PARAM_BLOCKS`: position 3, log-scale 3, rotation quaternion 4, colour logits 3,
opacity logit 1). ``N_i`` identities give a tensor ``W`` of shape ``(N_i, N_g, M)``.
:class:`MultiIdentityGaussians` stores it

- ``"cp"``: ``W = sum_r U_id[:, r] o U_g[:, r] o U_p[:, r]`` (identity, per-Gaussian and
  parameter factors, rank ``R``), as MIGS does (arXiv 2407.07284);
- ``"tucker"``: ``W = core x_0 U_id x_1 U_g x_2 U_p`` with ranks ``(R_id, R_g, R_p)``;
- ``"dense"``: one free ``(N_g, M)`` block per identity (the per-identity baseline).

The parameter factor ``U_p`` (dense: the parameter axis) is stored in row blocks, one
``torch.nn.Parameter`` per block, so that :meth:`MultiIdentityGaussians.param_groups` can give
each block its own learning rate (3DGS's rates, :data:`DEFAULT_LRS`); the identity and
per-Gaussian factors (and the Tucker core) use the position rate, as MIGS does. One identity's
Gaussians are rebuilt from its row of ``U_id`` alone
(:meth:`~MultiIdentityGaussians.identity_tensor`, ``(U_g * u_i) U_p^T`` for CP), and an
unseen identity is added by optimising only a new row
(:meth:`~MultiIdentityGaussians.new_identity_row`) with every shared factor frozen.
:func:`activate` maps raw parameters to renderable Gaussians (:mod:`tensorsim.nn.splat`) and
:func:`pose_gaussians` moves them by rigid per-part transforms (a skeleton with known
skinning).

Importing this module imports torch (``import tensorsim`` does not).

References
----------
A. Chatziagapi, G. G. Chrysos, D. Samaras, "MIGS: Multi-Identity Gaussian Splatting via Tensor
Decomposition", arXiv 2407.07284 (ECCV 2024).
B. Kerbl, G. Kopanas, T. Leimkuehler, G. Drettakis, "3D Gaussian Splatting for Real-Time
Radiance Field Rendering", arXiv 2308.04079 (SIGGRAPH 2023).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Literal, NamedTuple

import torch

from tensorsim._checks import check_int
from tensorsim.decomp import CP, Tucker, cp_to_dense, tucker_to_dense
from tensorsim.nn.splat import check_rotation, covariance_3d, quaternion_to_rotation

__all__ = [
    "DEFAULT_LRS",
    "PARAM_BLOCKS",
    "Gaussians",
    "MultiIdentityGaussians",
    "activate",
    "pose_gaussians",
]

logger = logging.getLogger(__name__)

#: Raw parameter blocks of one Gaussian, in order: name -> width (``M = 14`` in all).
PARAM_BLOCKS: dict[str, int] = {"xyz": 3, "scaling": 3, "rotation": 4, "color": 3, "opacity": 1}

#: 3DGS / MIGS learning rates per block (``xyz`` also drives the identity and Gaussian
#: factors and the Tucker core); arXiv 2308.04079, MIGS ``configs/config.yaml``.
DEFAULT_LRS: dict[str, float] = {
    "xyz": 1.6e-4,
    "scaling": 5e-3,
    "rotation": 1e-3,
    "color": 2.5e-3,
    "opacity": 0.05,
}

Form = Literal["cp", "tucker", "dense"]


class Gaussians(NamedTuple):
    """Renderable Gaussians.

    Means (N, 3), scales (N, 3) > 0, rotations (N, 3, 3), colours (N, 3) in (0, 1),
    opacities (N,) in (0, 1).
    """

    means: torch.Tensor
    scales: torch.Tensor
    rotations: torch.Tensor
    colors: torch.Tensor
    opacities: torch.Tensor

    def covariances(self) -> torch.Tensor:
        """``R diag(s^2) R^T``, (N, 3, 3)."""
        return covariance_3d(self.scales, self.rotations)


def activate(params: torch.Tensor, blocks: Mapping[str, int] = PARAM_BLOCKS) -> Gaussians:
    """Raw parameters (N, M) to :class:`Gaussians`.

    Exp of the log-scales, normalised quaternions, sigmoid of the colour and opacity logits.

    Raises
    ------
    ValueError
        If ``blocks`` is not :data:`PARAM_BLOCKS`'s layout or ``params`` has the wrong width.
    """
    if dict(blocks) != PARAM_BLOCKS:
        raise ValueError(f"blocks: expected the layout {PARAM_BLOCKS}, got {dict(blocks)}")
    m = sum(blocks.values())
    if not isinstance(params, torch.Tensor) or params.ndim != 2 or params.shape[1] != m:
        shape = tuple(params.shape) if isinstance(params, torch.Tensor) else type(params).__name__
        raise ValueError(f"params: expected a tensor of shape (N, {m}), got {shape}")
    xyz, log_s, quat, col, op = torch.split(params, list(blocks.values()), dim=1)
    return Gaussians(
        xyz,
        torch.exp(log_s),
        quaternion_to_rotation(quat),
        torch.sigmoid(col),
        torch.sigmoid(op[:, 0]),
    )


def pose_gaussians(
    gaussians: Gaussians,
    parts: torch.Tensor,
    rotations: torch.Tensor,
    translations: torch.Tensor,
) -> Gaussians:
    """Move Gaussians rigidly per part (one-hot skinning): ``x -> R_p x + t_p``, ``R -> R_p R``.

    Parameters
    ----------
    gaussians
        Canonical :class:`Gaussians`.
    parts
        Integer part of each Gaussian (N,), in ``[0, P)``.
    rotations
        Proper rotations of the parts (P, 3, 3).
    translations
        Translations of the parts (P, 3).

    Returns
    -------
    Gaussians
        The posed Gaussians (scales, colours and opacities unchanged).

    Raises
    ------
    TypeError, ValueError
        On wrong shapes, part indices out of range, or matrices that are not rotations.
    """
    n = gaussians.means.shape[0]
    if not isinstance(parts, torch.Tensor) or parts.shape != (n,) or parts.is_floating_point():
        raise ValueError(f"parts: expected an integer tensor of shape ({n},)")
    if (
        not isinstance(rotations, torch.Tensor)
        or rotations.ndim != 3
        or rotations.shape[1:]
        != (
            3,
            3,
        )
    ):
        raise ValueError("rotations: expected a tensor of shape (P, 3, 3)")
    p = rotations.shape[0]
    if not isinstance(translations, torch.Tensor) or translations.shape != (p, 3):
        raise ValueError(f"translations: expected a tensor of shape ({p}, 3)")
    if n and (int(parts.min()) < 0 or int(parts.max()) >= p):
        raise ValueError(
            f"parts: expected indices in [0, {p}), got [{int(parts.min())}, {int(parts.max())}]"
        )
    for k in range(p):
        check_rotation(rotations[k], f"rotations[{k}]")
    rot = rotations[parts]
    means = (rot @ gaussians.means[:, :, None])[:, :, 0] + translations[parts]
    return gaussians._replace(means=means, rotations=rot @ gaussians.rotations)


class MultiIdentityGaussians(torch.nn.Module):
    """The identities x Gaussians x parameters tensor of MIGS in CP, Tucker or dense form.

    Parameters
    ----------
    n_identities, n_gaussians
        ``N_i`` and ``N_g`` (``>= 1``).
    form
        ``"cp"``, ``"tucker"`` or ``"dense"`` (per-identity parameters).
    rank
        CP: ``R >= 1``. Tucker: ``(R_id, R_g, R_p)``, each ``>= 1`` (an int: the same for
        the three, capped by the mode sizes). Dense: ignored (None).
    init
        Raw parameters (N_g, M) that every identity starts from (MIGS fits the CP of the
        replicated initial point cloud; here a truncated SVD of ``init`` gives the Gaussian
        and parameter factors exactly, the identity factor is ones). None: small random.
    noise
        Size of the random change of the starting tensor, relative to the RMS entry of
        ``init`` (breaks ties between identities and between unused terms).
    blocks
        Parameter layout (name -> width); :data:`PARAM_BLOCKS` by default.
    generator
        Seeds the random parts.
    dtype
        Parameter dtype.

    Raises
    ------
    ValueError
        On sizes or ranks below 1, an unknown ``form`` or an ``init`` of the wrong shape.

    References
    ----------
    arXiv 2407.07284 (MIGS), arXiv 2308.04079 (3DGS).
    """

    def __init__(
        self,
        n_identities: int,
        n_gaussians: int,
        *,
        form: Form = "cp",
        rank: int | tuple[int, int, int] | None = None,
        init: torch.Tensor | None = None,
        noise: float = 1e-2,
        blocks: Mapping[str, int] = PARAM_BLOCKS,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float64,
    ) -> None:
        super().__init__()
        self.n_identities = check_int("n_identities", n_identities)
        self.n_gaussians = check_int("n_gaussians", n_gaussians)
        if form not in ("cp", "tucker", "dense"):
            raise ValueError(f"form: expected 'cp', 'tucker' or 'dense', got {form!r}")
        if not blocks or any(check_int(f"blocks[{k!r}]", w) < 1 for k, w in blocks.items()):
            raise ValueError("blocks: expected a non-empty mapping of name -> width")
        self.form = form
        self.blocks = dict(blocks)
        m = self.n_params
        if init is not None and (
            not isinstance(init, torch.Tensor)
            or init.shape
            != (
                self.n_gaussians,
                m,
            )
        ):
            raise ValueError(f"init: expected a tensor of shape ({self.n_gaussians}, {m})")
        if not (isinstance(noise, int | float) and noise >= 0):
            raise ValueError(f"noise: expected a number >= 0, got {noise!r}")
        g = generator

        def rand(*shape: int) -> torch.Tensor:
            return torch.randn(shape, generator=g, dtype=dtype)

        base = init.detach().to(dtype) if init is not None else 0.1 * rand(self.n_gaussians, m)
        u, s, vh = torch.linalg.svd(base, full_matrices=False)
        rms = float(torch.linalg.matrix_norm(base)) / math.sqrt(base.numel()) or 1.0
        eps = noise * rms  # size of the random change of the starting tensor
        if form == "dense":
            if rank is not None:
                raise ValueError(f"rank: the dense form takes no rank, got {rank!r}")
            self.ranks: tuple[int, ...] = ()
            full = base[None].expand(self.n_identities, -1, -1)
            full = full + eps * rand(self.n_identities, self.n_gaussians, m)
            self.dense = torch.nn.ParameterDict(
                {k: torch.nn.Parameter(b.clone()) for k, b in self._split_last(full).items()}
            )
            return
        k = s.numel()
        if form == "cp":
            r = check_int("rank", rank)
            self.ranks = (r,)
            n_keep = min(r, k)
            sq = torch.sqrt(s[:n_keep])
            # the SVD's terms reproduce ``init``; terms beyond its rank start small (their
            # product adds about ``eps`` per entry) with identity entries of order one
            extra = max(r - n_keep, 1)
            small = math.sqrt(eps / math.sqrt(extra))
            gauss = small * rand(self.n_gaussians, r)
            param = small * rand(m, r)
            gauss[:, :n_keep] = u[:, :n_keep] * sq
            param[:, :n_keep] = vh[:n_keep].T * sq
            ident = torch.ones(self.n_identities, r, dtype=dtype)
            ident[:, :n_keep] += noise * rand(self.n_identities, n_keep)
            ident[:, n_keep:] = rand(self.n_identities, r - n_keep)
        else:
            if isinstance(rank, int) and not isinstance(rank, bool):
                r3 = (
                    min(check_int("rank", rank), self.n_identities),
                    min(rank, self.n_gaussians),
                    min(rank, m),
                )
            elif isinstance(rank, tuple | list) and len(rank) == 3:
                r3 = tuple(check_int(f"rank[{i}]", v) for i, v in enumerate(rank))
            else:
                raise ValueError(f"rank: expected an int or 3 ints for Tucker, got {rank!r}")
            self.ranks = r3
            ri, rg, rp = r3
            # identity 0 column of ones carries ``init``; the other identity columns are of
            # order one and meet a small core, so identities start apart by about ``eps``
            ident = rand(self.n_identities, ri)
            ident[:, 0] = 1.0
            gauss = rand(self.n_gaussians, rg) / math.sqrt(self.n_gaussians)
            param = rand(m, rp) / math.sqrt(m)
            core = eps * rand(ri, rg, rp)
            n_g, n_p = min(rg, k), min(rp, k)
            gauss[:, :n_g] = u[:, :n_g]
            param[:, :n_p] = vh[:n_p].T
            core[0] = 0.0
            for j in range(min(n_g, n_p)):
                core[0, j, j] = s[j]
            self.core = torch.nn.Parameter(core)
        self.identity = torch.nn.Parameter(ident)
        self.gaussian = torch.nn.Parameter(gauss)
        self.param = torch.nn.ParameterDict(
            {k: torch.nn.Parameter(v.clone()) for k, v in self._split_rows(param).items()}
        )

    # ------------------------------------------------------------------ layout

    @property
    def n_params(self) -> int:
        """``M``: raw numbers per Gaussian."""
        return sum(self.blocks.values())

    def _split_rows(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return dict(
            zip(self.blocks, torch.split(x, list(self.blocks.values()), dim=0), strict=True)
        )

    def _split_last(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return dict(
            zip(self.blocks, torch.split(x, list(self.blocks.values()), dim=-1), strict=True)
        )

    def parameter_factor(self) -> torch.Tensor:
        """``U_p`` (M, R) or (M, R_p), its blocks stacked (not for the dense form)."""
        if self.form == "dense":
            raise ValueError("form: the dense form has no parameter factor")
        return torch.cat([self.param[k] for k in self.blocks], dim=0)

    def count(self, *, per_identity: bool = False) -> int:
        """Stored numbers: all of them, or (``per_identity``) what one more identity adds."""
        if per_identity:
            if self.form == "dense":
                return self.n_gaussians * self.n_params
            return int(self.identity.shape[1])
        return sum(p.numel() for p in self.parameters())

    # ------------------------------------------------------------- rebuilding

    def _check_index(self, index: object) -> int:
        if isinstance(index, bool) or not isinstance(index, int):
            raise TypeError(f"index: expected an int, got {type(index).__name__}")
        if not 0 <= index < self.n_identities:
            raise ValueError(
                f"index: expected an identity in [0, {self.n_identities}), got {index}"
            )
        return index

    def identity_tensor(
        self, index: int | None = None, *, row: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Raw parameters (N_g, M) of identity ``index``, or of a free identity ``row``.

        Only that identity's row of the identity factor enters: ``(U_g * u_i) U_p^T`` (CP) or
        ``U_g (core x_0 u_i) U_p^T`` (Tucker). For the dense form ``row`` is a whole
        (N_g, M) block.

        Raises
        ------
        TypeError, ValueError
            If neither or both of ``index`` and ``row`` are given, ``index`` is out of range,
            or ``row`` has the wrong shape.
        """
        if (index is None) == (row is None):
            raise TypeError("identity_tensor: give exactly one of index and row")
        if row is not None:
            want = (
                (self.n_gaussians, self.n_params)
                if self.form == "dense"
                else (self.identity.shape[1],)
            )
            if not isinstance(row, torch.Tensor) or tuple(row.shape) != want:
                raise ValueError(f"row: expected a tensor of shape {want}")
            if self.form == "dense":
                return row
        else:
            i = self._check_index(index)
            if self.form == "dense":
                return torch.cat([self.dense[k][i] for k in self.blocks], dim=1)
            row = self.identity[i]
        up = self.parameter_factor()
        if self.form == "cp":
            return (self.gaussian * row) @ up.T
        return self.gaussian @ torch.einsum("a,abc->bc", row, self.core) @ up.T

    def gaussians(self, index: int | None = None, *, row: torch.Tensor | None = None) -> Gaussians:
        """:func:`activate` of :meth:`identity_tensor`."""
        return activate(self.identity_tensor(index, row=row), self.blocks)

    def decomposition(self) -> CP | Tucker:
        """The factors as a :class:`tensorsim.decomp.CP` (unit weights) or ``Tucker``.

        Modes: identities, Gaussians, parameters. Tensors keep their autograd graph.
        """
        if self.form == "dense":
            raise ValueError("form: the dense form has no decomposition")
        factors = (self.identity, self.gaussian, self.parameter_factor())
        if self.form == "cp":
            ones = torch.ones(self.ranks[0], dtype=self.identity.dtype)
            return CP(ones, factors)
        return Tucker(self.core, factors)

    def to_dense(self) -> torch.Tensor:
        """The full tensor (N_i, N_g, M).

        Built by :func:`~tensorsim.decomp.cp_to_dense` or
        :func:`~tensorsim.decomp.tucker_to_dense` (the dense form: its blocks).
        """
        if self.form == "dense":
            return torch.cat([self.dense[k] for k in self.blocks], dim=2)
        d = self.decomposition()
        return cp_to_dense(d) if isinstance(d, CP) else tucker_to_dense(d)

    # --------------------------------------------------------------- training

    def param_groups(self, lrs: Mapping[str, float] | None = None) -> list[dict]:
        """Optimizer parameter groups, one per block (key ``"name"``) with its learning rate.

        ``lrs`` maps block names (and optionally ``"identity"``, ``"gaussian"``, ``"core"``)
        to rates; missing blocks take :data:`DEFAULT_LRS`, the shared factors the ``xyz``
        rate (MIGS's choice).

        Raises
        ------
        ValueError
            On an unknown name or a rate that is not positive.
        """
        lrs = dict(lrs or {})
        known = {*self.blocks, "identity", "gaussian", "core"}
        unknown = sorted(set(lrs) - known)
        if unknown:
            raise ValueError(f"lrs: unknown names {unknown}; expected some of {sorted(known)}")
        for k, v in lrs.items():
            if not (isinstance(v, int | float) and math.isfinite(v) and v > 0):
                raise ValueError(f"lrs[{k!r}]: expected a positive rate, got {v!r}")
        rate = {**DEFAULT_LRS, **lrs}
        xyz = rate.get("xyz", DEFAULT_LRS["xyz"])
        if self.form == "dense":
            return [{"params": [self.dense[k]], "lr": rate[k], "name": k} for k in self.blocks]
        groups = [
            {"params": [self.identity], "lr": lrs.get("identity", xyz), "name": "identity"},
            {"params": [self.gaussian], "lr": lrs.get("gaussian", xyz), "name": "gaussian"},
        ]
        if self.form == "tucker":
            groups.append({"params": [self.core], "lr": lrs.get("core", xyz), "name": "core"})
        groups += [{"params": [self.param[k]], "lr": rate[k], "name": k} for k in self.blocks]
        return groups

    def new_identity_row(self) -> torch.Tensor:
        """A starting row for an unseen identity: the mean of the known rows (detached).

        For the dense form, the mean (N_g, M) block.
        """
        with torch.no_grad():
            if self.form == "dense":
                return torch.cat([self.dense[k] for k in self.blocks], dim=2).mean(0).clone()
            return self.identity.mean(0).clone()
